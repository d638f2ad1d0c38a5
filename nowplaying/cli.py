"""The ``nowplaying`` command line: the entry point that builds Settings once and wires packages.

Each subcommand names the function that runs it as ``"module:function"``; the module is imported
only when that subcommand runs, so ``nowplaying --help`` stays fast. Every runner has the
signature ``run(settings: Settings, args: argparse.Namespace) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from nowplaying.redaction import redact_secrets_in_logs, secret_values
from nowplaying.settings import Settings

Runner = Callable[[Settings, argparse.Namespace], int]


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data set file or folder (default: the MSSD-derived sessions under NP_DATA_DIR)",
    )
    p.add_argument(
        "--synthetic",
        action="store_true",
        help="use the built-in SYNTHETIC session generator instead of real data",
    )
    p.add_argument("--sessions", type=int, default=None, help="use at most this many sessions")
    p.add_argument("--seed", type=int, default=7)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nowplaying",
        description="Real-time streaming features and inference for Now Playing recommendations.",
    )
    parser.add_argument("--log-level", default=None, help="override NP_LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("schemas", help="write the topics' JSON Schema files")
    p.add_argument("--out", type=Path, default=Path("schemas"))
    p.add_argument("--check", action="store_true", help="fail if the files are out of date")
    p.set_defaults(runner="nowplaying.schemas_cli:run")

    p = sub.add_parser("topics", help="create the Kafka topics (idempotent)")
    p.set_defaults(runner="streams.topics:run")

    p = sub.add_parser("train", help="train the LambdaRank ranker and export it to ONNX")
    _add_data_args(p)
    p.add_argument("--out", type=Path, default=None, help="model registry folder (NP_MODEL_DIR)")
    p.add_argument("--trees", type=int, default=200, help="boosting rounds (early-stopped)")
    p.add_argument("--leaves", type=int, default=31)
    p.add_argument(
        "--early-stopping-rounds",
        type=int,
        default=30,
        help="stop after this many rounds without a better validation NDCG@10 (0: train all)",
    )
    p.add_argument(
        "--negatives", type=int, default=20, help="generator candidates per training query"
    )
    p.add_argument("--folds", type=int, default=4, help="out-of-fold artifact folds (1: none)")
    p.add_argument("--threads", type=int, default=1, help="LightGBM threads (0: all cores)")
    p.add_argument("--no-eval", action="store_true", help="skip the test-split evaluation")
    p.add_argument("--no-sequence", action="store_true", help="no sequence model (its features 0)")
    p.add_argument(
        "--sequence-epochs", type=int, default=None, help="sequence model epochs (default 2)"
    )
    p.add_argument(
        "--skip-task-model",
        action="store_true",
        help="also train the offline WSDM skip evaluation model (about 90 s on the real data)",
    )
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also train and evaluate the ranker without the sequence / higher-order features",
    )
    p.add_argument(
        "--no-publish",
        action="store_true",
        help="leave 'latest' alone (promote later with `nowplaying models promote`)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(runner="models.train_cli:run")

    p = sub.add_parser("evaluate", help="offline evaluation against baselines on the test split")
    _add_data_args(p)
    p.add_argument("--model", type=Path, default=None, help="model version folder (default latest)")
    p.add_argument("--skip", action="store_true", help="the skip-risk model, WSDM Cup 2019 style")
    p.add_argument("--steering", action="store_true", help="intents and automatic steering")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(runner="models.evaluate:run")

    p = sub.add_parser("models", help="list, promote and roll back model versions")
    p.add_argument("--model-dir", type=Path, default=None, help="registry (NP_MODEL_DIR)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="versions with their offline figures; * marks latest")
    promote = actions.add_parser("promote", help="point 'latest' at VERSION, behind the gate")
    promote.add_argument("version", metavar="VERSION")
    promote.add_argument("--force", action="store_true", help="promote even if the gate refuses")
    promote.add_argument(
        "--tolerance",
        type=float,
        default=0.005,
        help="accepted test NDCG@10 drop below the current latest",
    )
    actions.add_parser("rollback", help="point 'latest' back at the previous latest")
    variants = actions.add_parser(
        "variants", help="show, set or --clear the A/B test spec running workers serve"
    )
    variants.add_argument("spec", nargs="?", default=None, metavar="SPEC")
    variants.add_argument("--salt", default=None, help="assignment salt (NP_EXPERIMENT_SALT)")
    variants.add_argument("--clear", action="store_true", help="back to the workers' settings")
    variants.set_defaults(runner="models.variants_file:run")
    p.set_defaults(runner="models.manage:run")

    p = sub.add_parser("experiment", help="read out an A/B test from the outcome topic")
    p.set_defaults(runner="models.experiment_cli:run")
    exp_actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    report = exp_actions.add_parser("report", help="report.md, metrics.json and a chart")
    window = report.add_mutually_exclusive_group()
    window.add_argument("--since", default=None, help="ISO time or epoch ms")
    window.add_argument("--last", type=int, default=None, help="last N records per partition")
    report.add_argument("--until", default=None, help="ISO time or epoch ms (exclusive)")
    report.add_argument("--out", type=Path, default=Path("var/experiment"))
    report.add_argument("--variants", default=None, help="the split (default: as configured)")
    report.add_argument("--salt", default=None, help="the assignment salt of --variants")
    report.add_argument(
        "--aa-salts", type=int, default=0, help="also re-split the listeners with N salts (A/A)"
    )
    report.add_argument("--no-sequential", action="store_true", help="skip listeners-needed")
    report.set_defaults(runner="models.experiment_cli:run")

    p = sub.add_parser("worker", help="run the stream worker (Faust)")
    p.set_defaults(runner="streams.worker:run")

    p = sub.add_parser(
        "api",
        help="run the HTTP API and the live Now Playing page ('api token create': mint a token)",
        description="Without a sub-command: serve the HTTP API and the live page.",
    )
    p.set_defaults(runner="serving.main:run")
    api_actions = p.add_subparsers(dest="api_action", metavar="ACTION")
    token = api_actions.add_parser("token", help="API bearer tokens")
    token_actions = token.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    create = token_actions.add_parser(
        "create",
        help="mint a token: print it once, and the NP_API_TOKENS entry (its hash) to configure",
    )
    create.add_argument("--name", required=True, help="who holds it (unique; shown in errors)")
    create.add_argument(
        "--scopes", default="read", help="comma-separated: read, steer (default: read)"
    )
    create.add_argument(
        "--json", action="store_true", help="print {name, token, entry} as one JSON line"
    )
    create.set_defaults(runner="serving.tokens:create_command")

    p = sub.add_parser("replay", help="produce a data set's sessions as play events")
    _add_data_args(p)
    p.add_argument("--rate", type=float, default=200.0, help="events per second (0: unlimited)")
    p.add_argument("--limit", type=int, default=None, help="stop after this many events")
    p.add_argument(
        "--speedup",
        type=float,
        default=None,
        help="replay in event time, this many times faster (instead of a fixed --rate)",
    )
    p.add_argument("--concurrent", type=int, default=200, help="sessions interleaved at once")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(runner="streams.replay:run")

    return parser


def resolve(target: str) -> Runner:
    module_name, func_name = target.split(":")
    return cast(Runner, getattr(importlib.import_module(module_name), func_name))


def start_process(log_level: str | None = None) -> Settings:
    """What an entry point does first: build the Settings (once, from ``NP_*`` and ``.env``),
    mask their secrets in every log record from now on, and configure logging (``log_level``,
    when given, overrides ``NP_LOG_LEVEL``)."""
    settings = Settings()
    redact_secrets_in_logs(secret_values(settings))
    logging.basicConfig(
        level=log_level or settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = start_process(args.log_level)
    try:
        runner = resolve(args.runner)
    except (ImportError, AttributeError) as exc:
        print(f"nowplaying {args.command}: not available in this build ({exc})", file=sys.stderr)
        return 2
    return runner(settings, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
