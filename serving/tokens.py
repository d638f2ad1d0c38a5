"""API bearer tokens: scopes, the configured hashes, the constant-time check, minting.

The API is configured with SHA-256 hashes of its tokens, never the tokens themselves
(``NP_API_TOKENS``, comma-separated entries ``name:scopes:sha256hex``, scopes joined by ``+``)::

    NP_API_TOKENS="dashboard:read:9f86d0...,player-backend:read+steer:60303a..."

A presented token is hashed and compared with **every** configured hash through
:func:`hmac.compare_digest`, so neither the comparison nor the loop stops early on a match.
``nowplaying api token create --name NAME --scopes read,steer`` mints a token
(:func:`mint_token`), prints it once and prints its entry. Scopes do not imply each other: a
``steer``-only token cannot read.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

from nowplaying.settings import Settings

Scope = Literal["read", "steer"]
#: Every scope, in the order entries spell them.
SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)
#: What a minted token starts with (recognisable in a leaked-secret scan).
TOKEN_PREFIX: Final = "np_"
NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEX_DIGEST: Final = re.compile(r"^[0-9a-fA-F]{64}$")


class TokenConfigError(ValueError):
    """NP_API_TOKENS (or a token request) is malformed; the message says how, never echoing a
    hash or a token."""


@dataclass(frozen=True)
class ApiToken:
    """One configured token: its name, its scopes and the SHA-256 digest of the token."""

    name: str
    scopes: frozenset[Scope]
    digest: bytes

    @property
    def entry(self) -> str:
        """The token's ``NP_API_TOKENS`` entry."""
        return f"{self.name}:{format_scopes(self.scopes)}:{self.digest.hex()}"


@dataclass(frozen=True)
class Caller:
    """Who made a request: a configured token's name and scopes (or the open mode's caller)."""

    name: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


def token_digest(token: str) -> bytes:
    """SHA-256 of the token's UTF-8 bytes: what ``NP_API_TOKENS`` holds (as hex)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def format_scopes(scopes: Iterable[Scope]) -> str:
    chosen = set(scopes)
    return "+".join(s for s in SCOPES if s in chosen)


def parse_scopes(text: str, separator: str = "+") -> frozenset[Scope]:
    """``read+steer`` (or ``read,steer`` with ``separator=","``) as a set of scopes."""
    names = [n.strip() for n in text.split(separator) if n.strip()]
    if not names:
        raise TokenConfigError(f"no scopes (choose from {', '.join(SCOPES)})")
    unknown = sorted(set(names) - set(SCOPES))
    if unknown:
        raise TokenConfigError(
            f"unknown scope {', '.join(map(repr, unknown))} (choose from {', '.join(SCOPES)})"
        )
    return frozenset(s for s in SCOPES if s in names)


def parse_tokens(spec: str) -> tuple[ApiToken, ...]:
    """The entries of ``NP_API_TOKENS``; :class:`TokenConfigError` names the first bad one."""
    tokens: list[ApiToken] = []
    for number, raw in enumerate(spec.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        parts = entry.split(":")
        where = f"NP_API_TOKENS entry {number}"
        if len(parts) != 3:
            raise TokenConfigError(
                f"{where}: expected 'name:scopes:sha256hex' (3 fields separated by ':'), "
                f"found {len(parts)} field(s)"
            )
        name, scopes, hex_digest = (p.strip() for p in parts)
        if not NAME_PATTERN.match(name):
            raise TokenConfigError(
                f"{where}: the name must be 1-64 characters of A-Z a-z 0-9 _ . -"
            )
        where = f"{where} ({name!r})"
        try:
            scope_set = parse_scopes(scopes)
        except TokenConfigError as exc:
            raise TokenConfigError(f"{where}: {exc}") from None
        if not _HEX_DIGEST.match(hex_digest):
            raise TokenConfigError(
                f"{where}: the hash must be a SHA-256 digest, 64 hexadecimal characters "
                "(the token itself never goes in the settings; `nowplaying api token create` "
                "prints the entry)"
            )
        tokens.append(ApiToken(name, scope_set, bytes.fromhex(hex_digest)))
    names = [t.name for t in tokens]
    if duplicated := sorted({n for n in names if names.count(n) > 1}):
        raise TokenConfigError(
            f"NP_API_TOKENS: names must be unique, {', '.join(map(repr, duplicated))} repeated"
        )
    digests = [t.digest for t in tokens]
    if len(set(digests)) != len(digests):
        shared = sorted({t.name for t in tokens if digests.count(t.digest) > 1})
        raise TokenConfigError(
            f"NP_API_TOKENS: entries {', '.join(map(repr, shared))} have the same hash"
        )
    return tuple(tokens)


def find_caller(tokens: Sequence[ApiToken], presented: str) -> Caller | None:
    """The configured token the presented one hashes to, or None.

    Every configured digest is compared, in constant time, whatever matched before: the time
    taken depends on how many tokens are configured, not on which one (if any) matched.
    """
    digest = token_digest(presented)
    found: ApiToken | None = None
    for token in tokens:
        if hmac.compare_digest(digest, token.digest) and found is None:
            found = token
    return None if found is None else Caller(found.name, found.scopes)


def mint_token(name: str, scopes: Iterable[Scope]) -> tuple[str, ApiToken]:
    """A new random token (256 bits) and its configuration entry."""
    if not NAME_PATTERN.match(name):
        raise TokenConfigError("the name must be 1-64 characters of A-Z a-z 0-9 _ . -")
    chosen = frozenset(scopes)
    if not chosen:
        raise TokenConfigError(f"no scopes (choose from {', '.join(SCOPES)})")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, ApiToken(name, chosen, token_digest(token))


def create_command(settings: Settings, args: argparse.Namespace) -> int:
    """``nowplaying api token create``: print a new token once, and its NP_API_TOKENS entry."""
    try:
        token, entry = mint_token(args.name, parse_scopes(args.scopes, separator=","))
    except TokenConfigError as exc:
        print(f"nowplaying api token create: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"name": entry.name, "token": token, "entry": entry.entry}))
        return 0
    print(
        f"Token {entry.name!r} ({format_scopes(entry.scopes)}), shown this once and stored "
        "nowhere; the client sends it as 'Authorization: Bearer <token>':\n"
        f"\n  {token}\n\n"
        "Configure the API with its hash (add the entry to NP_API_TOKENS, comma-separated; "
        "every API process needs it, restart them to apply):\n"
        f"\n  NP_API_TOKENS={entry.entry}\n"
    )
    return 0
