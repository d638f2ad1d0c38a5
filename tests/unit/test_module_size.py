"""Runtime modules stay small: one concern each, under the size the project holds them to."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("nowplaying", "features", "models", "streams", "serving")
MAX_LINES = 400


def test_no_runtime_module_is_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for package in RUNTIME_PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    assert len(sizes) > 40, sorted(sizes)  # the packages were found
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not over, f"split these by concern: {over}"
