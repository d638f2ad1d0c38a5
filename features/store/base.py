"""The feature store's contract: what the stream pipeline needs of it, and its result types.

:class:`FeatureStore` is the seam between the pipeline and a storage back-end
(:mod:`features.store.redis_single`, :mod:`features.store.redis_cluster`, and the tests'
in-memory double); one contract test suite holds every back-end to the same behaviour:

* :meth:`FeatureStore.apply_events` applies events in order, each at most once per session
  (dedupe by event id); a new event is appended to the session's log, which keeps the last
  ``max_events`` records, and refreshes the session's inactivity TTL; every event's answer
  holds the session's whole log right after it (a redelivered one: the log as it is now) and
  the list stored for it, if any.
* Fencing (:class:`Fencing`, see docs/operations.md "Ordering and fencing"): each input
  partition has an owner epoch, raised by :meth:`FeatureStore.claim_partitions` on every
  assignment, and a watermark ``next``. A batch applied with a :class:`Fencing` writes nothing
  for a partition whose epoch is not the caller's (:data:`FENCED`), refuses a new event whose
  offset is not above the last one applied to its session from the same partition
  (:data:`OUT_OF_ORDER`), and moves the partition's ``next`` past the batch's offsets.
* :meth:`FeatureStore.write_results` stores session states, recommendation lists (once per
  trigger event: a list once stored is never replaced, and the stored one is returned) and the
  users' pointers, each with the TTL.
* Attribution (:mod:`features.store.attribution`) rides on the same two calls: with
  ``attribution=True``, :meth:`FeatureStore.apply_events` also answers, per event, the
  session's stored attribution state and the outcome stored under the event's id; and
  :meth:`FeatureStore.write_results` saves each :class:`AttributionSave` (the state unless the
  stored one is as far along the same partition or further; outcomes never replaced), but only
  when every list of its session in that call is stored as given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeAlias

from features.session import (
    SessionState,
    decode_event,
    encode_event,
    fold_events,
    to_session_event,
)
from nowplaying.steer_events import InputEvent

#: How many users the active-users index keeps (the most recently active).
ACTIVE_USERS_KEPT: Final = 1000

#: :attr:`Applied.refused`: the event's partition has a newer owner; nothing was written.
FENCED: Final = "fenced"
#: :attr:`Applied.refused`: a new event whose offset is not above the offset of the last event
#: applied to its session from the same partition; nothing was written.
OUT_OF_ORDER: Final = "out_of_order"

#: An input partition: (topic, partition).
TopicPartition: TypeAlias = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Claim:
    """A partition as an assignment finds it: the new owner's epoch (one more than any before)
    and the watermark ``next_offset`` (None when nothing was ever applied from it)."""

    epoch: int
    next_offset: int | None


@dataclass(frozen=True, slots=True)
class Stamp:
    """Where an event was read and the epoch its writer holds for that partition."""

    topic: str
    partition: int
    offset: int
    epoch: int

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class Fencing:
    """A batch's claim: a :class:`Stamp` per event, and per partition of the batch the
    writer's epoch and the end of the batch's offsets there (the last offset + 1, dead-lettered
    messages included)."""

    stamps: Sequence[Stamp]
    ends: Mapping[TopicPartition, tuple[int, int]]  # partition -> (epoch, end offset)


@dataclass(frozen=True, slots=True)
class Applied:
    """What the store answered for one event: new or a redelivery, the session log after it
    and the state folded from that log (same fold as training).

    ``error`` is set (and the rest empty) when the store refused the event alone (in Redis: a
    session key of the wrong type); the event cannot be applied. ``refused`` is :data:`FENCED`
    or :data:`OUT_OF_ORDER` (and the rest empty) when the batch's :class:`Fencing` refused it.
    """

    event: InputEvent
    duplicate: bool
    records: tuple[str, ...]
    folded: SessionState = field(default_factory=SessionState)
    stored_list: str | None = None
    error: str | None = None
    refused: str | None = None
    #: Asked with ``attribution=True``: the session's attribution state JSON as stored when
    #: the event was applied (None: none stored), and the outcome JSON stored under its id.
    attribution_state: str | None = None
    stored_outcome: str | None = None

    def state(self) -> SessionState:
        """The session state after the whole returned log."""
        return self.folded

    def state_after_event(self) -> SessionState | None:
        """The state right after this event: the whole log for a new event; for a redelivery,
        the log up to the event's own record (None when it was trimmed away)."""
        if not self.duplicate:
            return self.folded
        record = encode_event(to_session_event(self.event))
        try:
            end = self.records.index(record) + 1
        except ValueError:
            return None
        return fold_events(decode_event(r) for r in self.records[:end])


@dataclass(frozen=True, slots=True)
class StoredList:
    """A recommendation list to store: JSON of the message, and whether it is the user's latest."""

    user_id: str
    session_id: str
    trigger_event_id: str
    message_json: str
    update_latest: bool = True


@dataclass(frozen=True, slots=True)
class AttributionSave:
    """A session's new attribution state (its JSON, and the partition tag and offset of the
    last event it folded) and the outcomes its events completed (event id -> JSON)."""

    session_id: str
    tag: str
    offset: int
    state_json: str
    emitted: Mapping[str, str]


class FeatureStore(Protocol):
    """The worker's writes (see the module docstring for the contract). Errors of the
    connection propagate: the caller retries, and every call is idempotent."""

    async def claim_partitions(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, Claim]:
        """Take the partitions over: raise each one's epoch by one and read its watermark."""
        ...

    async def apply_events(
        self,
        events: Sequence[InputEvent],
        fencing: Fencing | None = None,
        *,
        attribution: bool = False,
    ) -> list[Applied]:
        """Apply the events in order; one answer per event, in the same order. With
        ``fencing`` (a stamp per event), refuse what the fence refuses and move ``next``. With
        ``attribution``, each answer not refused also holds its session's attribution state
        and the event's stored outcome."""
        ...

    async def write_results(
        self,
        states: Mapping[str, SessionState],
        lists: Sequence[StoredList],
        activity: Mapping[str, tuple[str, int]],
        stamps: Mapping[str, Stamp] | None = None,
        attribution: Sequence[AttributionSave] = (),
    ) -> list[str]:
        """Store session states, recommendation lists, user pointers and active users.

        ``states``: session id -> state after its last event; ``activity``: user id ->
        (session id, ts of the user's last event). A list is stored under its trigger event id
        only if none is stored yet. Returns, for each list, the JSON that is stored (the one to
        publish). A user's latest list is the last one given with ``update_latest``.
        ``stamps``: session id -> the stamp of the event its state follows; a state is not
        stored when the session's last applied event has a newer epoch or a later offset from
        that partition (a fenced writer cannot overwrite a newer owner's state).
        ``attribution``: the sessions' attribution saves, each stored only when every list of
        its session given here is stored as given (the caller compares the returned JSON).
        """
        ...


def as_text(value: str | bytes) -> str:
    """A Redis reply (bytes without ``decode_responses``) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
