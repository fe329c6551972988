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

from .loaders import cached, loader_schema  # noqa: E402
from .qwen_image import P2PTestTinyQwenImage  # noqa: E402
from .redux import P2PTestTinyRedux  # noqa: E402


def tiny_models(arch: str, seed: int) -> tuple:
    """(ModelPatcher, CLIP, VAE) for (arch, seed), built once per process."""
    return cached(("unet", arch, int(seed)), lambda: build_all(ModelSpec.tiny(arch), seed=int(seed)))


# flux2_klein: ComfyUI 0.33.0 on; flux2_dev: both
DIT_FAMILIES = ("flux", "flux_schnell", "sd3", "sd35", "zimage", "flux2_klein", "chroma", "chroma_radiance",
                "lumina2", "flux2_dev")


def _dit_part(kind: str, seed: int, build):
    return cached(("dit", kind, int(seed)), build)


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

        model = _dit_part(family, seed, lambda: tiny_flux2.build_flux2_dev_model(seed))
        clip = _dit_part("dev_clip", seed + 1, lambda: tiny_flux2.build_dev_clip(seed + 1))
        return dit_build.TinyModels(model, clip, _dit_part("flux2_vae", seed + 2,
                                                           lambda: tiny_flux2.build_flux2_vae(seed + 2)))
    if family == "lumina2":  # p2p_models.tiny_lumina2: Lumina 2's NextDiT and Gemma 2 text encoder
        from p2p_models import tiny_lumina2

        model = _dit_part(family, seed, lambda: tiny_lumina2.build_lumina2_model(seed))
        clip = _dit_part("lumina2_clip", seed + 1, lambda: tiny_lumina2.build_lumina2_clip(seed + 1))
    elif family == "zimage":  # p2p_models.tiny_zimage: Z-Image's NextDiT and Qwen3 text encoder
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
        return loader_schema("P2PTestTinyModel", "P2P Test Tiny Model (tests only)",
                             "Tiny SD1.x / SDXL-shaped model with fixed random weights (tests only).",
                             [io.Combo.Input("arch", options=["sd1", "sdxl"], default="sd1")])

    @classmethod
    def execute(cls, arch: str, seed: int) -> io.NodeOutput:
        return io.NodeOutput(*tiny_models(arch, seed))


class P2PTestTinyDiTModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return loader_schema(
            "P2PTestTinyDiTModel", "P2P Test Tiny DiT Model (tests only)",
            "Tiny Flux.1 dev / schnell, SD3, SD3.5 Medium-like, Z-Image, Lumina 2 or Chroma MM-DiT with fixed random "
            "weights, 16-channel VAE (8x, EmptySD3LatentImage), Chroma Radiance with the pixel-space VAE "
            "(EmptyChromaRadianceLatentImage), or Flux.2 klein / dev with the Flux.2 VAE (EmptyFlux2LatentImage) "
            "(tests only).",
            [io.Combo.Input("family", options=list(DIT_FAMILIES), default="flux")])

    @classmethod
    def execute(cls, family: str, seed: int) -> io.NodeOutput:
        return io.NodeOutput(*tiny_dit_models(family, seed))


class TinyTestModels(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [P2PTestTinyModel, P2PTestTinyDiTModel, P2PTestTinyQwenImage, P2PTestTinyRedux]


async def comfy_entrypoint() -> TinyTestModels:
    return TinyTestModels()
