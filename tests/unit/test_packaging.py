"""The wheel and the Docker image hold the runtime only, never the development tooling.

No network and no Docker engine: setuptools reads ``pyproject.toml`` as a wheel build does and
copies what the wheel would hold (packages and package data) into a temporary folder; the
Dockerfile and ``.dockerignore`` are read as text.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = {"nowplaying", "features", "models", "streams", "serving"}
#: Besides the runtime packages the image build copies its build files and the JSON schemas.
BUILD_FILES = {"pyproject.toml", "constraints.txt", "README.md", "schemas"}
DEV_TOOLING = {"devtools", "tests", "scripts", "infra", "deploy", ".ci", "bench"}

#: What a wheel build would put in the wheel (before its .dist-info): setuptools' own package
#: discovery and build_py, run in a child so that no state of setuptools leaks into the tests.
BUILD_PY = """
import json, sys, warnings
from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

warnings.simplefilter("ignore")
dist = apply_configuration(Distribution({"script_name": "setup.py"}), "pyproject.toml")
# The package-data lookup runs egg_info: its folder goes to the scratch space, not the sources.
dist.get_command_obj("egg_info").egg_base = sys.argv[2]
command = dist.get_command_obj("build_py")
command.build_lib = sys.argv[1]
command.compile = command.optimize = 0
dist.run_command("build_py")
print(json.dumps(sorted(dist.packages)))
"""


def wheel_contents(build_lib: Path, scratch: Path) -> tuple[list[str], set[Path]]:
    scratch.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", BUILD_PY, str(build_lib), str(scratch)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    packages: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    files = {path.relative_to(build_lib) for path in build_lib.rglob("*") if path.is_file()}
    return packages, files


def test_the_wheel_holds_the_runtime_packages_only(tmp_path: Path) -> None:
    in_sources = set(ROOT.glob("*.egg-info"))
    packages, files = wheel_contents(tmp_path / "lib", tmp_path / "scratch")
    assert set(ROOT.glob("*.egg-info")) == in_sources, "the check wrote into the sources"
    assert {name.split(".")[0] for name in packages} == RUNTIME
    assert {path.parts[0] for path in files} == RUNTIME
    for name in RUNTIME:
        assert Path(name, "__init__.py") in files, name
    # Package data the API serves, and every module of every runtime package.
    assert Path("serving", "static", "index.html") in files
    for name in RUNTIME:
        for module in (ROOT / name).rglob("*.py"):
            assert module.relative_to(ROOT) in files, module


def test_the_dockerfile_copies_the_runtime_and_no_dev_tooling() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    instructions = "\n".join(lines).replace("\\\n", " ").splitlines()
    assert not [line for line in instructions if re.match(r"\s*ADD\b", line)]
    copied: set[str] = set()
    for line in instructions:
        if not line.startswith("COPY "):
            continue
        words = shlex.split(line)
        if any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words[1:-1] if not w.startswith("--")]
        copied |= {source.rstrip("/") for source in sources}
    assert copied == RUNTIME | BUILD_FILES, sorted(copied ^ (RUNTIME | BUILD_FILES))
    assert not re.search(r"\b(devtools|bench|tests)\b", "\n".join(instructions))


def test_the_build_context_leaves_out_dev_tooling() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert DEV_TOOLING - {"bench"} <= ignored
    assert not RUNTIME & ignored and not BUILD_FILES & ignored
