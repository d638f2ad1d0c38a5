"""Where the tooling reads and writes: folders of the repository checkout it runs from."""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: The repository root (``devtools/`` is never installed, so this is always the checkout).
REPO_ROOT: Final = Path(__file__).resolve().parents[1]
#: Local runtime state: the services' data and logs, benchmark models (git-ignored).
VAR_DIR: Final = REPO_ROOT / "var"
#: Downloads kept between runs: the Kafka broker's jars (git-ignored).
CACHE_DIR: Final = REPO_ROOT / ".cache"
#: The Kafka broker's build and configuration files (``pom.xml``, templates).
KAFKA_INFRA: Final = REPO_ROOT / "infra" / "kafka"


def shown(path: Path) -> str:
    """``path`` relative to the repository root when inside it (for reports and logs)."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(path)
