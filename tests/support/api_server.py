"""The real API (uvicorn, real sockets, real Redis) in a background thread, for tests.

* ``with running_api(settings) as base_url: ...`` serves :func:`serving.app.create_app` on a
  free loopback port until the block ends. The lifespan runs as in production: it creates the
  Redis client from ``settings`` and closes it on shutdown.
* :class:`ApiProcess`: ``nowplaying api`` itself in a child process, logging to a file.
* Either needs tokens unless ``api_auth="off"``: ``settings_factory(api_tokens=API_TOKENS,
  ...)`` and requests with ``headers=READER.headers`` (:mod:`tests.support.api_tokens`).
* :func:`iter_sse`: the (event, data) pairs of a server-sent events response.
* :func:`shared_small_model`: one small real model per test process, trained on first use.
* :func:`session` (:func:`session_plays`), :func:`list_for`, :func:`store_like_the_worker`: a
  listener's session and lists, written to Redis with the worker's own write path
  (:class:`FeatureStore`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from features.store import FeatureStore, StoredList
from nowplaying.events import PlayEvent, Recommendation, RecommendationMessage, TrackEnd, TrackStart
from nowplaying.settings import Settings
from serving.app import create_app
from tests.support.pipeline import nowplaying_exe, train_small_model, worker_env
from tests.support.services import free_port
from tests.support.store import run_with_store

#: Event time of the first event of :func:`session`.
T0 = 1_795_800_000_000
_models: dict[str, Path] = {}


@contextmanager
def running_api(settings: Settings, *, start_timeout: float = 20.0) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the API server thread exited during start-up")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the API did not start on port {port} in {start_timeout}s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class ApiProcess:
    """``nowplaying api`` in a child process (its own process group), output to ``log_path``.

    ``start()`` returns once ``/healthz`` answers on ``settings.api_host:api_port``; use
    :meth:`wait_exit` for a start-up the API must refuse. As a context manager it sends
    SIGTERM on exit (SIGKILL after 20 s).
    """

    def __init__(self, settings: Settings, log_path: Path, **extra_env: str) -> None:
        self.settings = settings
        self.log_path = log_path
        self.extra_env: Mapping[str, str] = extra_env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        host = self.settings.api_host
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.settings.api_port}"

    def spawn(self) -> ApiProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [nowplaying_exe(), "api"],
                env=worker_env(self.settings, **self.extra_env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def start(self, timeout: float = 30.0) -> ApiProcess:
        self.spawn()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"nowplaying api exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"nowplaying api did not answer /healthz:\n{self.log_text()}")
            time.sleep(0.2)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Spawn (unless running) and wait for the process to exit; its exit status."""
        if self.proc is None:
            self.spawn()
        assert self.proc is not None
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ApiProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def iter_sse(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event name, data) of each server-sent event in a stream of lines (comments skipped)."""
    event, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def shared_small_model() -> Path:
    """A registry holding one small real model (``nowplaying train``), trained once per test
    process and deleted at exit. Tests must not write to it. ``NP_TEST_MODEL_REGISTRY`` names
    an existing registry to use instead (saves the training time in local runs)."""
    if "registry" not in _models and (given := os.environ.get("NP_TEST_MODEL_REGISTRY")):
        _models["registry"] = Path(given)
    if "registry" not in _models:
        folder = Path(tempfile.mkdtemp(prefix="np-test-registry-"))
        atexit.register(shutil.rmtree, folder, True)
        _models["registry"] = train_small_model(folder, sessions=800, trees=20)
    return _models["registry"]


def session(user: str, sid: str, outcomes: Sequence[bool | None]) -> list[PlayEvent]:
    """Events of a session: one track per outcome (True: skipped, False: listened, None: the
    track is still playing), a minute apart from :data:`T0`."""
    plays = [(f"t-{sid}-{i}", skipped) for i, skipped in enumerate(outcomes)]
    return session_plays(
        user, sid, plays, event_ids=sid, ts=T0, spacing_ms=60_000, end_after_ms=30_000
    )


def session_plays(
    user: str,
    sid: str,
    plays: Sequence[tuple[str, bool | None]],
    *,
    event_ids: str,
    ts: int,
    spacing_ms: int,
    end_after_ms: int,
) -> list[PlayEvent]:
    """Events of a session, per ``(track, skipped)`` play its start and, unless ``skipped`` is
    None (still playing), its end. Play ``i`` has the event ids ``<event_ids>-<i>-s`` and
    ``-e``, starts at ``ts + i * spacing_ms`` and ends ``end_after_ms`` later."""
    out: list[PlayEvent] = []
    common: dict[str, Any] = {"user_id": user, "session_id": sid}
    for i, (track, skipped) in enumerate(plays):
        start = ts + i * spacing_ms
        out.append(
            TrackStart(
                event_type="track_start",
                event_id=f"{event_ids}-{i}-s",
                track_id=track,
                ts=start,
                **common,
            )
        )
        if skipped is not None:
            out.append(
                TrackEnd(
                    event_type="track_end",
                    event_id=f"{event_ids}-{i}-e",
                    track_id=track,
                    ts=start + end_after_ms,
                    skipped=skipped,
                    **common,
                )
            )
    return out


def list_for(trigger: TrackStart, tracks: Sequence[str], version: str = "v-test") -> str:
    return RecommendationMessage(
        user_id=trigger.user_id,
        session_id=trigger.session_id,
        trigger_event_id=trigger.event_id,
        model_version=version,
        generated_at=trigger.ts + 3,
        recommendations=[
            Recommendation(track_id=t, score=1.0 - i / 10, rank=i + 1, source="colisten")
            for i, t in enumerate(tracks)
        ],
    ).model_dump_json()


def store_like_the_worker(
    settings: Settings, events: Sequence[PlayEvent], lists: Sequence[str] = ()
) -> None:
    """Apply events and write states, lists and user pointers with the worker's write path."""

    async def body(store: FeatureStore, _redis: Any) -> None:
        applied = await store.apply_events(events)
        states = {a.event.session_id: a.state() for a in applied}
        messages = [RecommendationMessage.model_validate_json(m) for m in lists]
        stored = [
            StoredList(m.user_id, m.session_id, m.trigger_event_id, m.model_dump_json())
            for m in messages
        ]
        activity = {e.user_id: (e.session_id, e.ts) for e in events}
        await store.write_results(states, stored, activity)

    run_with_store(settings, body)
