"""``nowplaying evaluate --steering``: run :mod:`models.steering_eval` on a version's test split
and write ``steering_report.md``, ``steering.json`` and the chart ``steering.png`` into it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from models.datasets import DataError
from models.recommender import Recommender
from models.registry import ModelNotFoundError, resolve_version_dir
from models.skip.scorer import SkipRiskModel
from models.skip.version_data import version_splits
from models.steering_eval import INTENTS, SteeringEvaluation, evaluate_steering
from nowplaying.settings import Settings

STEERING_REPORT_FILE: Final = "steering_report.md"
STEERING_METRICS_FILE: Final = "steering.json"
STEERING_CHART_FILE: Final = "steering.png"


def _ci(f: dict[str, float], digits: int = 3) -> str:
    return f"{f['value']:.{digits}f} [{f['low']:.{digits}f}, {f['high']:.{digits}f}]"


def _signed(f: dict[str, float], digits: int = 3) -> str:
    return f"{f['value']:+.{digits}f} [{f['low']:+.{digits}f}, {f['high']:+.{digits}f}]"


def steering_markdown(e: SteeringEvaluation) -> list[str]:
    lines = [
        "## Session steering on real held-out sessions",
        "",
        f"Test split: {e.sessions} sessions, {e.queries} positions (the state after each "
        "track_start; top-10 lists of the SteeredRecommender). Each intent is added to every "
        "state it can act on; `more_like_this` / `less_like_this` name the current track. "
        "95% bootstrap intervals over sessions; shifts are paired.",
        "",
        "| intent | positions | measure | unsteered | steered | shift | HR@10 unsteered -> "
        "steered | MRR@10 unsteered -> steered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in INTENTS:
        r = e.intents[kind]
        lines.append(
            f"| `{kind}` | {r['queries']} | {r['measure']} | {_ci(r['unsteered'])} | "
            f"{_ci(r['steered'])} | **{_signed(r['shift'])}** | {r['hr_unsteered']['value']:.3f}"
            f" -> {r['hr_steered']['value']:.3f} | {r['mrr_unsteered']['value']:.3f} -> "
            f"{r['mrr_steered']['value']:.3f} |"
        )
    if e.auto:
        lines += [
            "",
            "Automatic steering (`auto`: two skips in a row or a high predicted skip risk of "
            "the top 10; weights `skip_risk` and `away_from_skipped` below):",
            "",
            "| positions | count | lists steered | listened-hit@10 without | with | shift "
            "(relative) | HR@10 without -> with |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in e.auto.items():
            base = r["listened_hit_without"]["value"]
            rel = r["listened_hit_shift"]["value"] / base if base else 0.0
            lines.append(
                f"| {name.replace('_', ' ')} | {r['queries']} | {r['triggered']} | "
                f"{_ci(r['listened_hit_without'], 4)} | {_ci(r['listened_hit_with'], 4)} | "
                f"{_signed(r['listened_hit_shift'], 4)} ({rel:+.1%}) | "
                f"{r['hr_without']['value']:.3f} -> {r['hr_with']['value']:.3f} |"
            )
    cfg = ", ".join(f"{k}={v}" for k, v in e.config.items())
    lines += ["", f"SteeringConfig: {cfg}.", "", f"![steering]({STEERING_CHART_FILE})"]
    return lines


def write_chart(path: Path, e: SteeringEvaluation) -> None:
    import matplotlib  # noqa: PLC0415 - only when a report is written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = len(INTENTS) + (1 if e.auto else 0)
    fig, axes = plt.subplots(1, panels, figsize=(3.0 * panels, 3.4), dpi=100)
    for ax, kind in zip(axes, INTENTS, strict=False):
        r = e.intents[kind]
        _bars(ax, ["unsteered", "steered"], [r["unsteered"], r["steered"]])
        ax.set_title(f"{kind}\n{r['measure']}", fontsize=8)
    if e.auto:
        r = e.auto["after_two_early_skips"]
        _bars(axes[-1], ["without", "auto"], [r["listened_hit_without"], r["listened_hit_with"]])
        axes[-1].set_title("after 2 early skips\nlistened-hit@10", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _bars(ax: Any, names: list[str], figs: list[dict[str, float]]) -> None:
    values = [f["value"] for f in figs]
    errors = [[f["value"] - f["low"] for f in figs], [f["high"] - f["value"] for f in figs]]
    bars = ax.bar(names, values, yerr=errors, capsize=4, color=["#999999", "#1f77b4"])
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.tick_params(labelsize=8)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``nowplaying evaluate --steering``."""
    try:
        version_dir = args.model or resolve_version_dir(settings.model_dir, settings.model_version)
        recommender = Recommender.served(version_dir, settings)
        _, _, test, description = version_splits(settings, version_dir)
    except (ModelNotFoundError, DataError, ValueError, OSError) as exc:
        print(f"nowplaying evaluate --steering: {exc}", file=sys.stderr)
        return 2
    print(f"data: {description}")
    evaluation = evaluate_steering(
        recommender,
        test,
        skip_model=SkipRiskModel.load(version_dir),
        progress=not args.no_progress,
    )
    lines = steering_markdown(evaluation)
    payload = json.dumps(evaluation.to_json(), indent=2) + "\n"
    (version_dir / STEERING_METRICS_FILE).write_text(payload, encoding="utf-8")
    write_chart(version_dir / STEERING_CHART_FILE, evaluation)
    (version_dir / STEERING_REPORT_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0
