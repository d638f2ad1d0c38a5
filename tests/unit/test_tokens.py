"""API tokens without a server: hashing, entries and their parsing, the constant-time check,
scopes, signed stream tokens (expiry, tampering) and the rate limiter (injected clock)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from serving.ratelimit import RateLimiter
from serving.stream_tokens import Rejected, StreamTokens, _b64decode, _b64encode
from serving.tokens import (
    ApiToken,
    Caller,
    TokenConfigError,
    find_caller,
    mint_token,
    parse_scopes,
    parse_tokens,
    token_digest,
)
from tests.support.clock import Clock

HEX_A = hashlib.sha256(b"token-a").hexdigest()
HEX_B = hashlib.sha256(b"token-b").hexdigest()


# --- hashing, entries, parsing ----------------------------------------------------------------


def test_the_digest_is_sha256_of_the_tokens_utf8_bytes() -> None:
    assert token_digest("abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert token_digest("é") == hashlib.sha256("é".encode()).digest()


def test_a_minted_token_is_random_and_its_entry_parses_back_to_it() -> None:
    token, configured = mint_token("player", ["steer", "read"])
    other, _ = mint_token("player", ["read"])
    assert token.startswith("np_") and len(token) > 40 and token != other
    assert configured.entry == f"player:read+steer:{hashlib.sha256(token.encode()).hexdigest()}"
    assert token not in configured.entry
    (parsed,) = parse_tokens(configured.entry)
    assert parsed == configured
    assert find_caller([parsed], token) == Caller("player", frozenset({"read", "steer"}))


def test_entries_parse_with_spaces_upper_case_hex_and_empty_items() -> None:
    parsed = parse_tokens(f" dash:read:{HEX_A.upper()} ,, ops.1:steer+read:{HEX_B} ,")
    assert parsed == (
        ApiToken("dash", frozenset({"read"}), bytes.fromhex(HEX_A)),
        ApiToken("ops.1", frozenset({"read", "steer"}), bytes.fromhex(HEX_B)),
    )
    assert parse_tokens("") == ()


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (f"dash:read:{HEX_A}:extra", "3 fields"),
        (f"dash:{HEX_A}", "3 fields"),
        (f"das h:read:{HEX_A}", "name must be"),
        (f":read:{HEX_A}", "name must be"),
        (f"dash:write:{HEX_A}", "unknown scope 'write'"),
        (f"dash::{HEX_A}", "no scopes"),
        ("dash:read:abc123", "64 hexadecimal"),
        (f"dash:read:{mint_token('x', ['read'])[0]}", "64 hexadecimal"),
        (f"dash:read:{HEX_A},dash:steer:{HEX_B}", "'dash' repeated"),
        (f"one:read:{HEX_A},two:steer:{HEX_A}", "same hash"),
    ],
)
def test_malformed_entries_are_refused_saying_why_without_echoing_hashes(
    spec: str, says: str
) -> None:
    with pytest.raises(TokenConfigError, match=says) as info:
        parse_tokens(spec)
    message = str(info.value)
    assert HEX_A not in message.lower() and HEX_B not in message and "np_" not in message


def test_scopes_parse_from_the_cli_and_do_not_imply_each_other() -> None:
    assert parse_scopes("read, steer", separator=",") == {"read", "steer"}
    with pytest.raises(TokenConfigError, match="unknown scope 'admin'"):
        parse_scopes("read,admin", separator=",")
    steer_only = Caller("s", frozenset({"steer"}))
    assert steer_only.allows("steer") and not steer_only.allows("read")


# --- the constant-time check ------------------------------------------------------------------


def test_every_configured_hash_is_compared_with_compare_digest_whatever_matched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    minted = [mint_token(f"t{i}", ["read"]) for i in range(5)]
    configured = [entry for _, entry in minted]
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for token, entry in (minted[0], minted[4]):  # the first configured, the last
        calls.clear()
        assert find_caller(configured, token) == Caller(entry.name, entry.scopes)
        assert [b for _, b in calls] == [e.digest for e in configured]
        assert all(a == token_digest(token) for a, _ in calls)  # hashes, never raw tokens
    calls.clear()
    assert find_caller(configured, "np_wrong") is None
    assert len(calls) == 5


# --- signed stream tokens ---------------------------------------------------------------------


def test_a_stream_token_names_its_caller_and_scope_until_it_expires() -> None:
    clock = Clock()
    signer = StreamTokens(b"k" * 32, 60, clock)
    issued = signer.issue(Caller("dash", frozenset({"read", "steer"})), "read")
    assert issued.expires_at == int(clock.now) + 60
    assert signer.issue(Caller("dash", frozenset({"read"})), "read").token != issued.token
    assert signer.verify(issued.token) == Caller("dash", frozenset({"read"}))
    clock.now += 59.9
    assert signer.verify(issued.token) == Caller("dash", frozenset({"read"}))
    clock.now += 0.1
    assert signer.verify(issued.token) == Rejected("expired")


def tamper_claims(token: str, **changes: Any) -> str:
    version, payload, signature = token.split(".")
    claims = json.loads(_b64decode(payload)) | changes
    return ".".join([version, _b64encode(json.dumps(claims).encode()), signature])


def test_a_tampered_or_foreign_stream_token_is_refused() -> None:
    clock = Clock()
    signer = StreamTokens(b"k" * 32, 60, clock)
    token = signer.issue(Caller("dash", frozenset({"read"})), "read").token
    version, payload, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert signer.verify(tamper_claims(token, sub="admin")) == Rejected("bad_signature")
    assert signer.verify(tamper_claims(token, exp=2**40)) == Rejected("bad_signature")
    assert signer.verify(tamper_claims(token, scope="steer")) == Rejected("bad_signature")
    assert signer.verify(f"{version}.{payload}.{flipped}") == Rejected("bad_signature")
    assert StreamTokens(b"j" * 32, 60, clock).verify(token) == Rejected("bad_signature")
    for junk in ("", "v1", "v1.a.b.c", f"v2.{payload}.{signature}", token + "x" * 600):
        assert signer.verify(junk) == Rejected("malformed"), junk
    with pytest.raises(ValueError, match="16 bytes"):
        StreamTokens(b"short", 60, clock)


# --- the rate limiter -------------------------------------------------------------------------


def test_the_bucket_allows_the_burst_then_the_rate_per_key() -> None:
    clock = Clock(100.0)
    limiter = RateLimiter(rate_per_second=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # another token's bucket is full
    clock.now += 0.25
    assert limiter.take("a") == pytest.approx(0.25)  # half a request refilled
    clock.now += 0.25
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 3600  # refills up to the burst, no further
    assert [limiter.take("a") for _ in range(4)][-1] == pytest.approx(0.5)


def test_a_limiter_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0, 1)
    with pytest.raises(ValueError):
        RateLimiter(1.0, 0)
