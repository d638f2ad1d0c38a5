"""Profile the worker with py-spy (at max rate, or at a fixed rate) and summarise where its CPU
goes.

py-spy samples the worker process (pinned to its core) from outside while the harness offers
events as fast as it can; the collapsed stacks land in ``<out>/profile-worker.txt`` (feed them to
any flamegraph tool) and the functions with the most samples go into the report.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from devtools.bench import e2e
from devtools.bench.report import Report
from devtools.paths import shown
from models.labelled_sessions import Session
from nowplaying.settings import Settings

_LINE_NO = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class FunctionShare:
    function: str
    self_pct: float
    total_pct: float


def frame_name(frame: str) -> str:
    """``recommend (models/recommender.py:88)`` -> ``recommend (models/recommender.py)``, and
    site-packages paths shortened to the package."""
    name = _LINE_NO.sub(")", frame.strip())
    return re.sub(r"\(.*?(?:site|dist)-packages/", "(", name)


def summarise(collapsed: Iterable[str], top: int = 15) -> list[FunctionShare]:
    """Self and total share of samples per function from py-spy's raw (collapsed) output."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in collapsed:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            total_counts[name] += count
    if samples == 0:
        return []
    return [
        FunctionShare(name, 100.0 * n / samples, 100.0 * total_counts[name] / samples)
        for name, n in self_counts.most_common(top)
    ]


#: Where the worker's CPU goes: a sample belongs to the first rule matching its innermost
#: frame that any rule matches (so numpy under ``rows_for`` counts as features).
#: uvloop's loop is C code: a sample inside it (polling, or its own I/O) shows the Python frame
#: that ran the loop as its innermost one (the main thread's worker, the consumer's thread).
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "event loops polling sockets (select)",
        (
            "EpollSelector.select",
            "Worker.execute_from_commandline (mode/worker.py",
            "ServiceThread._start_thread (mode/threads.py",
        ),
    ),
    ("ranker: onnxruntime call", ("onnxruntime/",)),
    ("Redis: feature store round trips", ("features/store/", "redis/")),
    ("features: context, candidates, rows, top-k", ("models/recommender.py", "features/")),
    ("Kafka: publishing lists", ("Pipeline._publish", "aiokafka/producer/", "FaustPublisher")),
    ("event validation (pydantic)", ("nowplaying/events.py", "pydantic")),
    (
        "rest of the pipeline",
        (
            "streams/pipeline.py",
            "streams/batch_loop.py",
            "streams/offsets.py",
            "streams/instrumentation.py",
            "streams/runtime.py",
            "streams/worker.py",
        ),
    ),
    (
        "Faust/aiokafka: consuming, acks, agent",
        (
            "faust/transport/",
            "faust/streams.py",
            "faust/agents/",
            "faust/events.py",
            "faust/serializers/",
            "faust/sensors/",
            "faust/channels.py",
            "faust/topics.py",
            "aiokafka/",
            "mode/threads.py",
            "mode/services.py",
            "mode/utils/",
            "kafka/",
        ),
    ),
)
OTHER = "other (event loop, interpreter)"


def component_of(frames: Sequence[str]) -> str:
    for frame in reversed(frames):
        for label, needles in COMPONENTS:
            if any(n in frame for n in needles):
                return label
    return OTHER


def components(collapsed: Iterable[str]) -> dict[str, float]:
    """Share of samples (percent) per :data:`COMPONENTS` entry, plus :data:`OTHER`."""
    counts: Counter[str] = Counter()
    for line in collapsed:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        counts[component_of(stack.split(";"))] += int(count_text)
    total = sum(counts.values())
    if total == 0:
        return {}
    order = [label for label, _ in COMPONENTS] + [OTHER]
    return {label: 100.0 * counts[label] / total for label in order if counts[label]}


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


async def profile_worker(
    settings: Settings,
    sessions: Sequence[Session],
    report: Report,
    out: Path,
    seconds: float,
    *,
    rate: float | None = None,
) -> None:
    exe = py_spy()
    if exe is None:
        report.notes.append("profile: py-spy is not installed (pip install py-spy)")
        return
    raw = out / "profile-worker.txt"
    spies: list[subprocess.Popen[bytes]] = []

    def attach(pid: int, step: e2e.Step) -> None:
        cmd = [exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200"]
        cmd += ["-f", "raw", "-o", str(raw)]
        spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    # At max rate: as many events as the worker can take in `seconds` and then some.
    step = e2e.Step(rate, int(seconds * (rate or 2500)))
    config = e2e.RunConfig(steps=(step,), warmup_events=500)
    report.profile_rate = rate
    try:
        await e2e.run_impl(
            settings=settings,
            impl=e2e.WORKER,
            sessions=sessions,
            config=config,
            log_dir=out / "logs",
            on_running=attach,
        )
    except e2e.BenchError as exc:
        report.notes.append(f"profile: the worker failed: {str(exc)[:500]}")
    for spy in spies:
        try:
            spy.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            spy.kill()
    if not raw.exists():
        report.notes.append("profile: py-spy wrote nothing (ptrace not permitted?)")
        return
    lines = raw.read_text(errors="replace").splitlines()
    report.profile = [
        {"function": s.function, "self_pct": s.self_pct, "total_pct": s.total_pct}
        for s in summarise(lines)
    ]
    report.profile_components = components(lines)
    report.notes.append(f"profile: py-spy collapsed stacks in {shown(raw)}")
