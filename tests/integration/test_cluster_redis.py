"""Scale-out beyond one Redis: a real 3-master Redis Cluster on loopback (Debian's redis-server
in cluster mode, joined with ``redis-cli --cluster create``), the worker and the API pointed at
it with ``redis_cluster=true``.

Each session's keys carry the (escaped) session id as a hash tag, so they (and the Lua script
that touches them all) live in one slot; the sessions spread over all three masters. A fifth of
the sessions have ids holding braces, spaces, quotes, ``%``, ``/`` and other scripts. The replay
invariant holds as on a single Redis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from redis import Redis
from redis.crc import key_slot

from nowplaying.events import TrackEnd, TrackStart
from nowplaying.keys import Keys, escape_id
from streams.replay import interleave
from tests.conftest import SettingsFactory
from tests.support.api_server import running_api, shared_small_model
from tests.support.api_tokens import API_TOKENS, READER
from tests.support.cluster import RedisClusterProcesses, free_cluster_ports
from tests.support.faults import assert_healthy, print_counts, starts_of, triggers_of
from tests.support.outcomes import check_outcomes
from tests.support.pipeline import (
    TopicReader,
    WorkerProcess,
    check_invariant,
    produce,
    real_session_events,
)

pytestmark = pytest.mark.slow

PlayEvent = TrackStart | TrackEnd


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterProcesses]:
    cluster = RedisClusterProcesses(tmp_path / "cluster", free_cluster_ports(3))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_replay_against_a_3_master_redis_cluster(
    redis_cluster: RedisClusterProcesses,
    settings_factory: SettingsFactory,
    free_tcp_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    settings = settings_factory(
        redis_url=redis_cluster.url,
        redis_cluster=True,
        model_dir=shared_small_model(),
        worker_metrics_port=free_tcp_port(),
        retry_max_seconds=1.0,
        api_tokens=API_TOKENS,
    )
    assert sorted(redis_cluster.slots_by_node().values()) == [5461, 5461, 5462]
    sessions = [
        with_ids(events, f"ユーザー {{{i}}}", f'{{s}} {i} / "%7B" }}{{') if i % 5 == 0 else events
        for i, events in enumerate(real_session_events(settings, 100, skip=2000))
    ]
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        assert_healthy(worker)
        sent, _ = produce(settings, interleave(sessions, 50, seed=16))
        with TopicReader(settings, settings.topic_recommendations) as recs:
            recs.read_until(lambda rs: starts_of(sent) <= triggers_of(rs), timeout=120)
        with TopicReader(settings, settings.topic_dead_letters) as dlq:
            dead = dlq.read_all(timeout=5)
        with TopicReader(settings, settings.topic_outcomes) as outs:
            outs.read_all(timeout=10)
        assert_healthy(worker)
    report = check_invariant(settings, sent, [], recs.records, dead)
    assert check_outcomes(sent, recs.records, outs.records)  # attribution in the sessions' slots

    keys = Keys(settings.redis_key_prefix)
    session_ids = sorted({e.session_id for e in sent})
    per_node = session_keys_per_node(redis_cluster, settings.redis_key_prefix)
    slots_per_session = {
        sid: {
            key_slot(k.encode())
            for k in (
                keys.session_log(sid),
                keys.session_seen(sid),
                keys.session_state(sid),
                keys.session_recs(sid),
                keys.session_attribution(sid),
                keys.session_outcomes(sid),
            )
        }
        for sid in session_ids
    }

    last = sent[-1]
    with running_api(settings) as base_url:
        user, sid = quote(last.user_id, safe=""), quote(last.session_id, safe="")
        recs_resp = httpx.get(
            f"{base_url}/v1/users/{user}/recommendations", headers=READER.headers, timeout=10
        )
        feats = httpx.get(
            f"{base_url}/v1/sessions/{sid}/features", headers=READER.headers, timeout=10
        )
        ready = httpx.get(f"{base_url}/readyz", timeout=10)

    print_counts(
        "Redis Cluster, 3 masters",
        report,
        produced=len(sent),
        session_keys_per_master=dict(per_node),
    )
    assert report.lists_distinct == report.track_starts == len(starts_of(sent))
    assert all(
        slots == {key_slot(escape_id(sid).encode())} for sid, slots in slots_per_session.items()
    )
    assert sum("{" in sid for sid in session_ids) == 20
    assert len(per_node) == 3 and min(per_node.values()) > 0.15 * sum(per_node.values())
    assert ready.status_code == 200, ready.text
    assert recs_resp.status_code == 200 and recs_resp.json()["user_id"] == last.user_id
    assert feats.status_code == 200
    assert feats.json()["features"]["last_ts"] == max(
        e.ts for e in sent if e.session_id == last.session_id
    )


def with_ids(events: list[PlayEvent], user_id: str, session_id: str) -> list[PlayEvent]:
    """The session's events under other user and session ids."""
    return [e.model_copy(update={"user_id": user_id, "session_id": session_id}) for e in events]


def session_keys_per_node(cluster: RedisClusterProcesses, prefix: str) -> Counter[int]:
    """How many session keys each master holds (SCAN on each node directly)."""
    counts: Counter[int] = Counter()
    for port in cluster.ports:
        node = Redis(host="127.0.0.1", port=port)
        try:
            counts[port] = sum(1 for _ in node.scan_iter(match=f"{prefix}:s:*", count=1000))
        finally:
            node.close()
    return counts
