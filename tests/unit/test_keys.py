"""The Redis key layout: ids are escaped injectively, hash tags stay the session's own, and
ids of the old alphabet keep the keys they always had."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from redis.crc import key_slot

from nowplaying.keys import Keys, escape_id, unescape_id
from tests.support.ids import opaque_ids
from tests.support.settings import isolated_settings

KEYS = Keys("np")
MANY = settings(max_examples=300, deadline=None)
#: The id alphabet of the contract before ids became opaque.
OLD_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@+=-"


def hash_tag(key: str) -> str | None:
    """What Redis Cluster hashes: the text between the first '{' and the first '}' after it,
    when not empty; else None (the whole key is hashed)."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end < 0 or end == start + 1:
        return None
    return key[start + 1 : end]


def session_keys(session_id: str) -> list[str]:
    return [
        KEYS.session_log(session_id),
        KEYS.session_seen(session_id),
        KEYS.session_state(session_id),
        KEYS.session_recs(session_id),
    ]


def user_keys(user_id: str) -> list[str]:
    return [KEYS.user_latest(user_id), KEYS.user_session(user_id)]


@MANY
@given(st.text(alphabet=OLD_ALPHABET, min_size=1, max_size=128))
def test_ids_of_the_old_alphabet_keep_exactly_their_old_keys(old_id: str) -> None:
    assert escape_id(old_id) == old_id
    assert session_keys(old_id) == [
        f"np:s:{{{old_id}}}:log",
        f"np:s:{{{old_id}}}:seen",
        f"np:s:{{{old_id}}}:state",
        f"np:s:{{{old_id}}}:recs",
    ]
    assert user_keys(old_id) == [f"np:u:{{{old_id}}}:latest", f"np:u:{{{old_id}}}:session"]


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("u-1001", "u-1001"),
        ("spotify:track:4uLU6hMCjMI75M1A2tKUQC", "spotify:track:4uLU6hMCjMI75M1A2tKUQC"),
        ("listener+tag@example.com", "listener+tag@example.com"),
        ("ユーザー-3", "%E3%83%A6%E3%83%BC%E3%82%B6%E3%83%BC-3"),
        ("user with space 4", "user%20with%20space%204"),
        ("{a}", "%7Ba%7D"),
        ("%7Ba%7D", "%257Ba%257D"),
        ("a/b", "a%2Fb"),
        ('say "hi"', "say%20%22hi%22"),
        ("new\nline", "new%0Aline"),
        ("*?[]", "%2A%3F%5B%5D"),
        ("\U0001f3b5", "%F0%9F%8E%B5"),
    ],
)
def test_escaped_examples(value: str, escaped: str) -> None:
    assert escape_id(value) == escaped
    assert unescape_id(escaped) == value


@MANY
@given(opaque_ids())
def test_escaping_round_trips_and_leaves_only_safe_ascii(value: str) -> None:
    escaped = escape_id(value)
    assert unescape_id(escaped) == value
    assert re.fullmatch(r"[A-Za-z0-9_.:@+=~%-]+", escaped), escaped
    assert escaped == value or "%" in escaped


@MANY
@given(opaque_ids(), opaque_ids())
def test_two_different_ids_never_share_a_key(a: str, b: str) -> None:
    if a == b:
        assert session_keys(a) == session_keys(b)
        return
    assert set(session_keys(a)).isdisjoint(session_keys(b))
    assert set(user_keys(a)).isdisjoint(user_keys(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [("{a}", "%7Ba%7D"), ("a b", "a%20b"), ("a", "a "), ("é", "e\u0301"), ("%", "%25")],
)
def test_ids_that_look_alike_escaped_have_their_own_keys(a: str, b: str) -> None:
    assert KEYS.session_log(a) != KEYS.session_log(b)
    assert KEYS.user_latest(a) != KEYS.user_latest(b)


@MANY
@given(opaque_ids())
def test_the_hash_tag_of_every_session_key_is_the_escaped_session_id(session_id: str) -> None:
    escaped = escape_id(session_id)
    keys = session_keys(session_id)
    assert {hash_tag(k) for k in keys} == {escaped}
    assert {key_slot(k.encode()) for k in keys} == {key_slot(escaped.encode())}


@MANY
@given(opaque_ids())
def test_the_hash_tag_of_every_user_key_is_the_escaped_user_id(user_id: str) -> None:
    assert {hash_tag(k) for k in user_keys(user_id)} == {escape_id(user_id)}


@given(st.text(alphabet="{}", min_size=1, max_size=8), opaque_ids(max_size=8))
def test_an_id_cannot_forge_another_sessions_hash_tag(braces: str, other: str) -> None:
    forged = f"{other}}}{braces}"  # tries to close the tag early and open another
    assert hash_tag(KEYS.session_log(forged)) == escape_id(forged) != escape_id(other)


@pytest.mark.parametrize("prefix", ["{np}", "n{p", "np}"])
def test_a_key_prefix_with_braces_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError, match="redis_key_prefix"):
        isolated_settings(redis_key_prefix=prefix)
