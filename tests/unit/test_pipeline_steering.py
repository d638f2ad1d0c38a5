"""Steering through the worker's own call: the pipeline ranking with the steered recommender
(as the worker does) publishes, for sessions without intents, exactly the bytes the bare
recommender gives; a steer event is answered in the same batch with a steered, labelled list."""

from __future__ import annotations

import asyncio
import functools
import json

import pytest

from models.datasets import synthetic_sessions
from models.labelled_sessions import session_events
from models.recommender import Recommender
from nowplaying.events import PlayEvent, RecommendationMessage, TrackStart
from streams.instrumentation import CountingSensor
from streams.pipeline import Pipeline, Ranker, RawMessage
from streams.steering import steered
from tests.support.batches import NOW_S, TOPIC, pipeline_settings
from tests.support.fakes import FakePublisher, MemoryStore
from tests.support.tiny_models import shared_two_versions

START_TS = 1_795_800_000_000


@pytest.fixture(scope="module")
def recommender() -> Recommender:
    folder, latest, _ = shared_two_versions()
    return Recommender.load(folder / latest)


@pytest.fixture(scope="module")
def sessions() -> list[list[PlayEvent]]:
    return [session_events(s, START_TS) for s in synthetic_sessions(40, seed=7)[30:36]]


def run(ranker: Ranker, values: list[bytes]) -> list[bytes]:
    """One batch (each session's events keyed by its user); the recommendation records."""
    publisher = FakePublisher()
    pipeline = Pipeline(
        pipeline_settings(),
        MemoryStore(),
        ranker,
        publisher,
        sensor=CountingSensor(),
        clock=lambda: NOW_S,
    )
    messages = [
        RawMessage(v, json.loads(v)["user_id"].encode(), TOPIC, 0, i, START_TS)
        for i, v in enumerate(values)
    ]
    asyncio.run(pipeline.process_batch(messages))
    return publisher.on(pipeline_settings().topic_recommendations)


def encoded(sessions: list[list[PlayEvent]]) -> list[bytes]:
    return [e.model_dump_json().encode() for s in sessions for e in s]


def steer_after(
    session: list[PlayEvent], nth_start: int, event_id: str, intent: str, **extra: str
) -> tuple[int, bytes]:
    """A steer of ``session`` right after its ``nth_start``-th track start: the index after
    that start, and the steer event's JSON."""
    cut = [i for i, e in enumerate(session) if isinstance(e, TrackStart)][nth_start] + 1
    steer = {
        "event_id": event_id,
        "event_type": "steer",
        "user_id": session[0].user_id,
        "session_id": session[0].session_id,
        "ts": session[cut - 1].ts + 10,
        "intent": intent,
        **extra,
    }
    return cut, json.dumps(steer).encode()


def test_lists_without_intents_are_the_bare_recommenders_byte_for_byte(
    recommender: Recommender, sessions: list[list[PlayEvent]]
) -> None:
    values = encoded(sessions)
    bare = run(recommender, values)
    assert len(bare) == sum(isinstance(e, TrackStart) for s in sessions for e in s)
    assert run(steered(recommender), values) == bare
    assert all(json.loads(v)["steering"] is None for v in bare)


def test_a_steer_event_is_answered_in_its_batch_and_only_its_session_changes(
    recommender: Recommender, sessions: list[list[PlayEvent]]
) -> None:
    first = sessions[0]
    starts = [e for e in first if isinstance(e, TrackStart)]
    cut, steer = steer_after(first, 2, "st-1", "more_like_this", track_id=starts[2].track_id)
    rest = [e.model_dump_json().encode() for e in first[cut:]]
    values = [*encoded([first[:cut]]), steer, *rest, *encoded(sessions[1:])]
    lists = [
        RecommendationMessage.model_validate_json(v) for v in run(steered(recommender), values)
    ]
    by_trigger = {m.trigger_event_id: m for m in lists}
    answer = by_trigger["st-1"]
    assert answer.steering == "more_like_this"
    before = by_trigger[first[cut - 1].event_id]
    assert before.steering is None
    assert answer.recommendations != before.recommendations
    # the session's later starts stay steered (the intent is active); others are untouched
    later = [by_trigger[e.event_id] for e in first[cut:] if isinstance(e, TrackStart)]
    assert later and all(m.steering == "more_like_this" for m in later)
    others = run(recommender, encoded(sessions[1:]))
    mine = [m.model_dump_json().encode() for m in lists if m.session_id != first[0].session_id]
    assert mine == others


def test_a_redelivered_steer_republishes_its_stored_list_byte_for_byte(
    recommender: Recommender, sessions: list[list[PlayEvent]]
) -> None:
    first = sessions[1]
    cut, steer = steer_after(first, 1, "st-2", "discover")
    values = [*encoded([first[:cut]]), steer]
    messages = [
        RawMessage(v, first[0].user_id.encode(), TOPIC, 0, i, START_TS)
        for i, v in enumerate(values)
    ]
    store, publisher = MemoryStore(), FakePublisher()
    for clock in (NOW_S, NOW_S + 60):  # a redelivery a minute later (another generated_at)
        pipeline = Pipeline(
            pipeline_settings(),
            store,
            steered(recommender),
            publisher,
            sensor=CountingSensor(),
            clock=functools.partial(float, clock),
        )
        asyncio.run(pipeline.process_batch(messages))
    published = [
        v for v in publisher.on(pipeline_settings().topic_recommendations) if b'"st-2"' in v
    ]
    assert len(published) == 2 and published[0] == published[1]
    assert json.loads(published[0])["steering"] == "discover"
    log = asyncio.run(store.session_events(first[0].session_id))
    assert [e.kind for e in log].count("steer") == 1
