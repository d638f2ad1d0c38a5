// nowplaying live page: watch one listener's session and Now Playing list, pushed by SSE.
// Plain DOM, no build step. Every value from the server goes in through textContent (never
// innerHTML): ids are opaque text that may hold anything but control characters.
//
// Access: the API token is given once (the token field, or the page opened as /#token=...),
// kept in this script's memory only (never in storage, the fragment is removed from the
// address bar) and sent as "Authorization: Bearer" by every fetch. EventSource cannot send
// headers, so each stream connection first trades it for a short-lived stream token
// (POST /v1/stream-tokens) that goes in the stream's URL.
"use strict";

const CONTROL = /[\u0000-\u001F\u007F-\u009F]/;
const MAX_ID_CHARS = 128; // code points, as the contract counts them (not UTF-16 units)
const OUTCOME_LABEL = { listened: "listened", skip_late: "skipped late", skip_early: "skipped early" };
const $ = (id) => document.getElementById(id);

let source = null;
let watching = null;
let updates = 0;
let lastTrigger = null;
let apiToken = null; // in memory only
let connection = 0; // which connect() is current; older ones stand down
let reconnectTimer = null;
let currentView = null; // the last snapshot: the session steer buttons act on
const INTENT_LABEL = {
  more_like_this: "more like this", less_like_this: "less like this",
  discover: "discover", familiar: "familiar", reset: "reset",
};

class AuthError extends Error {}

function setToken(token) {
  apiToken = token || null;
  $("token-input").placeholder = apiToken ? "set (kept in memory only)" : "np_…";
}

function takeTokenFromFragment() {
  const match = /(?:^|&)token=([^&]*)/.exec(window.location.hash.slice(1));
  if (!match) return false;
  setToken(decodeURIComponent(match[1]));
  const url = new URL(window.location.href);
  url.hash = "";
  history.replaceState(null, "", url);
  return true;
}

