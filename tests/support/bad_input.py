"""Hypothesis strategies for messages that are NOT valid play events.

Each strategy yields a :class:`BadMessage`: the raw bytes a producer might put on the
``play-events`` topic, the family of fault it represents, the error classes
:func:`nowplaying.events.parse_play_event` may answer with, and the field it broke (when one
field was). The unit property test checks the
parser on them; the integration test produces them between real events and checks the worker
dead-letters each one with a reason and keeps going.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final, NamedTuple

from hypothesis import strategies as st

from nowplaying.events import MAX_TS_MS, MIN_TS_MS
from tests.support.ids import is_valid_id, opaque_ids

#: Every error class the parser uses; a bad message may get any of them.
ANY_REJECTION: Final = frozenset(
    {
        "invalid_json",
        "invalid_schema",
        "unknown_event_type",
        "unsupported_schema_version",
        "payload_too_large",
    }
)

_MAX_BYTES: Final = 16384


class BadMessage(NamedTuple):
    family: str
    raw: bytes
    expected: frozenset[str]  # error classes the parser may answer with
    field: str | None = None  # the one field made wrong or deleted, if that is the fault


def identifiers() -> st.SearchStrategy[str]:
    """Valid ids (any script, spaces, braces, quotes...), short to keep messages small."""
    return opaque_ids(max_size=24)


@st.composite
def valid_event_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid track_start or track_end, as a dict (the base the mutations start from)."""
    kind = draw(st.sampled_from(["track_start", "track_end"]))
    event: dict[str, Any] = {
        "schema_version": 1,
        "event_id": draw(identifiers()),
        "event_type": kind,
        "user_id": draw(identifiers()),
        "session_id": draw(identifiers()),
        "track_id": draw(identifiers()),
        "ts": draw(st.integers(MIN_TS_MS, MAX_TS_MS - 1)),
    }
    if kind == "track_end":
        event["skipped"] = draw(st.booleans())
        event["reason_end"] = draw(st.sampled_from(["trackdone", "fwdbtn", "endplay"]))
    return event


