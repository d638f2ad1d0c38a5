"""Bearer tokens for tests, minted afresh by each test process (no token is ever committed).

:data:`READER` (read), :data:`STEERER` (steer only), :data:`ADMIN` (read and steer);
``api_tokens=API_TOKENS`` in the settings configures the three hashes, and
``headers=READER.headers`` sends one.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.tokens import Scope, mint_token


@dataclass(frozen=True)
class ApiCredential:
    """A bearer token minted for tests, and its NP_API_TOKENS entry."""

    name: str
    token: str
    entry: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def credential(name: str, *scopes: Scope) -> ApiCredential:
    token, configured = mint_token(name, scopes)
    return ApiCredential(name, token, configured.entry)


READER = credential("tests-reader", "read")
STEERER = credential("tests-steerer", "steer")
ADMIN = credential("tests-admin", "read", "steer")
#: ``api_tokens`` accepting the three test credentials.
API_TOKENS = ",".join(c.entry for c in (READER, STEERER, ADMIN))
