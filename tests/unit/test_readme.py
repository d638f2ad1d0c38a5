"""The README stays in step with the code it documents."""

from __future__ import annotations

import re
from pathlib import Path

from nowplaying.settings import Settings, settings_table_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def _between_markers(text: str) -> str:
    match = re.search(
        r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", text, re.S
    )
    assert match, "README lacks the settings-table markers"
    return match.group(1)


def test_readme_configuration_table_matches_settings() -> None:
    table = _between_markers(README.read_text(encoding="utf-8"))
    assert table == settings_table_markdown(), (
        "README configuration table is stale: regenerate it with "
        "python -c 'from nowplaying.settings import settings_table_markdown as t; print(t())'"
    )


def test_every_setting_is_documented_as_an_env_var() -> None:
    table = _between_markers(README.read_text(encoding="utf-8"))
    for name in Settings.model_fields:
        assert f"`NP_{name.upper()}`" in table


def test_readme_gives_the_two_newcomer_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
