"""Redis over TLS: a PRIVATE redis-server with only a TLS port, its certificate signed by a CA
made for the test (openssl). The worker and the API reach it with a ``rediss://`` URL and
``NP_REDIS_SSL_CA_CERTS``; a replay passes the invariant. A client that does not trust the CA,
or that speaks plain TCP, is refused.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from nowplaying.clients import redis_client
from streams.replay import interleave
from tests.conftest import SettingsFactory
from tests.support.api_server import running_api, shared_small_model
from tests.support.api_tokens import API_TOKENS, READER
from tests.support.faults import assert_healthy, print_counts, starts_of, triggers_of
from tests.support.pipeline import (
    TopicReader,
    WorkerProcess,
    check_invariant,
    produce,
    real_session_events,
)
from tests.support.services import free_port

pytestmark = pytest.mark.slow


def openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    assert exe, "openssl is needed to make the test certificates (apt-get install openssl)"
    subprocess.run([exe, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> None:
    """ca.pem/ca.key (a CA) and server.pem/server.key (for 127.0.0.1, signed by the CA)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    new_key = ["-newkey", "rsa:2048", "-nodes"]
    openssl("req", "-x509", *new_key, "-days", "2", "-subj", "/CN=nowplaying test CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)  # fmt: skip
    openssl("req", *new_key, "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr", cwd=folder)  # fmt: skip
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
            cwd=folder)  # fmt: skip


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(``rediss://`` URL, CA file) of a private TLS-only redis-server."""
    certs = tmp_path / "certs"
    make_certificates(certs)
    port = free_port()
    server = shutil.which("redis-server") or "redis-server"
    args = [
        server,
        "--port", "0",
        "--tls-port", str(port),
        "--bind", "127.0.0.1",
        "--tls-cert-file", str(certs / "server.pem"),
        "--tls-key-file", str(certs / "server.key"),
        "--tls-ca-cert-file", str(certs / "ca.pem"),
        "--tls-auth-clients", "no",
        "--save", "",
        "--dir", str(tmp_path),
        "--logfile", str(tmp_path / "redis.log"),
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "redis.log").exists() or "Ready to accept" not in (
            tmp_path / "redis.log"
        ).read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, "TLS redis did not start"
            time.sleep(0.1)
        yield f"rediss://127.0.0.1:{port}/0", certs / "ca.pem"
    finally:
        proc.terminate()
        proc.wait(10)


def test_worker_and_api_use_redis_over_tls_and_untrusted_clients_are_refused(
    tls_redis: tuple[str, Path],
    settings_factory: SettingsFactory,
    free_tcp_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    url, ca = tls_redis
    settings = settings_factory(
        redis_url=url,
        redis_ssl_ca_certs=ca,
        model_dir=shared_small_model(),
        worker_metrics_port=free_tcp_port(),
        api_tokens=API_TOKENS,
    )
    sessions = real_session_events(settings, 15, skip=2400)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        assert_healthy(worker)
        sent, _ = produce(settings, interleave(sessions, 15, seed=18))
        with TopicReader(settings, settings.topic_recommendations) as recs:
            recs.read_until(lambda rs: starts_of(sent) <= triggers_of(rs), timeout=90)
    report = check_invariant(settings, sent, [], recs.records, [])
    with running_api(settings) as base_url:
        ready = httpx.get(f"{base_url}/readyz", timeout=10)
        latest = httpx.get(
            f"{base_url}/v1/users/{sent[-1].user_id}/recommendations",
            headers=READER.headers,
            timeout=10,
        )

    refused = []
    for name, variant in {
        "no CA": settings.model_copy(update={"redis_ssl_ca_certs": None}),
        "plain TCP": settings.model_copy(update={"redis_url": url.replace("rediss:", "redis:")}),
    }.items():
        client = redis_client(variant)
        try:
            with pytest.raises(RedisConnectionError) as info:
                client.ping()
            refused.append(f"{name}: {str(info.value)[:80]}")
        finally:
            client.close()

    print_counts("Redis over TLS", report, produced=len(sent), refused=refused)
    assert report.lists_distinct == report.track_starts == len(starts_of(sent))
    assert ready.status_code == 200, ready.text
    assert latest.status_code == 200
    assert "CERTIFICATE_VERIFY_FAILED" in refused[0]
