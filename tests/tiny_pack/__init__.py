"""Test-only ComfyUI custom node pack: a loader for the tiny random models of the tests.

Never installed for users. tests/harness.py links this folder into a custom_nodes folder as
`p2p_tiny_test_models`, so workflow tests (in-process and over HTTP) can get a MODEL, CLIP and
VAE without checkpoint files. The models come from p2p_attention.model_build, i.e. from
ComfyUI's own classes with deterministic random weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ComfyUI loads this package through a symlink: resolve it to find the repository root.
_REPO_ROOT = Path(__file__).resolve().parent.parent.parent
if str(_REPO_ROOT) not in sys.path:
    # Appended, not prepended: the repo's `nodes/` package must never shadow ComfyUI's nodes.py.
    sys.path.append(str(_REPO_ROOT))

from p2p_attention.model_build import ModelSpec, build_all  # noqa: E402

_CACHE: dict[tuple[str, int], tuple] = {}


def tiny_models(arch: str, seed: int) -> tuple:
    """(ModelPatcher, CLIP, VAE) for (arch, seed), built once per process."""
    key = (arch, int(seed))
    if key not in _CACHE:
        _CACHE[key] = build_all(ModelSpec.tiny(arch), seed=int(seed))
    return _CACHE[key]


class P2PTestTinyModel:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "arch": (["sd1", "sdxl"], {"default": "sd1"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1}),
            }
        }

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    RETURN_NAMES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = "testing/p2p"
    DESCRIPTION = "Tiny SD1.x / SDXL-shaped model with fixed random weights (tests only)."

    def load(self, arch: str, seed: int):
        return tiny_models(arch, seed)


NODE_CLASS_MAPPINGS = {"P2PTestTinyModel": P2PTestTinyModel}
NODE_DISPLAY_NAME_MAPPINGS = {"P2PTestTinyModel": "P2P Test Tiny Model (tests only)"}
