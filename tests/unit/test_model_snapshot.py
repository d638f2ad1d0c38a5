"""A batch ranks with the models of one snapshot, taken when it starts: a swap while it is in
flight serves from the next batch on, and every list names the version that computed it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from features.session import SessionState
from nowplaying.events import Recommendation, RecommendationMessage
from streams.pipeline import Pipeline
from streams.ranking import ModelSnapshot
from tests.support.batches import NOW_S, pipeline_settings, raw, start
from tests.support.fakes import FakePublisher, FakeRanker, MemoryStore, RecordingSensor


class SwappingSource:
    """A model source whose ranker swaps the source to ``new`` while it ranks (a hot reload
    landing in the middle of a batch)."""

    def __init__(self, old: FakeRanker, new: FakeRanker) -> None:
        self.new = new
        self.current = ModelSnapshot({None: self._swapping(old)})
        self.calls = 0

    def _swapping(self, ranker: FakeRanker) -> FakeRanker:
        source = self

        class Swapping(FakeRanker):
            def recommend(
                self, states: Sequence[SessionState], k: int
            ) -> list[list[Recommendation]]:
                source.current = ModelSnapshot({None: source.new})
                return super().recommend(states, k)

        return Swapping(model_version=ranker.model_version)

    def snapshot(self) -> ModelSnapshot:
        self.calls += 1
        return self.current


def test_a_swap_during_a_batch_serves_from_the_next_batch() -> None:
    settings = pipeline_settings()
    publisher = FakePublisher()
    source = SwappingSource(FakeRanker(model_version="old"), FakeRanker(model_version="new"))
    pipeline = Pipeline(
        settings,
        MemoryStore(),
        FakeRanker(model_version="unused"),
        publisher,
        sensor=RecordingSensor(),
        models=source,
        clock=lambda: NOW_S,
    )
    first = [start(i, f"t{i}", session=f"s{i}", user=f"u{i}") for i in range(3)]
    second = [start(9, "t9", session="s9", user="u9")]
    asyncio.run(pipeline.process_batch(raw(first)))
    asyncio.run(pipeline.process_batch(raw(second, first_offset=3)))
    lists = [
        RecommendationMessage.model_validate_json(v)
        for v in publisher.on(settings.topic_recommendations)
    ]
    assert [m.model_version for m in lists] == ["old", "old", "old", "new"]
    assert source.calls == 2  # one snapshot per batch
