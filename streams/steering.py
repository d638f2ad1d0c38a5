"""Session steering in the stream: which events are answered with a list, and the rankers that
steer them.

A ``track_start`` and a ``steer`` event (:class:`nowplaying.steer_events.SteerEvent`) are both
answered at once with a refreshed list, through the same path (ranked, stored once per trigger
event id, published; a redelivery republishes the stored list). The worker ranks with
:class:`models.steered.SteeredRecommender` around each loaded model: a session's active intents
shape its lists, and a session without any gets exactly the ranker's list.
"""

from __future__ import annotations

from models.recommender import Recommender
from models.steered import SkipRiskScorer, SteeredRecommender
from nowplaying.events import TrackStart
from nowplaying.steer_events import InputEvent, SteerEvent


def triggers_list(event: InputEvent) -> bool:
    """Whether the event is answered with a fresh list: a track start or a steer."""
    return isinstance(event, TrackStart | SteerEvent)


def steered(recommender: Recommender, auto: SkipRiskScorer | None = None) -> SteeredRecommender:
    """The model, steered by intents, and automatically when ``auto`` (``NP_AUTO_STEERING``:
    :func:`models.skip.auto.auto_steering_for`) is given."""
    return SteeredRecommender(recommender, skip_risk=auto)
