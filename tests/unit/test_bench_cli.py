"""``python -m devtools.bench``: its options, and where a run reads and writes.

The harness is development tooling, run from the repository: results and committed tables are
repository paths, whatever the working directory, never next to installed code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.bench.cli import build_parser
from devtools.bench.model import bench_model_dir
from devtools.bench.procs import repository_env
from devtools.bench.run import (
    CHANGES,
    COMMITTED_RSS_TABLE,
    COMMITTED_TABLE,
    RESULTS_DIR,
    SUITES,
    needs_e2e,
    plan_for,
)
from devtools.paths import REPO_ROOT, VAR_DIR, shown

ROOT = Path(__file__).resolve().parents[2]


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_the_repository_root_is_this_checkout() -> None:
    assert ROOT == REPO_ROOT
    assert VAR_DIR == ROOT / "var"


def test_results_and_committed_tables_are_repository_paths() -> None:
    bench = ROOT / "devtools" / "bench"
    assert bench / "results" == RESULTS_DIR
    assert (
        bench / "RESULTS.md",
        bench / "RESULTS-rss.md",
        bench / "CHANGES.md",
    ) == (COMMITTED_TABLE, COMMITTED_RSS_TABLE, CHANGES)
    for table in (COMMITTED_TABLE, COMMITTED_RSS_TABLE, CHANGES):
        assert table.is_file(), table
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "devtools/bench/results/" in ignored


def test_every_suite_and_option_parses() -> None:
    parser = build_parser()
    assert options(parser) == {
        "-h",
        "--help",
        "--log-level",
        "--quick",
        "--out",
        "--model-dir",
        "--small-model",
        "--rss-rate",
        "--profile-rate",
    }
    assert set(SUITES) == {"all", "stages", "e2e", "profile", "rss"}
    for suite in SUITES:
        assert parser.parse_args([suite]).suite == suite
    args = parser.parse_args(
        ["rss", "--quick", "--out", "o", "--model-dir", "m", "--small-model", "--rss-rate", "300"]
    )
    assert (args.quick, args.out, args.model_dir, args.small_model, args.rss_rate) == (
        True,
        Path("o"),
        Path("m"),
        True,
        300.0,
    )
    assert parser.parse_args(["profile"]).profile_rate is None
    assert parser.parse_args(["profile", "--profile-rate", "200"]).profile_rate == 200.0
    with pytest.raises(SystemExit):
        parser.parse_args(["everything"])


def test_defaults_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args([])
    assert (args.suite, args.out) == ("all", RESULTS_DIR)
    assert bench_model_dir(args, quick=False) == ROOT / "var" / "bench-models"
    assert bench_model_dir(args, quick=True) == ROOT / "var" / "bench-models-quick"
    given = build_parser().parse_args(["--model-dir", "elsewhere"])
    assert bench_model_dir(given, quick=True) == Path("elsewhere")


def test_child_processes_find_the_tooling_first() -> None:
    env = repository_env({"PYTHONPATH": os.pathsep.join(["/a", "/b"])})
    assert env == {"PYTHONPATH": os.pathsep.join([str(ROOT), "/a", "/b"])}
    assert repository_env({}) == {"PYTHONPATH": str(ROOT)}


def test_reports_show_repository_paths_relative(tmp_path: Path) -> None:
    assert shown(ROOT / "var" / "bench-models" / "v1") == "var/bench-models/v1"
    assert shown(tmp_path / "x") == str(tmp_path / "x")


def test_the_module_runs_from_outside_the_repository(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devtools.bench", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, **repository_env()},
    )
    assert done.returncode == 0, done.stderr
    assert "{all,stages,e2e,profile,rss}" in done.stdout


def test_each_suite_but_stages_runs_on_the_broker() -> None:
    for quick in (False, True):
        runs = {suite: needs_e2e(plan_for(suite, quick)) for suite in SUITES}
        assert runs == {"all": True, "stages": False, "e2e": True, "profile": True, "rss": True}
        profile = plan_for("profile", quick, profile_rate=200.0)
        assert profile.profile_rate == 200.0 and profile.profile_seconds > 0
        assert not profile.worker  # the profile's own step only
