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

from comfy_api.v0_0_2 import ComfyExtension, io  # noqa: E402

from p2p_attention.model_build import ModelSpec, build_all  # noqa: E402

_CACHE: dict[tuple[str, int], tuple] = {}


def tiny_models(arch: str, seed: int) -> tuple:
    """(ModelPatcher, CLIP, VAE) for (arch, seed), built once per process."""
    key = (arch, int(seed))
    if key not in _CACHE:
        _CACHE[key] = build_all(ModelSpec.tiny(arch), seed=int(seed))
    return _CACHE[key]


class P2PTestTinyModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="P2PTestTinyModel",
            display_name="P2P Test Tiny Model (tests only)",
            category="testing/p2p",
            description="Tiny SD1.x / SDXL-shaped model with fixed random weights (tests only).",
            inputs=[
                io.Combo.Input("arch", options=["sd1", "sdxl"], default="sd1"),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL"),
                io.Clip.Output(display_name="CLIP"),
                io.Vae.Output(display_name="VAE"),
            ],
        )

    @classmethod
    def execute(cls, arch: str, seed: int) -> io.NodeOutput:
        return io.NodeOutput(*tiny_models(arch, seed))


class TinyTestModels(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [P2PTestTinyModel]


async def comfy_entrypoint() -> TinyTestModels:
    return TinyTestModels()
