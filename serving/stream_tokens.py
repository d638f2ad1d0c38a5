"""Short-lived signed stream tokens, for the live page's server-sent events.

A browser's ``EventSource`` cannot send an ``Authorization`` header, so the page trades its
bearer token for a stream token (``POST /v1/stream-tokens``) and puts that in the stream's URL
(``?stream_token=...``). A stream token names the bearer token it was issued to and its scope,
expires after ``NP_API_STREAM_TOKEN_SECONDS`` (60 s by default) and is signed with HMAC-SHA256
under ``NP_API_STREAM_TOKEN_KEY`` (or a random key per process). It is accepted on the live
stream's route only, and checked when the stream opens.

Format: ``v1.<payload>.<signature>``, both parts unpadded base64url; the payload is the JSON
``{"sub": token name, "scope": scope, "exp": epoch seconds, "nonce": random}`` (the nonce
makes every token unique).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from serving.tokens import SCOPES, Caller, Scope

VERSION: Final = "v1"
#: Longer query values are refused before any decoding.
MAX_LENGTH: Final = 512
_CONTEXT: Final = b"nowplaying stream token "


@dataclass(frozen=True)
class StreamToken:
    token: str
    expires_at: int
    """Epoch seconds."""


@dataclass(frozen=True)
class Rejected:
    """Why a stream token was refused: ``malformed``, ``bad_signature`` or ``expired``."""

    reason: str


class StreamTokens:
    """Issues and verifies stream tokens under one key. ``clock``: epoch seconds."""

    def __init__(
        self, key: bytes, lifetime_seconds: int, clock: Callable[[], float] = time.time
    ) -> None:
        if len(key) < 16:
            raise ValueError("the stream token key must be at least 16 bytes")
        self._key = key
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock

    def issue(self, caller: Caller, scope: Scope) -> StreamToken:
        expires_at = int(self._clock()) + self.lifetime_seconds
        body = json.dumps(
            {"sub": caller.name, "scope": scope, "exp": expires_at, "nonce": secrets.token_hex(8)},
            separators=(",", ":"),
        )
        payload = _b64encode(body.encode())
        return StreamToken(f"{VERSION}.{payload}.{self._sign(payload)}", expires_at)

    def verify(self, token: str) -> Caller | Rejected:
        """The caller a valid, unexpired token names (with its one scope), else why not."""
        parts = token.split(".") if len(token) <= MAX_LENGTH else []
        if len(parts) != 3 or parts[0] != VERSION:
            return Rejected("malformed")
        _, payload, signature = parts
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return Rejected("bad_signature")
        try:
            claims = json.loads(_b64decode(payload))
            name, scope, expires_at = claims["sub"], claims["scope"], claims["exp"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return Rejected("malformed")
        if not (isinstance(name, str) and scope in SCOPES and isinstance(expires_at, int)):
            return Rejected("malformed")
        if self._clock() >= expires_at:
            return Rejected("expired")
        return Caller(name, frozenset({scope}))

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._key, _CONTEXT + payload.encode(), hashlib.sha256)
        return _b64encode(mac.digest())


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
