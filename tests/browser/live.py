"""The live page's shared pieces for the browser tests: its state as JSON, the list the worker
stored, and a page opened on a listener with the real worker and API behind it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nowplaying.clients import redis_client
from nowplaying.events import RecommendationMessage
from nowplaying.keys import Keys
from nowplaying.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.api_server import running_api, shared_small_model
from tests.support.api_tokens import API_TOKENS
from tests.support.chromium import Page
from tests.support.pipeline import WorkerProcess

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

PAGE_STATE = """(() => {
  const recs = document.getElementById('recs');
  return JSON.stringify({
    trigger: recs.dataset.trigger || null,
    tracks: [...recs.querySelectorAll('li')].map((li) => li.dataset.trackId),
    nowPlaying: document.getElementById('now-playing').dataset.trackId || null,
    plays: [...document.querySelectorAll('#recent-plays li[data-track-id]')]
      .map((li) => [li.dataset.trackId, li.className]),
    updates: Number(document.getElementById('recs-updates').textContent),
    status: document.getElementById('status').dataset.state,
  });
})()"""


def page_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(page.evaluate(PAGE_STATE))
    return state


def stored_list(settings: Settings, user_id: str) -> RecommendationMessage:
    client = redis_client(settings)
    try:
        raw = client.get(Keys(settings.redis_key_prefix).user_latest(user_id))
    finally:
        client.close()
    assert raw is not None, f"no list in Redis for {user_id}"
    return RecommendationMessage.model_validate_json(raw)


def wait_for_trigger(page: Page, event_id: str, timeout: float = 90.0) -> None:
    page.wait_for(
        f"document.getElementById('recs').dataset.trigger === {json.dumps(event_id)}",
        timeout=timeout,
    )


def worker_settings(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int]
) -> Settings:
    """Settings of a page test with the real worker: the shared small model, a fast poll."""
    return settings_factory(
        model_dir=shared_small_model(),
        worker_metrics_port=free_tcp_port(),
        api_live_poll_seconds=0.2,
        api_tokens=API_TOKENS,
    )


@contextmanager
def live_page(page: Page, settings: Settings, user: str, token: str, log: Path) -> Iterator[str]:
    """The worker and the API running, and the page open and live on ``user``; yields the
    API's base URL."""
    with WorkerProcess(settings, log), running_api(settings) as base:
        page.navigate(f"{base}/?user={quote(user, safe='')}#token={token}")
        page.wait_for("document.getElementById('status').dataset.state === 'live'")
        yield base
