"""The real API (uvicorn, real sockets, real Redis) in a background thread, for tests.

* ``with running_api(settings) as base_url: ...`` serves :func:`serving.app.create_app` on a
  free loopback port until the block ends. The lifespan runs as in production: it creates the
  Redis client from ``settings`` and closes it on shutdown.
* :func:`iter_sse`: the (event, data) pairs of a server-sent events response.
* :func:`shared_small_model`: one small real model per test process, trained on first use.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from nowplaying.settings import Settings
from serving.app import create_app
from tests.support.pipeline import train_small_model
from tests.support.services import free_port

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
    process and deleted at exit. Tests must not write to it."""
    if "registry" not in _models:
        folder = Path(tempfile.mkdtemp(prefix="np-test-registry-"))
        atexit.register(shutil.rmtree, folder, True)
        _models["registry"] = train_small_model(folder, sessions=800, trees=20)
    return _models["registry"]
