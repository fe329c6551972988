"""Two fresh runs of a training script at tiny budgets (the demo models' reproducibility tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def train(script: str, args: list[str], work: Path) -> Path:
    """training/<script> with `args` into `work`; the weights file it exported."""
    out = work / "model.safetensors"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(REPO / "training" / script), *args, "--work", str(work), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def train_twice(script: str, args: list[str], tmp_path_factory, name: str) -> list[Path]:
    return [train(script, args, tmp_path_factory.mktemp(f"{name}{i}")) for i in range(2)]
