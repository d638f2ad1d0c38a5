"""The served-lists part of a model version's report: tables, the chart panel, the terminal text.

Everything here reads the JSON form of :class:`models.served_evaluation.ServedEvaluation` (as
stored in ``metrics.json`` and ``metadata.json``), so a report can be rebuilt from either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SUBSET_TITLES: Final = {
    "non_repeat": "next track not already played in the session",
    "all": "all positions",
    "listened": "next track listened through",
}
METRIC_TITLES: Final = {"hr": "HR@10", "mrr": "MRR@10", "ndcg": "NDCG@10"}


def _cell(e: dict[str, float]) -> str:
    return f"{e['value']:.4f} [{e['low']:.4f}, {e['high']:.4f}]"


def served_markdown(served: dict[str, Any]) -> list[str]:
    """Report lines: the count of queries, then one table per subset, methods side by side."""
    counts = served["subset_queries"]
    lines = [
        "## Served lists against full-catalogue baselines",
        "",
        f"{served['sessions']} test sessions, {served['queries']} positions (every position "
        "with a next track). `served` is the top-10 list of `Recommender.recommend`, the call "
        "the stream worker makes, on the state the stream folds from the session's events; "
        "every baseline is fitted on the training split only, ranks the whole catalogue and "
        "excludes the tracks already played (as the served lists do).",
        "",
        f"Non-repeat positions: {counts.get('non_repeat', 0)}; the {served['repeat_queries']} "
        "positions whose next track was already played in the session are left out of them "
        "(no list can hold that track). "
        f"{served['unknown_next']} next tracks never occur in the training split (a miss for "
        f"every method). Listened-through next tracks: {served['listened_queries']}.",
        "",
        f"Values with 95% intervals: bootstrap over sessions, {served['resamples']} resamples "
        f"(seed {served['seed']}), the same resamples for every method. Graded NDCG@10: gain "
        "2^g - 1 of the next track's outcome (listened g=2, skipped late 1, skipped early 0) "
        "over log2(1 + rank), divided by the ideal of a listened track (3). CPU ms per query: "
        "producing the list (served: the whole `recommend` call, in batches of 200 states).",
    ]
    methods: dict[str, Any] = served["methods"]
    for subset, title in SUBSET_TITLES.items():
        lines += [
            "",
            f"### {title} ({counts.get(subset, 0)} positions)",
            "",
            "| method | HR@10 | MRR@10 | NDCG@10 (graded) | CPU ms/query | fit CPU s |",
            "|---|---|---|---|---|---|",
        ]
        for name, result in methods.items():
            f = result["figures"][subset]
            lines.append(
                f"| {name} | {_cell(f['hr'])} | {_cell(f['mrr'])} | {_cell(f['ndcg'])} | "
                f"{result['cpu_ms_per_query']:.3f} | {result['fit_cpu_seconds']:.2f} |"
            )
    lines += ["", *comparison_lines(served), "", "Methods:", ""]
    lines += [f"* `{name}`: {result['description']}" for name, result in methods.items()]
    return lines + ablation_lines(served)


def ablation_lines(served: dict[str, Any], subset: str = "non_repeat") -> list[str]:
    """The ablation table (models.ablation), when the run made one."""
    table: dict[str, Any] = served.get("ablation") or {}
    if not table:
        return []
    lines = [
        "",
        f"### Ablation: the ranker without feature groups ({SUBSET_TITLES[subset]})",
        "",
        "The same training and validation rows with the group's columns zeroed, the same "
        "LightGBM recipe and seed, the same candidates; served lists of the test split.",
        "",
        "| ranker | trees | HR@10 | MRR@10 | NDCG@10 (graded) | CPU ms/query |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        f = row["figures"][subset]
        lines.append(
            f"| {name} | {row['trees']} | {_cell(f['hr'])} | {_cell(f['mrr'])} | "
            f"{_cell(f['ndcg'])} | {row['cpu_ms_per_query']:.3f} |"
        )
    return lines


def comparison_lines(served: dict[str, Any]) -> list[str]:
    """Served minus the best baseline (by MRR@10 over non-repeat positions), paired."""
    best = served.get("best_baseline")
    diff: dict[str, dict[str, float]] = served.get("served_minus_best") or {}
    if not best or not diff:
        return []
    parts = [
        f"{METRIC_TITLES[m]} {d['value']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] "
        f"({d['relative']:+.1%})"
        for m, d in diff.items()
    ]
    verdict = (
        "better than"
        if diff["mrr"]["low"] > 0
        else "worse than"
        if diff["mrr"]["high"] < 0
        else "not distinguishable from"
    )
    return [
        f"Best baseline over non-repeat positions (by MRR@10): **{best}**. Served minus "
        f"{best}, paired over the same resampled sessions: " + "; ".join(parts) + ". "
        f"On MRR@10 the served lists are **{verdict}** the best baseline.",
    ]


def served_table(served: dict[str, Any], subset: str = "non_repeat") -> str:
    """Plain-text table for the terminal."""
    rows = [
        f"served lists vs baselines, {SUBSET_TITLES[subset]} "
        f"({served['subset_queries'].get(subset, 0)} of {served['queries']} positions)",
        f"{'method':<14} {'HR@10':>23} {'MRR@10':>23} {'NDCG@10':>23} {'ms/query':>9}",
    ]
    for name, result in served["methods"].items():
        f = result["figures"][subset]
        rows.append(
            f"{name:<14} {_cell(f['hr']):>23} {_cell(f['mrr']):>23} {_cell(f['ndcg']):>23} "
            f"{result['cpu_ms_per_query']:>9.3f}"
        )
    ablation = [
        f"{name:<22} MRR@10 {_cell(row['figures'][subset]['mrr'])}"
        for name, row in (served.get("ablation") or {}).items()
    ]
    return "\n".join(rows + comparison_lines(served) + ablation)


def plot_served(ax: Axes, served: dict[str, Any], subset: str = "non_repeat") -> None:
    """HR@10 and MRR@10 of every method over one subset, with the intervals as error bars."""
    methods = list(served["methods"])
    y = np.arange(len(methods))
    height = 0.38
    for offset, metric in ((-height / 2, "hr"), (height / 2, "mrr")):
        figures = [served["methods"][m]["figures"][subset][metric] for m in methods]
        values = np.array([f["value"] for f in figures])
        errors = np.array(
            [[f["value"] - f["low"] for f in figures], [f["high"] - f["value"] for f in figures]]
        )
        bars = ax.barh(
            y + offset, values, height, xerr=errors, label=METRIC_TITLES[metric], capsize=2
        )
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=8)
    labels = [f"{m}\n{served['methods'][m]['cpu_ms_per_query']:.2f} ms" for m in methods]
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title(
        f"Served lists vs full-catalogue baselines, {SUBSET_TITLES[subset]} "
        f"({served['subset_queries'].get(subset, 0)} positions, 95% CI)",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="lower right")
