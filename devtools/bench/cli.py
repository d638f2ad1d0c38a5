"""``python -m devtools.bench [all|stages|e2e|profile|rss] [--quick] [--out DIR] ...``.

``make bench`` runs it. Settings come from the ``NP_*`` environment (or ``.env``) as for every
``nowplaying`` command, built once here and passed to the run.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from devtools.bench.run import RESULTS_DIR, SUITES, run
from nowplaying.cli import start_process


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devtools.bench",
        description="The benchmark harness: stage and end-to-end benchmarks next to their limits.",
    )
    p.add_argument("--log-level", default=None, help="override NP_LOG_LEVEL")
    p.add_argument(
        "suite",
        nargs="?",
        default="all",
        choices=SUITES,
        help="all (stages, end to end, profile) | stages | e2e | profile | rss (10 min)",
    )
    p.add_argument("--quick", action="store_true", help="a tiny run, to check the harness")
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        help="results folder (default devtools/bench/results in the repository)",
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="model registry for the benchmark (default var/bench-models; trained when empty)",
    )
    p.add_argument(
        "--small-model",
        action="store_true",
        help="also train (once) and compare a 50-tree / 15-leaf model (quality next to cost)",
    )
    p.add_argument(
        "--rss-rate", type=float, default=None, help="events/s of the rss suite (default 500)"
    )
    p.add_argument(
        "--profile-rate",
        type=float,
        default=None,
        help="profile the worker at this many events/s (default: at max rate)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(start_process(args.log_level), args)
