"""Test setup: a real ComfyUI (pinned tree or COMFYUI_PATH) and tiny models built from its classes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
# The repo root goes AFTER ComfyUI on sys.path: ComfyUI's `nodes.py` must win over the pack's
# `nodes/` package; the engine (`p2p_attention`) has a unique name.
sys.path.append(str(REPO))
sys.path.append(str(REPO / "tests" / "support"))  # the helpers: harness, sampling, bounds, comfy_*

from p2p_models.comfy_bootstrap import bootstrap  # noqa: E402

# P2P_TEST_DEVICE=cuda runs the suite's models on the GPU (ComfyUI's own device choice: no --cpu);
# benchmarks/gpu_check.sh uses it for the dtype tests. Default: cpu.
TEST_DEVICE = os.environ.get("P2P_TEST_DEVICE", "cpu")
bootstrap(cpu=TEST_DEVICE == "cpu")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def _tiny(arch: str, seed: int, dtype=torch.float32):
    """v-prediction keeps a random-weight model's latents at a trained model's scale (|x| ~ 1-20);
    with eps-prediction an untrained UNet's sampling ends near |x| ~ 60-90, which scales every float
    error bound (tests/support/bounds.py) up with it. dtype: the UNet's weight and compute dtype, set as
    ComfyUI sets it at load (model_build.build_unet)."""
    from p2p_models.tiny_unet import ModelSpec, build_all

    spec = ModelSpec.tiny(arch)
    spec.v_prediction = True
    return build_all(spec, seed=seed, dtype=dtype)


SEEDS = {"sd1": 0, "sdxl": 10}
_BUILT: dict = {}


@pytest.fixture(scope="session")
def tiny_in_dtype():
    """build(arch, dtype): the conftest tiny model (same seed: the float32 weights rounded to dtype)
    with its UNet in `dtype`, built once per session."""

    def build(arch: str, dtype):
        key = (arch, dtype)
        if key not in _BUILT:
            _BUILT[key] = _tiny(arch, SEEDS[arch], dtype)
        return _BUILT[key]

    return build


@pytest.fixture(scope="session")
def tiny_sd1():
    """(MODEL ModelPatcher, CLIP, VAE) of a tiny SD1.x-shaped model with fixed random weights."""
    return _tiny("sd1", seed=SEEDS["sd1"])


@pytest.fixture(scope="session")
def tiny_sdxl():
    """(MODEL, CLIP, VAE) of a tiny SDXL-shaped model: two text encoders, pooled output."""
    return _tiny("sdxl", seed=SEEDS["sdxl"])


@pytest.fixture(scope="session", params=["sd1", "sdxl"])
def tiny_model(request, tiny_sd1, tiny_sdxl):
    return request.param, (tiny_sd1 if request.param == "sd1" else tiny_sdxl)


@pytest.fixture(scope="session")
def pack():
    """The pack imported as ComfyUI imports a custom node (a package from its folder)."""
    from harness import load_pack_module

    return load_pack_module()


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    """One real ComfyUI server (main.py over HTTP) with the pack, shared by every server test."""
    from harness import ComfyServer

    with ComfyServer(tmp_path_factory.mktemp("comfy_server")) as srv:
        yield srv


def pytest_sessionfinish(session, exitstatus):
    """Free the models held by functools caches (the test modules' tiny models) while ComfyUI's modules
    still exist: at interpreter exit a ModelPatcher's __del__ finds them torn down and prints an
    ignored AttributeError per model."""
    import functools
    import gc

    for obj in gc.get_objects():
        if isinstance(obj, functools._lru_cache_wrapper):
            obj.cache_clear()
    gc.collect()
