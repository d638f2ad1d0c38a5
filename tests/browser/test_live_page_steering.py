"""Steering from the live page in headless Chromium, through the real worker, Kafka and Redis.

The page's intent buttons post steers for the watched listener's session; the worker answers
each at once and the page shows the refreshed list (and what shaped it) without a reload. A
token without the steer scope gets a message, and the live view goes on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nowplaying.events import TrackStart
from tests.browser.live import (
    ARTIFACTS,
    live_page,
    page_state,
    stored_list,
    wait_for_trigger,
    worker_settings,
)
from tests.conftest import SettingsFactory
from tests.support.api_tokens import ADMIN, READER
from tests.support.chromium import Page
from tests.support.pipeline import produce, real_session_events

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

STEER_STATE = """JSON.stringify({
  steering: document.getElementById('recs').dataset.steering || null,
  trigger: document.getElementById('recs').dataset.trigger || null,
  status: document.getElementById('steer-status').dataset.state,
  statusText: document.getElementById('steer-status').textContent,
})"""


def steer_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(page.evaluate(STEER_STATE))
    return state


def click(page: Page, selector: str) -> None:
    page.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


def wait_for_steering(page: Page, label: str | None, timeout: float = 60.0) -> None:
    value = "null" if label is None else json.dumps(label)
    page.wait_for(
        f"(document.getElementById('recs').dataset.steering || null) === {value} && "
        "document.getElementById('recs').dataset.trigger.startsWith('steer-')",
        timeout=timeout,
    )


def test_intent_buttons_steer_the_list_on_the_page(
    page: Page,
    settings_factory: SettingsFactory,
    free_tcp_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    settings = worker_settings(settings_factory, free_tcp_port)
    (events,) = real_session_events(settings, 1, skip=12)
    user = events[0].user_id
    cut = [i for i, e in enumerate(events) if isinstance(e, TrackStart)][3] + 1

    with live_page(page, settings, user, ADMIN.token, tmp_path / "worker.log"):
        sent, _ = produce(settings, events[:cut])
        wait_for_trigger(page, sent[-1].event_id)
        plain = page_state(page)["tracks"]
        assert steer_state(page)["steering"] is None

        click(page, '#steer [data-intent="discover"]')
        wait_for_steering(page, "discover")
        discover = page_state(page)
        stored = stored_list(settings, user)
        assert stored.steering == "discover" and stored.trigger_event_id == discover["trigger"]
        assert discover["tracks"] == [r.track_id for r in stored.recommendations]
        assert discover["tracks"] != plain
        assert steer_state(page)["status"] == "sent"

        rejected = discover["tracks"][0]
        click(page, f"#recs li[data-track-id={json.dumps(rejected)}] button.less")
        wait_for_steering(page, "discover+less_like_this")
        assert rejected not in page_state(page)["tracks"]
        facts = page.evaluate("document.getElementById('session-facts').textContent")
        assert "discover" in facts and f"less like this {rejected}" in facts

        click(page, '#steer [data-intent="more_like_this"]')
        wait_for_steering(page, "discover+less_like_this+more_like_this")
        page.evaluate("document.getElementById('recs').classList.remove('fresh')")
        page.screenshot(ARTIFACTS / "live-page-steered.png")

        click(page, '#steer [data-intent="reset"]')
        wait_for_steering(page, None)
        assert page_state(page)["tracks"] == plain  # no intent left: the ranker's own list
        assert page_state(page)["nowPlaying"] == sent[-1].track_id
        assert page_state(page)["status"] == "live"


def test_a_token_without_the_steer_scope_is_told_so_and_the_view_stays_live(
    page: Page,
    settings_factory: SettingsFactory,
    free_tcp_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    settings = worker_settings(settings_factory, free_tcp_port)
    (events,) = real_session_events(settings, 1, skip=14)
    cut = [i for i, e in enumerate(events) if isinstance(e, TrackStart)][1] + 1
    with live_page(page, settings, events[0].user_id, READER.token, tmp_path / "worker.log"):
        sent, _ = produce(settings, events[:cut])
        wait_for_trigger(page, sent[-1].event_id)
        click(page, '#steer [data-intent="familiar"]')
        page.wait_for("document.getElementById('steer-status').dataset.state === 'error'")
        state = steer_state(page)
        assert "lacks the steer scope" in state["statusText"]
        assert state["trigger"] == sent[-1].event_id  # no steer went out
        assert page_state(page)["status"] == "live"
        assert page.evaluate("document.getElementById('auth-error').hidden") is True