function showAuthError(status) {
  if (source) source.close();
  source = null;
  const box = $("auth-error");
  if (status === 403) {
    box.textContent = "The API token lacks the read scope: use a token made with --scopes read.";
  } else if (apiToken) {
    box.textContent = "The API refused this token (unknown, revoked or mistyped): enter a valid one above.";
  } else {
    box.textContent = "This page needs an API token with the read scope: enter it above, or open the " +
      "page as /#token=<token>. Tokens are made with `nowplaying api token create`.";
  }
  box.hidden = false;
  setStatus("unauthorized", status === 403 ? "token lacks the read scope" : "needs an API token");
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (apiToken) headers.Authorization = `Bearer ${apiToken}`;
  const res = await fetch(path, { ...options, headers, cache: "no-store" });
  if (res.status === 401 || res.status === 403) {
    showAuthError(res.status);
    throw new AuthError(`HTTP ${res.status}`);
  }
  $("auth-error").hidden = true;
  return res;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function clock(ms) {
  return ms ? new Date(ms).toLocaleTimeString([], { hour12: false }) : "–";
}

function ago(ms) {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.floor(s / 60)}m ago` : `${Math.floor(s / 3600)}h ago`;
}

function setStatus(state, text) {
  const s = $("status");
  s.dataset.state = state;
  s.textContent = text;
}

function facts(dl, pairs) {
  dl.replaceChildren();
  for (const [k, v] of pairs) {
    if (v === null || v === undefined || v === "") continue;
    dl.append(el("dt", {}, k), el("dd", {}, v));
  }
}

function renderNowPlaying(view) {
  const box = $("now-playing");
  const np = view.now_playing;
  box.replaceChildren();
  box.classList.toggle("empty", !np);
  if (np) {
    box.dataset.trackId = np.track_id;
    box.append(el("div", { class: "track" }, np.track_id), el("div", { class: "since" }, `started ${clock(np.started_at)}`));
  } else {
    delete box.dataset.trackId;
    box.append(view.session_id ? "Between tracks." : "No active session for this listener yet.");
  }
  const f = view.features || {};
  facts($("session-facts"), [
    ["listener", view.user_id],
    ["session", view.session_id],
    ["position", f.position],
    ["plays", f.plays],
    ["skip rate", f.skip_rate === undefined ? null : `${Math.round(f.skip_rate * 100)}%`],
    ["in a row skipped", f.consecutive_skips],
    ["steering", (f.intents || []).map((i) => INTENT_LABEL[i.kind] +
      (i.track_id ? ` ${i.track_id}` : "")).join(", ")],
  ]);
}

function renderPlays(view) {
  const list = $("recent-plays");
  list.replaceChildren();
  for (const p of view.recent_plays || []) {
    const state = p.outcome || "playing";
    const label = p.outcome ? OUTCOME_LABEL[p.outcome] : "playing";
    list.append(
      el("li", { class: state, "data-track-id": p.track_id },
        el("span", { class: "track" }, p.track_id),
        el("span", { class: `outcome ${state}`, title: clock(p.ended_at || p.started_at) }, label)),
    );
  }
  if (!list.children.length) list.append(el("li", { class: "empty" }, "No plays yet."));
}

function renderRecommendations(view) {
  const msg = view.recommendations;
  const list = $("recs");
  $("recs-empty").hidden = Boolean(msg && msg.recommendations.length);
  if (!msg) {
    list.replaceChildren();
    list.removeAttribute("data-trigger");
    facts($("recs-meta"), []);
    return;
  }
  const scores = msg.recommendations.map((r) => r.score);
  const lo = Math.min(...scores), hi = Math.max(...scores);
  list.replaceChildren(...msg.recommendations.map((r) => {
    const width = hi > lo ? 8 + 92 * (r.score - lo) / (hi - lo) : 100;
    const bar = el("div", { class: "score", title: `score ${r.score.toFixed(4)}` });
    const fill = el("span");
    fill.style.width = `${width.toFixed(1)}%`;
    bar.append(fill);
    const less = el("button", { type: "button", class: "less", title: "Less like this" }, "✕");
    less.dataset.intent = "less_like_this";
    less.addEventListener("click", () => steer("less_like_this", r.track_id));
    return el("li", { "data-track-id": r.track_id },
      el("span", { class: "rank" }, r.rank),
      el("div", {}, el("div", { class: "track" }, r.track_id), bar),
      el("span", { class: "source" }, r.source), less);
  }));
  if (msg.steering) list.dataset.steering = msg.steering;
  else list.removeAttribute("data-steering");
  list.dataset.trigger = msg.trigger_event_id;
  if (msg.trigger_event_id !== lastTrigger) {
    lastTrigger = msg.trigger_event_id;
    updates += 1;
    $("recs-updates").textContent = String(updates);
    list.classList.remove("fresh");
    void list.offsetWidth; // restart the highlight animation
    list.classList.add("fresh");
    if (!$("active-users").querySelector("button")) refreshUsers();
  }
  facts($("recs-meta"), [
    ["trigger event", msg.trigger_event_id],
    ["model", msg.model_version],
    ["generated", `${clock(msg.generated_at)} (${ago(msg.generated_at)})`],
    ["sources", [...new Set(msg.recommendations.map((r) => r.source))].join(", ")],
    ["shaped by", msg.steering ? msg.steering.split("+").map((k) => INTENT_LABEL[k] || k).join(" + ") : null],
  ]);
}

function render(view) {
  currentView = view;
  const np = view.now_playing;
  $("steer").querySelector('[data-intent="more_like_this"]').disabled = !np;
  renderNowPlaying(view);
  renderPlays(view);
  renderRecommendations(view);
  document.title = view.now_playing ? `▶ ${view.now_playing.track_id} · nowplaying` : "nowplaying · live";
}

function steerStatus(state, text) {
  const s = $("steer-status");
  s.dataset.state = state;
  s.textContent = text;
}

// POST a steer for the watched listener's current session. Not through api(): a token without
// the steer scope gets a message here, and the live stream (read scope) goes on.
async function steer(intent, trackId) {
  const view = currentView;
  if (!view || !view.session_id || !watching) {
    steerStatus("error", "no session to steer yet");
    return;
  }
  const body = { user_id: watching, intent };
  if (trackId) body.track_id = trackId;
  const headers = { "Content-Type": "application/json" };
  if (apiToken) headers.Authorization = `Bearer ${apiToken}`;
  steerStatus("sending", `${INTENT_LABEL[intent]}…`);
  try {
    const res = await fetch(`/v1/sessions/${idPath(view.session_id)}/steer`, {
      method: "POST", headers, body: JSON.stringify(body), cache: "no-store",
    });
    if (res.status === 202) {
      const accepted = await res.json();
      steerStatus("sent", `${INTENT_LABEL[intent]}: sent (${accepted.event_id})`);
      return;
    }
    const error = (await res.json().catch(() => ({}))).error || {};
    const why = res.status === 403 ? "the token lacks the steer scope"
      : res.status === 429 ? "too many steers, wait a moment" : error.message || `HTTP ${res.status}`;
    steerStatus("error", `${INTENT_LABEL[intent]} refused: ${why}`);
  } catch (_) {
    steerStatus("error", "the API is unreachable");
  }
}

// Why the page cannot watch this id, or null when it can.
function idProblem(user) {
  const chars = [...user].length;
  if (chars < 1 || chars > MAX_ID_CHARS) return "A user id is 1-128 characters.";
  if (CONTROL.test(user)) return "A user id holds no control characters.";
  if (/\p{Cs}/u.test(user)) return "A user id holds no lone surrogates."; // not UTF-8
  // URLs drop "." and ".." path segments, even percent-encoded: the API cannot be asked here.
  if (user === "." || user === "..") return `The id "${user}" cannot be watched from a browser.`;
  return null;
}

// The id as one path segment of an API URL ("/" and every other reserved character encoded).
function idPath(user) {
  return encodeURIComponent(user);
}

function watch(user) {
  const problem = idProblem(user);
  if (problem) {
    $("picker-error").hidden = false;
    $("picker-error").textContent = problem;
    return;
  }
  $("picker-error").hidden = true;
  watching = user;
  updates = 0;
  lastTrigger = null;
  $("recs-updates").textContent = "0";
  $("user-input").value = user;
  const url = new URL(window.location.href);
  url.searchParams.set("user", user);
  history.replaceState(null, "", url);
  highlightChip();
  connect();
}

function reconnectSoon() {
  if (reconnectTimer === null) {
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      connect();
    }, 2000);
  }
}

async function connect() {
  const current = ++connection;
  const user = watching;
  if (source) source.close();
  source = null;
  if (!user) return;
  setStatus("connecting", "connecting…");
  let grant;
  try {
    const res = await api("/v1/stream-tokens", { method: "POST" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    grant = await res.json();
  } catch (err) {
    if (!(err instanceof AuthError) && current === connection) {
      setStatus("connecting", "reconnecting…");
      reconnectSoon();
    }
    return;
  }
  if (current !== connection) return; // another listener was picked meanwhile
  const stream = new EventSource(
    `/v1/users/${idPath(user)}/live?stream_token=${encodeURIComponent(grant.token)}`);
  source = stream;
  stream.addEventListener("open", () => setStatus("live", `live · ${user}`));
  stream.addEventListener("snapshot", (e) => {
    setStatus("live", `live · ${user}`);
    render(JSON.parse(e.data));
  });
  stream.addEventListener("error", (e) => {
    if (e.data) {
      const err = JSON.parse(e.data);
      setStatus("error", `${err.dependency || "server"} unavailable, retrying`);
    } else if (stream.readyState === EventSource.CLOSED) {
      // refused, e.g. the browser reconnected after the stream token expired: get a new one
      if (current === connection) {
        setStatus("connecting", "reconnecting…");
        reconnectSoon();
      }
    } else if (stream.readyState !== EventSource.OPEN) {
      setStatus("connecting", "reconnecting…");
    }
  });
}

function highlightChip() {
  for (const b of $("active-users").querySelectorAll("button")) {
    b.classList.toggle("active", b.textContent === watching);
  }
}

async function refreshUsers() {
  try {
    const res = await api("/v1/users?limit=12");
    if (!res.ok) return;
    const { users } = await res.json();
    $("user-list").replaceChildren(...users.map((u) => el("option", { value: u })));
    $("active-users").replaceChildren(
      el("span", { class: "muted" }, users.length ? "active:" : "no active listeners yet"),
      ...users.slice(0, 10).map((u) => {
        const b = el("button", { type: "button" }, u);
        b.addEventListener("click", () => watch(u));
        return b;
      }),
    );
    highlightChip();
    if (!watching && users.length) watch(users[0]);
  } catch (_) {
    // the API is restarting, or refused the token (the page says so); try again on the next tick
  }
}

function useToken(token) {
  setToken(token);
  $("auth-error").hidden = true;
  refreshUsers();
  if (watching) connect();
}

document.addEventListener("DOMContentLoaded", () => {
  $("picker").addEventListener("submit", (e) => {
    e.preventDefault();
    watch($("user-input").value); // as typed: spaces are part of an id
  });
  for (const b of $("steer").querySelectorAll("button[data-intent]")) {
    b.addEventListener("click", () => {
      const intent = b.dataset.intent;
      const np = currentView && currentView.now_playing;
      steer(intent, intent === "more_like_this" && np ? np.track_id : undefined);
    });
  }
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("token-input");
    const token = input.value.trim();
    input.value = "";
    useToken(token);
  });
  window.addEventListener("hashchange", () => {
    if (takeTokenFromFragment()) useToken(apiToken);
  });
  takeTokenFromFragment();
  const requested = new URL(window.location.href).searchParams.get("user");
  if (requested) watch(requested);
  refreshUsers();
  setInterval(refreshUsers, 5000);
});
