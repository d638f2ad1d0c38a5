"""The live Now Playing page in headless Chromium, fed by the real pipeline.

A real session is replayed through Kafka into the real worker while the page is open; the page
must show, without a reload, the list the worker stored in Redis, the track now playing and the
recent plays with their skips marked. A screenshot is saved under ``test-artifacts/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nowplaying.clients import redis_client
from nowplaying.events import PlayEvent, RecommendationMessage, TrackStart
from nowplaying.keys import Keys
from nowplaying.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.api_server import running_api, shared_small_model
from tests.support.chromium import Page
from tests.support.pipeline import WorkerProcess, produce, real_session_events

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
OUTCOME_CLASS = {"skip_early": "skip_early", "skip_late": "skip_late", "listened": "listened"}

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


def expected_plays(events: list[PlayEvent]) -> list[list[str]]:
    """(track, css class) of each play, newest first, as the page should list them."""
    plays: list[list[str]] = []
    for ev in events:
        if isinstance(ev, TrackStart):
            plays.append([ev.track_id, "playing"])
        else:
            outcome = "skip_early" if ev.skipped else "skip_late"
            if not ev.skipped and ev.reason_end == "trackdone":
                outcome = "listened"
            plays[-1][1] = OUTCOME_CLASS[outcome]
    return plays[::-1]


def test_the_page_shows_each_new_list_as_the_worker_publishes_it(
    page: Page,
    settings_factory: SettingsFactory,
    free_tcp_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    settings = settings_factory(
        model_dir=shared_small_model(),
        worker_metrics_port=free_tcp_port(),
        api_live_poll_seconds=0.2,
    )
    (events,) = real_session_events(settings, 1, skip=10)  # plays: listened, late, early, ...
    user = events[0].user_id
    # two moments of the session, each right after a track started
    first_cut = next(i for i in range(4, len(events)) if isinstance(events[i], TrackStart)) + 1
    second_cut = first_cut + 4
    assert isinstance(events[second_cut - 1], TrackStart)

    with WorkerProcess(settings, tmp_path / "worker.log"), running_api(settings) as base:
        page.navigate(f"{base}/?user={user}")
        page.wait_for("document.getElementById('status').dataset.state === 'live'")
        assert page_state(page)["tracks"] == []  # nothing played yet

        sent, _ = produce(settings, events[:first_cut])
        wait_for_trigger(page, sent[-1].event_id)
        state = page_state(page)
        first = stored_list(settings, user)
        assert state["tracks"] == [r.track_id for r in first.recommendations]
        assert state["nowPlaying"] == sent[-1].track_id
        assert state["plays"] == expected_plays(sent)

        more, _ = produce(settings, events[first_cut:second_cut])
        wait_for_trigger(page, more[-1].event_id)  # pushed, no reload
        state = page_state(page)
        second = stored_list(settings, user)
        assert second.trigger_event_id == more[-1].event_id
        assert state["tracks"] == [r.track_id for r in second.recommendations]
        assert state["tracks"] != [r.track_id for r in first.recommendations]
        assert state["plays"] == expected_plays(sent + more)
        assert state["updates"] >= 2
        assert state["status"] == "live"
        ended = {cls for _, cls in state["plays"][1:]}
        assert ended == {"listened", "skip_late", "skip_early"}, "each outcome marked"
        page.evaluate("document.getElementById('recs').classList.remove('fresh')")
        shot = page.screenshot(ARTIFACTS / "live-page.png")
    assert shot.stat().st_size > 10_000
