"""Settings for tests, built from keyword arguments ONLY.

``Settings(field=...)`` still reads ``NP_*`` variables and ``.env`` for the fields it is not
given, so a developer's shell could change a test's outcome. :func:`isolated_settings` builds
the same class with every other field at its default.
"""

from __future__ import annotations

from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from nowplaying.settings import Settings


class _KeywordsOnlySettings(Settings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def isolated_settings(**fields: Any) -> Settings:
    """A validated, frozen :class:`Settings` from ``fields`` and the defaults, nothing else."""
    return Settings.model_validate(_KeywordsOnlySettings(**fields).model_dump())
