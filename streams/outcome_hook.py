"""The seam between the pipeline and exposure attribution (:mod:`streams.attribution`).

Attribution costs no Redis round trip of its own: the pipeline applies a batch with
``attribution=True`` (each answer holds its session's attribution state and the event's stored
outcome), asks the hook to :meth:`OutcomeHook.fold` the batch with the lists it is about to
store, and stores the :attr:`Attributed.saves` with the batch's results, in the same call and
before the batch is published. When the store answers that another writer's list was stored
first for one of the batch's starts, the pipeline folds again with the lists stored and saves
that in a call of its own (the result call saved nothing of those sessions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from features.store import Applied, AttributionSave

if TYPE_CHECKING:
    from streams.pipeline import RawMessage, Record


class Attributed(Protocol):
    """A batch's events attributed to earlier lists."""

    @property
    def records(self) -> Sequence[Record]:
        """The outcome records to publish with the batch."""
        ...

    @property
    def saves(self) -> Sequence[AttributionSave]:
        """The sessions' new attribution states and outcomes, to store with its results."""
        ...

    def report(self) -> None:
        """Tell the sensor the batch's exposures and outcomes (once, when published)."""
        ...


class OutcomeHook(Protocol):
    def fold(
        self, ok: Sequence[tuple[Applied, RawMessage]], lists: Mapping[str, str]
    ) -> Attributed:
        """Attribute the applied events (read with ``attribution=True``), given the lists
        published for their starts and steers (trigger event id -> JSON). No I/O."""
        ...
