"""Model adapter for MM-DiT models: a family's attention blocks, its image token grid, and the blocks a
self_blocks range selects. (Which family a MODEL is: families.family_of; whether it is a UNet or a DiT
is decided in one place: adapters.model_family.)
"""

from __future__ import annotations

import math

from .errors import P2PError
from .families import DiTFamily


def attention_blocks(model_patcher, family: DiTFamily) -> list[tuple[str, int]]:
    """Every attention block as (block_type, index), in order."""
    return family.blocks(model_patcher.get_model_object("diffusion_model"))


def patch_size(model_patcher) -> int:
    dm = model_patcher.get_model_object("diffusion_model")
    size = getattr(dm, "patch_size", None)
    if size is None:
        size = getattr(getattr(dm, "x_embedder", None), "patch_size", 2)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def token_grid(latent_shape, patch: int) -> tuple[int, int]:
    """The image tokens' (rows, columns) for a latent [B, C, H, W] (ComfyUI pads to the patch)."""
    return math.ceil(latent_shape[-2] / patch), math.ceil(latent_shape[-1] / patch)


def select_blocks(spec, blocks: list[tuple[str, int]], family: DiTFamily, every: bool = False) -> set[tuple[str, int]]:
    """The blocks a parsed self_blocks widget selects (widget_text.parse_block_ranges: 'auto', 'all',
    'none' or [(kind, first, last), ...]; 'auto': the family's default_self_blocks)."""
    if spec == "auto":
        return family.default_self_blocks(blocks, every)
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
