"""Who may call the API, as FastAPI dependencies: bearer tokens and their scopes, the live
page's stream tokens, the open mode and the steering rate limit.

* ``NP_API_AUTH=on`` (the default): every data route needs ``Authorization: Bearer <token>``
  whose SHA-256 is in ``NP_API_TOKENS`` (:mod:`serving.tokens`) and whose scopes include the
  route's: ``read`` for the read routes, ``steer`` for steering. A missing or unknown token is
  401 with ``WWW-Authenticate: Bearer``, a token without the scope 403. The live stream also
  takes a signed stream token in its URL (:mod:`serving.stream_tokens`).
* ``NP_API_AUTH=off``: no checks at all; a warning says so at start, and the API refuses a
  non-loopback ``NP_API_HOST`` unless ``NP_API_AUTH_OFF_ALLOW_PUBLIC=true`` too.
* ``/healthz``, the page, its assets and the OpenAPI document are always open; ``/readyz`` and
  ``/metrics`` follow ``NP_API_AUTH_PROBES`` (``open`` by default, for Prometheus).
* Steering is rate limited per token (:mod:`serving.ratelimit`): 429 with ``Retry-After``.

Neither a token nor its hash is ever logged or put in an error body; errors name the token by
its configured name only. Refusals are logged (method, path, status and that message; a
missing token at DEBUG, the others at INFO).
"""

# No `from __future__ import annotations` here: FastAPI reads the annotations of routes and
# dependencies at run time, and some name dependencies built in a function (auth.needs).
import ipaddress
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from nowplaying.settings import Settings
from serving.errors import ApiError
from serving.ratelimit import RateLimiter
from serving.stream_tokens import Rejected, StreamTokens
from serving.tokens import SCOPES, Caller, Scope, TokenConfigError, find_caller, parse_tokens

log = logging.getLogger(__name__)

REALM: Final = "nowplaying"
#: The caller of every request in open mode (NP_API_AUTH=off): every scope, one rate bucket.
OPEN_CALLER: Final = Caller("anonymous", frozenset(SCOPES))
#: The stream token's query parameter on the live route.
STREAM_TOKEN_PARAM: Final = "stream_token"

bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="np_<random>",
    description="A token minted by `nowplaying api token create`; the API knows its SHA-256 "
    "(NP_API_TOKENS). Scopes: read (every GET under /v1, stream tokens), steer (steering).",
)
stream_token_scheme = APIKeyQuery(
    name=STREAM_TOKEN_PARAM,
    scheme_name="StreamToken",
    auto_error=False,
    description="A short-lived signed token from POST /v1/stream-tokens, accepted on the live "
    "stream only (EventSource cannot send an Authorization header).",
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
StreamTokenQuery = Annotated[str | None, Depends(stream_token_scheme)]
CallerDependency = Callable[..., Awaitable[Caller]]


class AuthConfigError(ValueError):
    """The access settings cannot be served safely; the message says what to change."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an NP_API_HOST value) is a loopback interface only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name (or "" meaning every interface): not known to be loopback


def unauthorized(message: str, error: str | None = None) -> ApiError:
    challenge = f'Bearer realm="{REALM}"' + (f', error="{error}"' if error else "")
    return ApiError(401, "unauthorized", message, None, headers={"WWW-Authenticate": challenge})


def forbidden(caller: Caller, scope: Scope) -> ApiError:
    return ApiError(
        403,
        "forbidden",
        f"token '{caller.name}' lacks the '{scope}' scope",
        {"token": caller.name, "required_scope": scope, "scopes": sorted(caller.scopes)},
        headers={
            "WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", '
            f'scope="{scope}"'
        },
    )


@contextmanager
def refusals_logged(request: Request) -> Iterator[None]:
    """Log the ApiError a check raises (never a credential: the messages hold none)."""
    try:
        yield
    except ApiError as exc:
        missing = (
            exc.status == 401
            and exc.headers
            and "error=" not in exc.headers.get("WWW-Authenticate", "")
        )
        log.log(
            logging.DEBUG if missing else logging.INFO,
            "refused %s %s: %d %s",
            request.method,
            request.url.path,
            exc.status,
            exc.message,
        )
        raise


class Auth:
    """The API's access rules, built once from settings (:class:`AuthConfigError` when they
    are unusable). ``clock`` (epoch seconds) dates stream tokens; ``monotonic`` drives the
    rate limiter."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.open = settings.api_auth == "off"
        self.probes_open = settings.api_auth_probes == "open"
        spec = settings.api_tokens.get_secret_value() if settings.api_tokens else ""
        try:
            self.tokens = parse_tokens(spec)
        except TokenConfigError as exc:
            raise AuthConfigError(str(exc)) from None
        public = not is_loopback(settings.api_host)
        if self.open and public and not settings.api_auth_off_allow_public:
            raise AuthConfigError(
                f"NP_API_AUTH=off with NP_API_HOST={settings.api_host!r}, not a loopback "
                "interface, would let anyone on the network read every listener's data. "
                "Configure tokens (NP_API_AUTH=on, NP_API_TOKENS), bind 127.0.0.1, or set "
                "NP_API_AUTH_OFF_ALLOW_PUBLIC=true as well to serve it open on purpose."
            )
        if not self.open and not self.tokens:
            raise AuthConfigError(
                "NP_API_AUTH=on but NP_API_TOKENS configures no token: mint one with "
                "`nowplaying api token create --name NAME --scopes read` and put the entry it "
                "prints in NP_API_TOKENS (or set NP_API_AUTH=off to serve it open on loopback)."
            )
        key = settings.api_stream_token_key
        signing_key = key.get_secret_value().encode() if key else secrets.token_bytes(32)
        try:
            self.stream_tokens = StreamTokens(signing_key, settings.api_stream_token_seconds, clock)
        except ValueError as exc:
            raise AuthConfigError(f"NP_API_STREAM_TOKEN_KEY: {exc}") from None
        self.steer_limiter = RateLimiter(
            settings.api_steer_rate_per_second, settings.api_steer_burst, monotonic
        )
        self._scopes_of = {t.name: t.scopes for t in self.tokens}

    # --- checks -----------------------------------------------------------------------------

    def caller_of(self, credentials: HTTPAuthorizationCredentials | None, scope: Scope) -> Caller:
        """The caller a bearer token names, if it has ``scope``; else a 401 or 403 ApiError."""
        if credentials is None:
            raise unauthorized("a bearer token is required: send 'Authorization: Bearer <token>'")
        caller = find_caller(self.tokens, credentials.credentials)
        if caller is None:
            raise unauthorized("the bearer token is not valid", "invalid_token")
        if not caller.allows(scope):
            raise forbidden(caller, scope)
        return caller

    def stream_caller_of(self, stream_token: str, scope: Scope) -> Caller:
        """The caller a stream token names, while it is valid and its bearer token is still
        configured with ``scope``."""
        checked = self.stream_tokens.verify(stream_token)
        if isinstance(checked, Rejected):
            what = "expired" if checked.reason == "expired" else "not valid"
            raise unauthorized(f"the stream token is {what}", "invalid_token")
        scopes = self._scopes_of.get(checked.name, frozenset())
        if not checked.allows(scope) or scope not in scopes:
            raise unauthorized("the stream token does not grant this stream", "invalid_token")
        return checked

    # --- dependencies -----------------------------------------------------------------------

    def needs(self, scope: Scope) -> Any:
        """A dependency resolving to the caller, who must hold ``scope``; use it in a route's
        ``dependencies=[...]`` or as ``caller: Annotated[Caller, auth.needs("read")]``."""
        if self.open:
            return Depends(_open_caller)

        async def bearer_caller(request: Request, credentials: BearerCredentials) -> Caller:
            with refusals_logged(request):
                return self.caller_of(credentials, scope)

        return Security(bearer_caller, scopes=[scope])

    def needs_stream(self, scope: Scope) -> Any:
        """As :meth:`needs`, also accepting a stream token in the URL (the live stream)."""
        if self.open:
            return Depends(_open_caller)

        async def stream_caller(
            request: Request, credentials: BearerCredentials, stream_token: StreamTokenQuery
        ) -> Caller:
            with refusals_logged(request):
                if credentials is None and stream_token is not None:
                    return self.stream_caller_of(stream_token, scope)
                return self.caller_of(credentials, scope)

        return Security(stream_caller, scopes=[scope])

    def probe_dependencies(self) -> list[Any]:
        """``dependencies=`` of /readyz and /metrics: none, or a read token."""
        return [] if self.probes_open else [self.needs("read")]

    def steer_limited(self) -> Any:
        """The caller, who must hold ``steer`` and have a request left in the token's bucket;
        else 429 with ``Retry-After`` (whole seconds)."""
        needs = self.needs("steer")

        async def within_rate(request: Request, caller: Annotated[Caller, needs]) -> Caller:
            wait = self.steer_limiter.take(caller.name)
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                with refusals_logged(request):
                    raise ApiError(
                        429,
                        "rate_limited",
                        f"too many steering requests for token '{caller.name}': "
                        f"retry in {seconds} s",
                        {"retry_after_seconds": seconds},
                        headers={"Retry-After": str(seconds)},
                    )
            return caller

        return Depends(within_rate)


async def _open_caller() -> Caller:
    return OPEN_CALLER
