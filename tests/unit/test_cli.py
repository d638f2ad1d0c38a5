"""The command line: subcommands, lazy imports, runner wiring."""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nowplaying import cli
from serving.tokens import find_caller, parse_tokens

ROOT = Path(__file__).resolve().parents[2]
SUBCOMMANDS = ("schemas", "topics", "train", "evaluate", "worker", "api", "replay", "models")
#: What the wheel holds; every command runs code from these packages only.
RUNTIME_PACKAGES = {"nowplaying", "features", "models", "streams", "serving"}
HEAVY_MODULES = ("faust", "onnxruntime", "lightgbm", "fastapi", "kafka", "redis", "streams")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_lists_every_subcommand() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nowplaying.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0
    for name in SUBCOMMANDS:
        assert name in done.stdout


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys; from nowplaying import cli; cli.build_parser().format_help(); "
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name: str) -> None:
    assert name in _subparsers()
    assert _subparsers()[name].format_help().startswith("usage: nowplaying " + name)


def test_each_subcommand_names_its_runner() -> None:
    targets = {name: p.get_default("runner") for name, p in _subparsers().items()}
    assert targets["topics"] == "streams.topics:run"
    assert targets["worker"] == "streams.worker:run"
    assert targets["api"] == "serving.main:run"
    assert targets["train"] == "models.train_cli:run"
    assert all(isinstance(t, str) and t.count(":") == 1 for t in targets.values())


def test_every_runner_is_runtime_code() -> None:
    """The development tooling (devtools/: services, benchmarks) is not installed, so no
    command may run it."""
    modules = {name: p.get_default("runner").split(":")[0] for name, p in _subparsers().items()}
    outside = {name: m for name, m in modules.items() if m.split(".")[0] not in RUNTIME_PACKAGES}
    assert not outside, outside
    assert "bench" not in modules


def test_api_without_a_sub_command_still_serves_and_token_create_mints() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["api"]).runner == "serving.main:run"
    args = parser.parse_args(["api", "token", "create", "--name", "dash", "--scopes", "read"])
    assert args.runner == "serving.tokens:create_command"
    assert (args.name, args.scopes, args.json) == ("dash", "read", False)
    with pytest.raises(SystemExit):
        parser.parse_args(["api", "token"])  # an action is required under `token`


def test_token_create_prints_the_token_once_and_the_entry_of_its_hash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["api", "token", "create", "--name", "ops", "--scopes", "read,steer"]) == 0
    text = capsys.readouterr().out
    (token,) = [w for w in text.split() if w.startswith("np_")]
    (entry,) = [w.removeprefix("NP_API_TOKENS=") for w in text.split() if "NP_API_TOKENS=" in w]
    assert entry == f"ops:read+steer:{hashlib.sha256(token.encode()).hexdigest()}"
    assert text.count(token) == 1
    caller = find_caller(parse_tokens(entry), token)
    assert caller is not None and caller.name == "ops"

    assert cli.main(["api", "token", "create", "--name", "demo", "--json"]) == 0
    minted = json.loads(capsys.readouterr().out)
    assert set(minted) == {"name", "token", "entry"} and minted["entry"].startswith("demo:read:")
    assert cli.main(["api", "token", "create", "--name", "x", "--scopes", "admin"]) == 2
    assert "unknown scope 'admin'" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["nowplaying.schemas_cli:run", "streams.topics:run"])
def test_foundation_runners_resolve_with_the_runner_signature(target: str) -> None:
    runner = cli.resolve(target)
    params = list(inspect.signature(runner).parameters)
    assert params == ["settings", "args"]


def test_main_builds_settings_and_runs_the_runner(tmp_path: Path) -> None:
    assert cli.main(["schemas", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dead-letter.schema.json",
        "now-playing-recommendation.schema.json",
        "outcome.schema.json",
        "play-event.schema.json",
        "steer-event.schema.json",
    ]
    assert cli.main(["schemas", "--check", "--out", str(tmp_path)]) == 0


def test_an_unavailable_runner_is_exit_2_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli.build_parser().parse_args(["topics"])
    args.runner = "nowplaying.does_not_exist:run"
    monkeypatch.setattr(cli, "build_parser", lambda: _FixedParser(args))
    assert cli.main(["topics"]) == 2
    assert "not available" in capsys.readouterr().err


class _FixedParser:
    """Parses every command line into the same namespace."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args

    def parse_args(self, argv: object = None) -> argparse.Namespace:
        return self._args
