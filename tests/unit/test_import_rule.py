"""The layering rule: streams and serving build on features and models, never on each other;
the runtime never imports the development tooling (devtools/) or the tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Not installed with the runtime: importing them from it would fail in the wheel and the image.
DEV_ONLY = {"devtools", "tests"}
FORBIDDEN: dict[str, set[str]] = {
    "streams": {"serving"} | DEV_ONLY,
    "serving": {"streams"} | DEV_ONLY,
    "features": {"streams", "serving", "models"} | DEV_ONLY,
    "models": {"streams", "serving"} | DEV_ONLY,
    "nowplaying": {"streams", "serving", "features", "models"} | DEV_ONLY,
    "devtools": {"tests"},
}
#: The entry point wires the packages together (it imports commands lazily by name).
ALLOWED_FILES = {ROOT / "nowplaying" / "cli.py"}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_the_import_rule(package: str) -> None:
    violations = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path in ALLOWED_FILES:
            continue
        bad = imported_top_levels(path) & FORBIDDEN[package]
        if bad:
            violations.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import serving.app\nfrom streams.worker import run\nimport numpy\n")
    assert imported_top_levels(sample) == {"serving", "streams", "numpy"}
