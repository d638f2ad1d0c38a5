"""Where each session's attribution state lives: Redis, next to the session's other keys.

Per session (same hash slot as its log): ``np:s:{<session>}:att`` (STRING, the JSON of
:class:`features.attribution.AttributionState`) and ``np:s:{<session>}:out`` (HASH, event id ->
the outcome message that event completed, so a redelivered event republishes the same bytes).
Both expire with the session (``NP_SESSION_TTL_SECONDS``).

No round trip of its own: both back-ends read a session's state and an event's stored outcome
in the apply call (``attribution=True``, ``attribution_fn.lua``'s ``with_attribution``) and save
in the result call (:class:`features.store.base.AttributionSave`), atomic in the session's slot:
the state is written only when it is further along the same partition than the stored one (so
a stale or repeated writer never moves a session's attribution back), the outcomes are added
with ``HSETNX`` (never replaced), and nothing is saved when a list of the session in the same
call was found stored by another writer (the state was folded with a list that is not the one
published: the caller folds again with the stored lists and saves in a call of its own).
"""

from __future__ import annotations

from typing import Any

from features.store.base import AttributionSave, as_text


def attribution_args(save: AttributionSave | None) -> list[Any]:
    """A session's attribution as the result scripts take it: ``0`` for none, else ``1``, tag,
    offset, state JSON, the number of outcomes and (event id, outcome JSON) pairs."""
    if save is None:
        return [0]
    args: list[Any] = [1, save.tag, save.offset, save.state_json, len(save.emitted)]
    for eid, body in save.emitted.items():
        args += [eid, body]
    return args


def read_attribution(reply: Any) -> tuple[str | None, str | None]:
    """The attribution read appended to an apply reply: state JSON and stored outcome."""
    if len(reply) < 6:
        return None, None
    state, outcome = reply[4], reply[5]
    return (
        as_text(state) if isinstance(state, bytes | str) else None,
        as_text(outcome) if isinstance(outcome, bytes | str) else None,
    )
