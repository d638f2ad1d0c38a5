"""The worker and the API run the sequence model through ONNX: they never import jax/optax."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import streams.worker, serving.app, models.recommender
import models.sequence, models.sequence.scorer, features.sequence, models.baselines
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"jax", "jaxlib", "optax"})
print(",".join(loaded))
"""


def test_the_worker_the_api_and_the_recommender_never_import_jax() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert out.stdout.strip() == ""


def test_the_probe_would_see_jax_if_it_were_imported() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import models.sequence.train\n" + PROBE],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "jax" in out.stdout.split(",")
    assert "optax" in out.stdout.split(",")
