"""The layering rule: streams and serving build on features and models, never on each other;
inside features, the store layer (``features.store``) is apart from the pure feature code; the
runtime never imports the development tooling (devtools/) or the tests."""

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
#: The store layer: the only part of ``features`` that talks to Redis.
STORE_LAYER = ROOT / "features" / "store"


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def imported_modules(path: Path) -> set[str]:
    """Every module the file at ``path`` (under ROOT) imports; see :func:`modules_imported_by`."""
    package = list(path.relative_to(ROOT).parts[:-1])
    return modules_imported_by(path.read_text(encoding="utf-8"), package)


def modules_imported_by(source: str, package: list[str]) -> set[str]:
    """Every module ``source`` imports, dotted and absolute, relative imports resolved against
    ``package`` (the file's package, e.g. ``["features"]``); for ``from X import y`` both ``X``
    and ``X.y``, since ``y`` may be a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def is_store_or_redis(module: str) -> bool:
    return any(module == m or module.startswith(f"{m}.") for m in ("redis", "features.store"))


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


def test_pure_feature_code_imports_neither_redis_nor_the_store_layer() -> None:
    pure = [p for p in sorted((ROOT / "features").rglob("*.py")) if STORE_LAYER not in p.parents]
    assert ROOT / "features" / "session.py" in pure and ROOT / "features" / "rows.py" in pure
    violations = []
    for path in pure:
        bad = sorted(m for m in imported_modules(path) if is_store_or_redis(m))
        if bad:
            violations.append(f"{path.relative_to(ROOT)} imports {bad}")
    assert not violations, "\n".join(violations)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import serving.app\nfrom streams.worker import run\nimport numpy\n")
    assert imported_top_levels(sample) == {"serving", "streams", "numpy"}


@pytest.mark.parametrize(
    "source",
    [
        "import redis\n",
        "from redis.asyncio import Redis\n",
        "from features.store import FeatureStore\n",
        "import features.store.reads\n",
        "from . import store\n",
        "from .store.base import Applied\n",
    ],
)
def test_the_checker_sees_the_store_layer_or_redis_imported(source: str) -> None:
    modules = modules_imported_by(source, ["features"])
    assert any(is_store_or_redis(m) for m in modules), modules


def test_the_checker_lets_pure_imports_pass() -> None:
    source = "from features.session import SessionState\nfrom . import rows\nimport numpy\n"
    modules = modules_imported_by(source, ["features"])
    assert modules == {
        "features.session",
        "features.session.SessionState",
        "features",
        "features.rows",
        "numpy",
    }
    assert not any(is_store_or_redis(m) for m in modules)
