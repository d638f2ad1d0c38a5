"""The worker moves its start-up objects out of the garbage collector's generations, after
collecting the garbage there is (a frozen cycle would never be collected), and collects its
youngest generation less often."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.worker import YOUNG_COLLECTION_THRESHOLD, freeze_startup_objects


class _Node:
    def __init__(self) -> None:
        self.me: _Node | None = self


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_start_up_objects_leave_the_collected_generations() -> None:
    kept = [[i] for i in range(1000)]  # long-lived containers, as the models and clients are
    assert gc.get_freeze_count() < len(kept)
    asyncio.run(freeze_startup_objects())
    assert gc.get_freeze_count() >= len(kept)
    assert len(kept) == 1000


def test_garbage_is_collected_before_the_freeze() -> None:
    node = _Node()
    gone = weakref.ref(node)
    gc.disable()  # no collection but the freeze's own
    try:
        del node
        assert gone() is not None  # a cycle: reference counting alone does not free it
        asyncio.run(freeze_startup_objects())
        assert gone() is None
    finally:
        gc.enable()


def test_the_youngest_generation_is_collected_less_often() -> None:
    older = gc.get_threshold()[1:]
    asyncio.run(freeze_startup_objects())
    assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *older)
