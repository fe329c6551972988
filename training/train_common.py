"""What every training module shares: the import setup (the repo on sys.path, ComfyUI bootstrapped,
one CPU thread; train_demo.py imports it before the other training modules), the run log, the
image tensor convention and the cosine learning-rate schedule."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # appended: the repo's nodes/ package must never shadow ComfyUI's nodes.py
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from p2p_models.comfy_bootstrap import bootstrap  # noqa: E402

bootstrap()

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

LATENT_SCALE = 0.18215  # SD1's latent scale factor: the VAE's latents * this have unit variance
_LOG: Path | None = None


def set_log_file(path: Path | None) -> None:
    global _LOG
    _LOG = path


def log(*a):
    """Print, and append to the run's log file (<work>/log.txt) once main has set it."""
    msg = " ".join(str(x) for x in a)
    print(msg, flush=True)
    if _LOG is not None:
        with open(_LOG, "a") as f:
            f.write(msg + "\n")


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def cosine_lr(step: int, total: int, base: float, warmup: int = 50, floor: float = 0.1) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))
