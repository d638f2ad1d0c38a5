"""``scripts/demo.sh`` (``make demo``) end to end: the API serves a live list to the token the
demo minted (and printed in the page's URL), and Ctrl-C stops every process the script started.

The demo runs against the shared services (already up, so it leaves them running), this test's
own topics, Redis prefix and ports, and the shared small model (so it does not train). Ctrl-C is
sent as a terminal sends it: SIGINT to the whole foreground process group.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import SettingsFactory
from tests.support.api_server import shared_small_model
from tests.support.pipeline import worker_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"


def wait_for_line(path: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if match := re.search(pattern, text):
            return match.group(0)
        if proc.poll() is not None:
            pytest.fail(f"the demo exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"no {pattern!r} after {timeout} s:\n{path.read_text(errors='replace')[-3000:]}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_demo_reaches_a_live_list_and_ctrl_c_leaves_nothing_behind(
    settings_factory: SettingsFactory, free_tcp_port: Callable[[], int], tmp_path: Path
) -> None:
    settings = settings_factory(
        model_dir=shared_small_model(),
        api_port=free_tcp_port(),
        worker_metrics_port=free_tcp_port(),
        worker_web_port=free_tcp_port(),
    )
    env = worker_env(
        settings,
        NP_DEMO_RATE="100",
        NP_DEMO_SESSIONS="40",
        NP_DEMO_LOG_DIR=str(tmp_path / "logs"),
        NP_DEMO_KEEP_KEYS="1",  # the fixture deletes this test's keys
    )
    out = tmp_path / "demo.out"
    with out.open("wb") as sink:
        with ctrl_c_reaches_children():
            proc = subprocess.Popen(
                ["bash", str(DEMO)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, like a terminal's foreground job
            )
        try:
            wait_for_line(out, r"first live list after [0-9.]+ s", proc, timeout=180)
            base = f"http://{settings.api_host}:{settings.api_port}"
            page = wait_for_line(out, r"Live page: +\S+", proc, timeout=10)
            assert page.split()[-1].startswith(f"{base}/#token=np_")
            token = page.split("#token=", 1)[1]
            auth = {"Authorization": f"Bearer {token}"}
            assert httpx.get(f"{base}/v1/users", timeout=10).status_code == 401  # not open
            user = httpx.get(f"{base}/v1/users?limit=1", headers=auth, timeout=10).json()
            user = user["users"][0]
            latest = httpx.get(f"{base}/v1/users/{user}/recommendations", headers=auth, timeout=10)
            assert latest.status_code == 200
            assert len(latest.json()["recommendations"]) == settings.top_k
            assert httpx.get(f"{base}/", timeout=10).status_code == 200  # the live page
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise

    text = out.read_text(errors="replace")
    assert "stopped everything it started" in text, text[-3000:]
    started = [int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)", text)]
    assert len(started) == 3, text  # worker, api, replay
    assert not [pid for pid in started if alive(pid)], "processes left behind"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{settings.api_host}:{settings.api_port}/healthz", timeout=2)


@contextmanager
def ctrl_c_reaches_children() -> Iterator[None]:
    """Children started inside get SIGINT's default action, as a terminal's would, even when
    this process was started with SIGINT ignored (a background job of a non-interactive shell:
    bash cannot trap a signal ignored at its start, so the demo would never see the Ctrl-C)."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # reset to default on exec
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
