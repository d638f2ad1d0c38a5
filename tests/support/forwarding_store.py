"""A feature store that forwards every call to another one, with hooks for the tests that
need to act around a call: pause before it, write something first, lose its reply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from features.session import SessionState
from features.store import (
    Applied,
    AttributionSave,
    Claim,
    FeatureStore,
    Fencing,
    Stamp,
    StoredList,
    TopicPartition,
)
from nowplaying.steer_events import InputEvent

Call = Literal["apply", "write"]


class ForwardingStore:
    """``store`` behind the :class:`features.store.FeatureStore` calls the pipeline makes."""

    def __init__(self, store: FeatureStore) -> None:
        self._store = store

    async def before(self, call: Call, lists: Sequence[StoredList] = ()) -> None:
        """Runs before each apply and result write (``lists``: the write's lists)."""

    def written(self, attribution: Sequence[AttributionSave]) -> None:
        """Runs after each result write Redis applied, before its reply is returned."""

    async def claim_partitions(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, Claim]:
        return await self._store.claim_partitions(partitions)

    async def apply_events(
        self,
        events: Sequence[InputEvent],
        fencing: Fencing | None = None,
        *,
        attribution: bool = False,
    ) -> list[Applied]:
        await self.before("apply")
        return await self._store.apply_events(events, fencing, attribution=attribution)

    async def write_results(
        self,
        states: Mapping[str, SessionState],
        lists: Sequence[StoredList],
        activity: Mapping[str, tuple[str, int]],
        stamps: Mapping[str, Stamp] | None = None,
        attribution: Sequence[AttributionSave] = (),
    ) -> list[str]:
        await self.before("write", lists)
        stored = await self._store.write_results(states, lists, activity, stamps, attribution)
        self.written(attribution)
        return stored
