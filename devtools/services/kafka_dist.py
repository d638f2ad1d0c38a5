"""The Kafka broker's distribution: the pinned version and its jars, fetched once from Maven.

``infra/kafka/pom.xml`` pins the version; ``mvn dependency:copy-dependencies`` puts every
runtime jar under ``<cache>/kafka/<version>/libs``, which every broker of this machine shares.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from devtools.paths import KAFKA_INFRA
from devtools.services.processes import ServiceError, tail

#: Where progress goes (``print`` on the command line; silent in the library API).
Say = Callable[[str], None]


def quiet(_: str) -> None:
    """A ``Say`` that says nothing (the default of the library API)."""


def kafka_version(pom: Path = KAFKA_INFRA / "pom.xml") -> str:
    """The pinned broker version: the ``kafka.version`` property of ``infra/kafka/pom.xml``."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text(encoding="utf-8"))
    if match is None:
        raise ServiceError(f"{pom} has no <kafka.version> property")
    return match.group(1).strip()


def kafka_libs(cache_dir: Path, version: str) -> Path:
    """The folder holding the jars of broker ``version`` under ``cache_dir``."""
    return cache_dir / "kafka" / version / "libs"


def fetch_kafka(cache_dir: Path, *, say: Say = quiet) -> Path:
    """Download the broker's jars from Maven Central once; return the folder holding them."""
    version = kafka_version()
    libs = kafka_libs(cache_dir, version)
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Maven (mvn) is needed once to download the Kafka broker jars")
    say(
        f"Downloading Apache Kafka {version} and its dependencies from Maven Central into "
        f"{libs} (first run only; cached afterwards) ..."
    )
    staging = libs.with_name(f"libs.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(KAFKA_INFRA / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not any(staging.glob(f"kafka_2.13-{version}.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        raise ServiceError(
            f"mvn failed to fetch Kafka {version}:\n{tail(done.stdout + done.stderr)}"
        )
    (staging / ".complete").write_text(version + "\n", encoding="utf-8")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    say(f"Cached {sum(1 for _ in libs.glob('*.jar'))} jars in {libs}")
    return libs
