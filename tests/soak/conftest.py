"""The soak run is opt-in: its tests are deselected unless the ``-m`` expression names ``soak``
(``make soak`` runs ``pytest -m soak``), so a plain ``pytest`` never starts a 30-minute run."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.getoption("markexpr") or ""):
        return
    here = Path(__file__).parent
    dropped = [i for i in items if here in Path(str(i.path)).parents]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]
