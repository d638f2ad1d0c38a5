"""What the outcome topic must hold for a replay, worked out independently of the worker's code:
from the events as produced and the lists as published."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from nowplaying.events import PlayEvent, RecommendationMessage, TrackEnd, TrackStart
from nowplaying.outcomes import OutcomeMessage
from tests.support.redis_sessions import distinct_by_session


def expected_outcomes(
    events: Sequence[PlayEvent], lists: Mapping[str, RecommendationMessage]
) -> dict[str, tuple[str, bool, int | None, str]]:
    """exposure id -> (next track, hit, rank, outcome) for every list followed by a play."""
    out: dict[str, tuple[str, bool, int | None, str]] = {}
    for session in distinct_by_session(events).values():
        starts = [i for i, e in enumerate(session) if isinstance(e, TrackStart)]
        for a, b in itertools.pairwise(starts):
            shown = lists.get(session[a].event_id)
            if shown is None:
                continue
            nxt = session[b]
            tracks = [r.track_id for r in sorted(shown.recommendations, key=lambda r: r.rank)]
            rank = tracks.index(nxt.track_id) + 1 if nxt.track_id in tracks else None
            later = [i for i in starts if i > b]
            stop = later[0] if later else len(session)
            ends = [e for e in session[b + 1 : stop] if isinstance(e, TrackEnd)]
            ends = [e for e in ends if e.track_id == nxt.track_id]
            if ends:
                outcome = _outcome(ends[0])
            elif later:
                outcome = "no_end"
            else:
                continue  # still waiting for its end
            out[shown.trigger_event_id] = (nxt.track_id, rank is not None, rank, outcome)
    return out


def _outcome(end: TrackEnd) -> str:
    if end.skipped:
        return "skip_early"
    return (
        "skip_late" if end.reason_end in {"fwdbtn", "backbtn", "clickrow", "skip"} else "listened"
    )


def check_outcomes(
    events: Sequence[PlayEvent], rec_records: Sequence[Any], outcome_records: Sequence[Any]
) -> list[OutcomeMessage]:
    """Every expected outcome is on the topic, once per exposure id (repeats byte-identical), with
    the exposure's variant and model version; returns the distinct outcomes."""
    lists = {
        m.trigger_event_id: m
        for m in (RecommendationMessage.model_validate_json(r.value) for r in rec_records)
    }
    bodies: dict[str, bytes] = {}
    for r in outcome_records:
        o = OutcomeMessage.model_validate_json(r.value)
        assert r.key == o.exposure_id.encode(), "outcomes are keyed by exposure id"
        assert bodies.setdefault(o.exposure_id, r.value) == r.value, f"{o.exposure_id} differs"
    found = {eid: OutcomeMessage.model_validate_json(b) for eid, b in bodies.items()}
    expected = expected_outcomes(events, lists)
    got = {eid: (o.next_track_id, o.hit, o.rank, o.outcome) for eid, o in found.items()}
    assert got == expected, (
        f"{len(set(got) ^ set(expected))} exposures differ; "
        f"{sum(got.get(k) != v for k, v in expected.items())} wrong"
    )
    for eid, o in found.items():
        shown = lists[eid]
        assert (o.variant, o.model_version) == (shown.variant, shown.model_version), eid
        assert o.list_length == len(shown.recommendations)
    return list(found.values())
