"""Test-only ComfyUI custom node pack: a loader for the tiny random models of the tests.

Never installed for users. tests/support/harness.py links this folder into a custom_nodes folder as
`p2p_tiny_test_models`, so workflow tests (in-process and over HTTP) can get a MODEL, CLIP and
VAE without checkpoint files. The models come from p2p_models.tiny_unet (SD1.x / SDXL) and
p2p_models.tiny_dit (Flux.1, SD3 / SD3.5), i.e. from ComfyUI's own classes with deterministic
random weights.
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

from p2p_models import tiny_dit as dit_build  # noqa: E402
from p2p_models.tiny_unet import ModelSpec, build_all  # noqa: E402

from .qwen_image import P2PTestTinyQwenImage  # noqa: E402

_CACHE: dict[tuple[str, int], tuple] = {}


def tiny_models(arch: str, seed: int) -> tuple:
    """(ModelPatcher, CLIP, VAE) for (arch, seed), built once per process."""
    key = (arch, int(seed))
    if key not in _CACHE:
        _CACHE[key] = build_all(ModelSpec.tiny(arch), seed=int(seed))
    return _CACHE[key]


# flux2_klein: ComfyUI 0.33.0 on; flux2_dev: both
DIT_FAMILIES = ("flux", "flux_schnell", "sd3", "sd35", "zimage", "flux2_klein", "chroma", "chroma_radiance",
                "flux2_dev")
_DIT_CACHE: dict[tuple[str, int], tuple] = {}


def _dit_part(kind: str, seed: int, build):
    key = (kind, int(seed))
    if key not in _DIT_CACHE:
        _DIT_CACHE[key] = build()
    return _DIT_CACHE[key]


def tiny_dit_models(family: str, seed: int) -> dit_build.TinyModels:
    """(ModelPatcher, CLIP, VAE) of a tiny DiT family, built once per process. The parts are the
    ones build_tiny_flux / build_tiny_sd3(seed) give (CLIP seed + 1, VAE seed + 2), cached apart:
    sd3 and sd35 share their text encoder (its 4096-wide T5 table is 0.5 GB) and all share the VAE."""
    if family not in DIT_FAMILIES:
        raise ValueError(f"unknown DiT family {family!r}: one of {DIT_FAMILIES}")
    seed = int(seed)
    flux = family.startswith("flux")
    if family.startswith("chroma"):  # Chroma: the 16-channel VAE; Radiance: ComfyUI's pixel-space VAE
        from p2p_models import tiny_chroma

        radiance = family == "chroma_radiance"
        model = _dit_part(family, seed, lambda: tiny_chroma.build_chroma_model(seed, radiance=radiance))
        clip = _dit_part("chroma_clip", seed + 1, lambda: tiny_chroma.build_chroma_clip(seed + 1))
        vae = (_dit_part("pixel_vae", 0, tiny_chroma.build_pixel_vae) if radiance
               else _dit_part("dit_vae", seed + 2, lambda: dit_build.build_dit_vae(seed + 2)))
        return dit_build.TinyModels(model, clip, vae)
    if family == "flux2_klein":  # p2p_models.tiny_flux2: its own latent (128 channels, 16x) and VAE
        from p2p_models import tiny_flux2

        model = _dit_part(family, seed, lambda: tiny_flux2.build_flux2_model(seed))
        clip = _dit_part("klein_clip", seed + 1, lambda: tiny_flux2.build_klein_clip(seed + 1))
        return dit_build.TinyModels(model, clip, _dit_part("flux2_vae", seed + 2,
                                                           lambda: tiny_flux2.build_flux2_vae(seed + 2)))
    if family == "flux2_dev":  # p2p_models.tiny_flux2: guidance embedding, Mistral 3 Small on a tiny tekken vocabulary
        from p2p_models import tiny_flux2

        model = _dit_part(family, seed, lambda: tiny_flux2.build_flux2_model(seed, guidance_embed=True,
                                                                             context_in_dim=tiny_flux2.DEV_CONTEXT))
        clip = _dit_part("dev_clip", seed + 1, lambda: tiny_flux2.build_dev_clip(seed + 1))
        return dit_build.TinyModels(model, clip, _dit_part("flux2_vae", seed + 2,
                                                           lambda: tiny_flux2.build_flux2_vae(seed + 2)))
    if family == "zimage":  # p2p_models.tiny_zimage: Z-Image's NextDiT and Qwen3 text encoder
        from p2p_models import tiny_zimage

        model = _dit_part(family, seed, lambda: tiny_zimage.build_zimage_model(seed))
        clip = _dit_part("zimage_clip", seed + 1, lambda: tiny_zimage.build_zimage_clip(seed + 1))
    elif flux:
        model = _dit_part(family, seed, lambda: dit_build.build_flux_model(seed, schnell=family == "flux_schnell"))
        clip = _dit_part("flux_clip", seed + 1, lambda: dit_build.build_flux_clip(seed + 1))
    else:
        model = _dit_part(family, seed, lambda: dit_build.build_sd3_model(seed, x_block_self_attn=family == "sd35"))
        clip = _dit_part("sd3_clip", seed + 1, lambda: dit_build.build_sd3_clip(seed + 1))
    vae = _dit_part("dit_vae", seed + 2, lambda: dit_build.build_dit_vae(seed + 2))
    return dit_build.TinyModels(model, clip, vae)


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


class P2PTestTinyDiTModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="P2PTestTinyDiTModel",
            display_name="P2P Test Tiny DiT Model (tests only)",
            category="testing/p2p",
            description="Tiny Flux.1 dev / schnell, SD3, SD3.5 Medium-like or Chroma MM-DiT with fixed random "
                        "weights, 16-channel VAE (8x, EmptySD3LatentImage), Chroma Radiance with the pixel-space "
                        "VAE (EmptyChromaRadianceLatentImage), or Flux.2 klein / dev with the Flux.2 VAE "
                        "(EmptyFlux2LatentImage) (tests only).",
            inputs=[
                io.Combo.Input("family", options=list(DIT_FAMILIES), default="flux"),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL"),
                io.Clip.Output(display_name="CLIP"),
                io.Vae.Output(display_name="VAE"),
            ],
        )

    @classmethod
    def execute(cls, family: str, seed: int) -> io.NodeOutput:
        return io.NodeOutput(*tiny_dit_models(family, seed))


class TinyTestModels(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [P2PTestTinyModel, P2PTestTinyDiTModel, P2PTestTinyQwenImage]


async def comfy_entrypoint() -> TinyTestModels:
    return TinyTestModels()
