"""The live Now Playing page in headless Chromium, fed by the real pipeline.

A real session is replayed through Kafka into the real worker while the page is open; the page
must show, without a reload, the list the worker stored in Redis, the track now playing and the
recent plays with their skips marked. A screenshot is saved under ``test-artifacts/``.

The page is given its API token once (``#token=`` or the token field), keeps it in memory only
and shows a clear error state without a valid one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from nowplaying.events import PlayEvent, TrackStart
from tests.browser.live import (
    ARTIFACTS,
    live_page,
    page_state,
    stored_list,
    wait_for_trigger,
    worker_settings,
)
from tests.conftest import SettingsFactory
from tests.support.api_server import (
    list_for,
    running_api,
    session,
    store_like_the_worker,
)
from tests.support.api_tokens import API_TOKENS, READER, STEERER
from tests.support.chromium import Page
from tests.support.pipeline import produce, real_session_events

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

OUTCOME_CLASS = {"skip_early": "skip_early", "skip_late": "skip_late", "listened": "listened"}


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
    settings = worker_settings(settings_factory, free_tcp_port)
    (events,) = real_session_events(settings, 1, skip=10)  # plays: listened, late, early, ...
    user = events[0].user_id
    # two moments of the session, each right after a track started
    first_cut = next(i for i in range(4, len(events)) if isinstance(events[i], TrackStart)) + 1
    second_cut = first_cut + 4
    assert isinstance(events[second_cut - 1], TrackStart)

    with live_page(page, settings, user, READER.token, tmp_path / "worker.log"):
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


# --- the API token ----------------------------------------------------------------------------

AUTH_STATE = """JSON.stringify({
  status: document.getElementById('status').dataset.state,
  statusText: document.getElementById('status').textContent,
  banner: document.getElementById('auth-error').hidden ? null
    : document.getElementById('auth-error').textContent,
  tracks: [...document.querySelectorAll('#recs li')].map((li) => li.dataset.trackId),
  url: window.location.href,
  stored: JSON.stringify(Object.assign({}, localStorage, sessionStorage)) + document.cookie,
})"""


def auth_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(page.evaluate(AUTH_STATE))
    return state


@pytest.fixture
def served(settings_factory: SettingsFactory) -> Iterator[str]:
    """The API with one listener's session and list in Redis (the worker's write path)."""
    settings = settings_factory(create_topics=False, api_tokens=API_TOKENS)
    events = session("u-page", "s-page", [False, None])
    start = events[-1]
    assert isinstance(start, TrackStart)
    store_like_the_worker(settings, events, [list_for(start, ["t-a", "t-b"])])
    with running_api(settings) as base:
        yield base


def test_without_a_token_the_page_says_it_needs_one_then_works_once_given_one(
    page: Page, served: str
) -> None:
    page.navigate(f"{served}/?user=u-page")
    page.wait_for("document.getElementById('status').dataset.state === 'unauthorized'")
    state = auth_state(page)
    assert state["statusText"] == "needs an API token"
    assert "needs an API token" in state["banner"] and "#token=" in state["banner"]
    assert state["tracks"] == []  # nothing from the API was shown
    page.screenshot(ARTIFACTS / "live-page-needs-a-token.png")

    page.evaluate(
        f"document.getElementById('token-input').value = {json.dumps(READER.token)};"
        "document.getElementById('token-form').requestSubmit()"
    )
    page.wait_for("document.getElementById('status').dataset.state === 'live'")
    page.wait_for("document.querySelectorAll('#recs li').length === 2")
    state = auth_state(page)
    assert state["tracks"] == ["t-a", "t-b"] and state["banner"] is None
    assert page.evaluate("document.getElementById('token-input').value") == ""
    assert READER.token not in state["stored"] and READER.token not in state["url"]


def test_a_token_in_the_fragment_is_used_then_taken_out_of_the_address(
    page: Page, served: str
) -> None:
    page.navigate(f"{served}/?user=u-page#token={READER.token}")
    page.wait_for("document.querySelectorAll('#recs li').length === 2")
    state = auth_state(page)
    assert state["status"] == "live" and state["tracks"] == ["t-a", "t-b"]
    assert state["url"] == f"{served}/?user=u-page"  # no token left in the address or history
    assert READER.token not in state["stored"]


@pytest.mark.parametrize(
    ("token", "says"),
    [("np_not-a-configured-token", "refused this token"), (STEERER.token, "lacks the read scope")],
    ids=["unknown token", "steer-only token"],
)
def test_a_wrong_token_or_one_without_the_read_scope_is_a_clear_error(
    page: Page, served: str, token: str, says: str
) -> None:
    page.navigate(f"{served}/?user=u-page#token={token}")
    page.wait_for("document.getElementById('status').dataset.state === 'unauthorized'")
    state = auth_state(page)
    assert says in state["banner"] and state["tracks"] == []


#: Ids that once were refused, or that would break a page that built HTML or URLs from them.
HOSTILE_USER = 'ユーザー <img src=x onerror="window.__pwned=1"> 100%/{x}?#'
SHOWN_TEXT = """(() => {
  const texts = (selector) => [...document.querySelectorAll(selector)].map((d) => d.textContent);
  return JSON.stringify({
    pwned: window.__pwned === 1,
    images: document.querySelectorAll('img, b').length,
    input: document.getElementById('user-input').value,
    facts: texts('#session-facts dd'),
    nowText: document.querySelector('#now-playing .track').textContent,
    recTexts: texts('#recs .track'),
    status: document.getElementById('status').textContent,
  });
})()"""
HOSTILE_TRACKS = ('<b>bold</b> & "quoted"', "🎵 /../%2F{tag}", "it's\u00a0here")


def test_the_page_shows_opaque_ids_as_text_and_asks_the_api_for_them_encoded(
    page: Page, settings_factory: SettingsFactory
) -> None:
    settings = settings_factory(
        create_topics=False, api_live_poll_seconds=0.2, api_tokens=API_TOKENS
    )
    sid = "session {1} / ünïcödé"
    events = session(HOSTILE_USER, sid, [True, None])
    events = [
        e.model_copy(update={"track_id": HOSTILE_TRACKS[i // 2]}) for i, e in enumerate(events)
    ]
    start = events[-1]
    assert isinstance(start, TrackStart)
    store_like_the_worker(settings, events, [list_for(start, HOSTILE_TRACKS[1:])])

    with running_api(settings) as base:
        page.navigate(f"{base}/?user={quote(HOSTILE_USER, safe='')}#token={READER.token}")
        wait_for_trigger(page, start.event_id, timeout=30)
        state = page_state(page)
        shown = json.loads(page.evaluate(SHOWN_TEXT))
    assert not shown["pwned"] and shown["images"] == 0  # nothing became markup
    assert shown["input"] == HOSTILE_USER
    assert shown["facts"][:2] == [HOSTILE_USER, sid]
    assert shown["nowText"] == state["nowPlaying"] == HOSTILE_TRACKS[1]
    assert shown["recTexts"] == state["tracks"] == list(HOSTILE_TRACKS[1:])
    assert state["plays"] == [[HOSTILE_TRACKS[1], "playing"], [HOSTILE_TRACKS[0], "skip_early"]]
    assert shown["status"] == f"live · {HOSTILE_USER}"