def encode(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def random_bytes() -> st.SearchStrategy[BadMessage]:
    """Arbitrary bytes that cannot be a JSON object (they do not start with '{')."""
    return (
        st.binary(min_size=0, max_size=512)
        .filter(lambda b: not b.lstrip().startswith(b"{"))
        .map(lambda b: BadMessage("random_bytes", b, frozenset({"invalid_json", "invalid_schema"})))
    )


@st.composite
def truncated_json(draw: st.DrawFn) -> BadMessage:
    """A valid event cut short: a proper prefix of a JSON object is never valid JSON."""
    raw = encode(draw(valid_event_dicts()))
    cut = draw(st.integers(0, len(raw) - 1))
    return BadMessage("truncated_json", raw[:cut], frozenset({"invalid_json"}))


@st.composite
def deep_nesting(draw: st.DrawFn) -> BadMessage:
    """Nesting far past any sane depth, as a whole message or inside a field."""
    depth = draw(st.integers(64, 5000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    nested = opener * depth + b"1" + closer * depth
    if draw(st.booleans()):
        raw = nested
    else:
        field = draw(st.sampled_from(["track_id", "ts", "event_type", "session_id", "user_id"]))
        base = encode({**draw(valid_event_dicts()), field: 0})
        raw = base.replace(f'"{field}":0'.encode(), f'"{field}":'.encode() + nested, 1)
    return BadMessage("deep_nesting", raw, ANY_REJECTION)


_WRONG_VALUES: Final[list[object]] = [
    None,
    True,
    0,
    -1,
    1.5,
    "x",
    "",
    "1764355200000",
    [],
    [1, 2],
    {},
    {"$gt": ""},
]


@st.composite
def wrong_types(draw: st.DrawFn) -> BadMessage:
    """A required field with a value of the wrong type (or a malformed id), or missing; the
    message carries the field."""
    event = draw(valid_event_dicts())
    required = ["event_id", "user_id", "session_id", "track_id", "ts", "event_type"]
    if event["event_type"] == "track_end":
        required.append("skipped")
    field = draw(st.sampled_from(required))
    current = event[field]
    choices = [v for v in _WRONG_VALUES if not _same_json(v, current)]
    if field == "skipped":  # any boolean is a valid value here
        choices = [v for v in choices if not isinstance(v, bool)]
    if field in {"event_id", "user_id", "session_id", "track_id"}:
        choices = [v for v in choices if not is_valid_id(v)]
        choices += ["new\nline", "nul\x00", "c1\x85", "del\x7f", "a" * 129, "\U0001f3b5" * 129]
    if draw(st.booleans()):
        event[field] = draw(st.sampled_from(choices))
    else:
        del event[field]
    expected = {"invalid_schema"}
    if field == "event_type":
        expected.add("unknown_event_type")
    return BadMessage("wrong_types", encode(event), frozenset(expected), field)


def _same_json(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


@st.composite
def huge_strings(draw: st.DrawFn) -> BadMessage:
    """An id past 128 characters, a short text past 64, or a message past the byte limit."""
    event = draw(valid_event_dicts())
    how = draw(st.sampled_from(["id", "text", "message"]))
    if how == "id":
        field = draw(st.sampled_from(["event_id", "user_id", "session_id", "track_id"]))
        event[field] = "x" * draw(st.integers(129, 4000))
        return BadMessage("huge_strings", encode(event), frozenset({"invalid_schema"}), field)
    if how == "text":
        field = draw(st.sampled_from(["reason_start", "reason_end", "context_type"]))
        event[field] = "y" * draw(st.integers(65, 4000))
        return BadMessage("huge_strings", encode(event), frozenset({"invalid_schema"}), field)
    event["padding"] = "z" * draw(st.integers(_MAX_BYTES, 3 * _MAX_BYTES))
    return BadMessage("huge_strings", encode(event), frozenset({"payload_too_large"}))


@st.composite
def bad_timestamps(draw: st.DrawFn) -> BadMessage:
    """Negative, before 2000, from 2100 on, or in seconds instead of milliseconds."""
    event = draw(valid_event_dicts())
    event["ts"] = draw(
        st.one_of(
            st.integers(max_value=-1),
            st.integers(0, MIN_TS_MS - 1),
            st.integers(MAX_TS_MS, 2**63),
            st.integers(1_000_000_000, 4_102_444_800),  # epoch seconds, not ms
        )
    )
    return BadMessage("bad_timestamps", encode(event), frozenset({"invalid_schema"}), "ts")


@st.composite
def unknown_schema_version(draw: st.DrawFn) -> BadMessage:
    event = draw(valid_event_dicts())
    event["schema_version"] = draw(
        st.one_of(
            st.integers().filter(lambda v: v != 1),
            st.sampled_from(["1", "2", 1.5, None, [1]]),
        )
    )
    return BadMessage(
        "unknown_schema_version", encode(event), frozenset({"unsupported_schema_version"})
    )


@st.composite
def unknown_event_type(draw: st.DrawFn) -> BadMessage:
    event = draw(valid_event_dicts())
    event["event_type"] = draw(
        st.text(max_size=20).filter(lambda t: t not in {"track_start", "track_end", "steer"})
    )
    return BadMessage("unknown_event_type", encode(event), frozenset({"unknown_event_type"}))


def not_an_object() -> st.SearchStrategy[BadMessage]:
    """Valid JSON that is not an object: a list, a number, a string, null."""
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4),
        max_leaves=8,
    )
    return values.map(
        lambda v: BadMessage("not_an_object", encode(v), frozenset({"invalid_schema"}))
    )


def bad_messages() -> st.SearchStrategy[BadMessage]:
    """Any of the families above."""
    return st.one_of(
        random_bytes(),
        truncated_json(),
        deep_nesting(),
        wrong_types(),
        huge_strings(),
        bad_timestamps(),
        unknown_schema_version(),
        unknown_event_type(),
        not_an_object(),
    )


FAMILIES: Final = (
    "random_bytes",
    "truncated_json",
    "deep_nesting",
    "wrong_types",
    "huge_strings",
    "bad_timestamps",
    "unknown_schema_version",
    "unknown_event_type",
    "not_an_object",
)


def far_future_event(event: dict[str, Any], skew_seconds: int) -> bytes:
    """A schema-valid event stamped twice the allowed clock skew ahead of now: the parser takes
    it (it is before 2100), the worker must dead-letter it."""
    ahead_ms = (int(time.time()) + 2 * max(skew_seconds, 3600)) * 1000
    return encode({**event, "ts": min(ahead_ms, MAX_TS_MS - 1)})
