"""Where a UNet's attention sits: its transformer blocks (as ComfyUI's replace-patch keys) and the
resolution of each, as a downsample factor of the latent."""

from __future__ import annotations

import math
import re

import torch

_BLOCK_RE = re.compile(r"^(input_blocks|output_blocks)\.(\d+)\.\d+\.transformer_blocks\.(\d+)$")
_MIDDLE_RE = re.compile(r"^middle_block\.\d+\.transformer_blocks\.(\d+)$")


def transformer_block_keys(diffusion_model: torch.nn.Module) -> list[tuple[str, int, int]]:
    """(block_name, number, transformer_index) of every UNet transformer block with cross-attention."""
    keys = []
    for name, module in diffusion_model.named_modules():
        if type(module).__name__ != "BasicTransformerBlock" or getattr(module, "attn2", None) is None:
            continue
        m = _BLOCK_RE.match(name)
        if m:
            keys.append(("input" if m.group(1) == "input_blocks" else "output", int(m.group(2)), int(m.group(3))))
            continue
        m = _MIDDLE_RE.match(name)
        if m:
            keys.append(("middle", 0, int(m.group(1))))
    return keys


def spatial_downsample(n_tokens: int, height: int, width: int) -> int:
    """How many times smaller than the latent this attention layer's feature map is."""
    f = 1
    while f <= max(height, width):
        if math.ceil(height / f) * math.ceil(width / f) == n_tokens:
            return f
        f *= 2
    return max(1, round(math.sqrt(height * width / max(n_tokens, 1))))


def block_downsample(diffusion_model: torch.nn.Module) -> dict[tuple, int]:
    """Downsample factor (vs the latent) of every UNet transformer block key (block, number, index)."""
    factors: dict[tuple[str, int], int] = {}
    f = 1
    for i, block in enumerate(diffusion_model.input_blocks):
        if any(type(m).__name__ == "Downsample" for m in block.modules()):
            f *= 2
        factors[("input", i)] = f
    factors[("middle", 0)] = f
    for i, block in enumerate(diffusion_model.output_blocks):
        factors[("output", i)] = f
        if any(type(m).__name__ == "Upsample" for m in block.modules()):
            f //= 2
    return {key: factors[key[:2]] for key in transformer_block_keys(diffusion_model)}


def choose_factor(available: set[int], wanted: int) -> int:
    """The wanted factor if the UNet has attention there, else the nearest one (coarser on ties)."""
    return min(available, key=lambda f: (abs(math.log2(f) - math.log2(wanted)), -f))
