"""Test setup: a real ComfyUI (pinned tree or COMFYUI_PATH) and tiny models built from its classes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from p2p_attention.comfy_bootstrap import bootstrap  # noqa: E402

bootstrap()

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_sd1():
    """(MODEL ModelPatcher, CLIP, VAE) of a tiny SD1.x-shaped model with fixed random weights."""
    from p2p_attention.model_build import ModelSpec, build_all

    return build_all(ModelSpec.tiny("sd1"), seed=0)


@pytest.fixture(scope="session")
def tiny_sdxl():
    """(MODEL, CLIP, VAE) of a tiny SDXL-shaped model: two text encoders, pooled output."""
    from p2p_attention.model_build import ModelSpec, build_all

    return build_all(ModelSpec.tiny("sdxl"), seed=10)


@pytest.fixture(scope="session", params=["sd1", "sdxl"])
def tiny_model(request, tiny_sd1, tiny_sdxl):
    return request.param, (tiny_sd1 if request.param == "sd1" else tiny_sdxl)
