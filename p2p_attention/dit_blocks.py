"""Model adapter for MM-DiT models: which family a DiT MODEL is, its attention blocks, its image token
grid, and the blocks that get self injection by default. (Whether a MODEL is a UNet or a DiT is
decided in one place: adapters.model_family.)

Families are read from ComfyUI's own model config class (what its model detection chose), so a
fine-tune of Flux.1 or SD3.5 is recognised and an unknown DiT is refused by name.
"""

from __future__ import annotations

import math

from .errors import P2PError

FLUX, SD3 = "flux", "sd3"
_FAMILIES = {"Flux": FLUX, "FluxSchnell": FLUX, "SD3": SD3}
# Flux.1 self injection: the later single-stream blocks (20-37 of 38), where RF-Solver-Edit and FireFlow
# inject the source's values; SD3 has no published block choice: every joint block (Shin et al. edit all).
_FLUX_SINGLE_FROM = 20 / 38


def dit_family(model_patcher) -> str:
    """'flux' / 'sd3' for the MM-DiT families Prompt-to-Prompt supports (a MODEL that is not a UNet);
    any other model is refused by name."""
    dm = model_patcher.get_model_object("diffusion_model")
    config = type(model_patcher.model.model_config).__name__
    family = _FAMILIES.get(config)
    if family is None or not _has_blocks(dm, family):
        raise P2PError(
            f"this MODEL ({config}) is not supported: Prompt-to-Prompt runs on SD1.x, SD2.x, SDXL, Flux.1 "
            "(dev, schnell and their fine-tunes) and SD3/SD3.5. Flux.2, Qwen-Image, HiDream, Lumina/Z-Image "
            "and video DiTs are not supported yet."
        )
    return family


def _has_blocks(dm, family: str) -> bool:
    return hasattr(dm, "double_blocks") if family == FLUX else hasattr(dm, "joint_blocks")


def attention_blocks(model_patcher, family: str) -> list[tuple[str, int]]:
    """Every attention block as (block_type, index), in order."""
    dm = model_patcher.get_model_object("diffusion_model")
    if family == FLUX:
        return [("double", i) for i in range(len(dm.double_blocks))] + [
            ("single", i) for i in range(len(dm.single_blocks))]
    return [("joint", i) for i in range(len(dm.joint_blocks))]


def patch_size(model_patcher) -> int:
    dm = model_patcher.get_model_object("diffusion_model")
    size = getattr(dm, "patch_size", None)
    if size is None:
        size = getattr(getattr(dm, "x_embedder", None), "patch_size", 2)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def token_grid(latent_shape, patch: int) -> tuple[int, int]:
    """The image tokens' (rows, columns) for a latent [B, C, H, W] (ComfyUI pads to the patch)."""
    return math.ceil(latent_shape[-2] / patch), math.ceil(latent_shape[-1] / patch)


def default_self_blocks(blocks: list[tuple[str, int]], family: str, every: bool = False) -> set[tuple[str, int]]:
    """every: the injections that substitute q/k/v rows (values outside the edit, image q/k) act in every
    block (measured: docs/mmdit_controls.md; Shin et al. inject q/k in every block); self-map injection
    in Flux's later single blocks (RF-Solver-Edit, FireFlow) and every SD3 block."""
    if family == FLUX and not every:
        singles = [b for b in blocks if b[0] == "single"]
        start = round(_FLUX_SINGLE_FROM * len(singles))
        return {b for b in singles if b[1] >= start}
    return set(blocks)


def select_blocks(spec, blocks: list[tuple[str, int]], family: str, every: bool = False) -> set[tuple[str, int]]:
    """The blocks a parsed self_blocks widget selects (widget_text.parse_block_ranges: 'auto', 'all',
    'none' or [(kind, first, last), ...]; 'auto': default_self_blocks)."""
    if spec == "auto":
        return default_self_blocks(blocks, family, every)
    if spec == "all":
        return set(blocks)
    if spec == "none":
        return set()
    out = set()
    for kind, lo, hi in spec:
        chosen = {b for b in blocks if b[0] == kind and lo <= b[1] <= hi}
        if not chosen:
            have = sorted({b[0] for b in blocks})
            raise P2PError(f"self_blocks: this model has no {kind} blocks {lo}-{hi} (it has "
                           + ", ".join(f"{k} 0-{max(i for t, i in blocks if t == k)}" for k in have) + ").")
        out |= chosen
    return out
