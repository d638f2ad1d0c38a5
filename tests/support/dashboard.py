"""Read the Grafana dashboards and a Prometheus exposition, to check that they stay in step.

Used by ``tests/unit/test_dashboard.py`` (against ``nowplaying.metrics``) and
``tests/integration/test_dashboard_scrape.py`` (against real ``/metrics`` scrapes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"

#: PromQL words that look like identifiers but are not metric names.
PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "atan2", "inf", "nan", "start", "end"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_IDENT = re.compile(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w(])(?!\s*\()")

#: The sample names a metric family of each type exposes, from its family name.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard's panels (rows' nested panels included)."""
    return [
        str(target["expr"])
        for panel in walk_panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def _strip(expr: str) -> str:
    expr = _STRING.sub('""', expr)
    expr = _MATCHERS.sub("", expr)
    return _RANGE.sub("", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    bare = _GROUPING.sub(" ", _strip(expr))
    return {
        name
        for name in _IDENT.findall(bare)
        if name.lower() not in PROMQL_KEYWORDS and not name.startswith("__")
    }


def grouping_labels(expr: str) -> set[str]:
    """Labels named in ``by (...)`` / ``without (...)`` / ``on (...)`` clauses."""
    return {
        label.strip()
        for _, labels in _GROUPING.findall(_strip(expr))
        for label in labels.split(",")
        if label.strip()
    }


def registry_labels(module: object) -> dict[str, set[str]]:
    """Sample name -> label names, for every metric object defined in ``module``."""
    exposed: dict[str, set[str]] = {}
    for metric in vars(module).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        base = metric._name  # prometheus_client keeps counters' names without '_total'
        labels = set(metric._labelnames)
        for suffix in _SUFFIXES[metric._type or "unknown"]:
            exposed[base + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return exposed


def exposition_labels(text: str) -> dict[str, set[str]]:
    """Sample name -> label names seen, from a ``/metrics`` scrape.

    A labelled metric with no children yet shows only its ``# TYPE`` line; its sample names are
    derived from the family's type (with no labels known).
    """
    exposed: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in _SUFFIXES.get(family.type, ("",)):
            exposed.setdefault(family.name + suffix, set())
        for sample in family.samples:
            exposed.setdefault(sample.name, set()).update(sample.labels)
    return exposed


def sampled_names(text: str) -> set[str]:
    """Sample names that have at least one value in the scrape."""
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
