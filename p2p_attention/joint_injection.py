"""Source projections handed to the edit items of a joint (MM-DiT) attention call, before the call.

Two structure controls (what self_replace injects on MM-DiT, during its window, in self_blocks), each
a plain substitution of rows of q, k or v, so they cost no extra attention call and work with any
backend (SageAttention's fixed head sizes included):

- values outside the edit (in the spirit of KV-Edit, the default): outside the edited region the
  edit's image-token values (optionally keys) become the source's, so what is drawn there is the
  source's content; inside it the edit draws its own. The region is read from the attention store
  (blend.region_masks): a Local Blend's words, else the words the edit changes.
- image q/k (Shin et al., ICCV 2025): the edit's image-token queries and keys become the source's,
  so its image->image attention is the source's and its image queries read the text as the source's
  do; text queries and keys and every value stay the edit's.

Tensors are [B, H, L, D]; image tokens follow the n_txt text tokens (0 for image-only attention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

VALUES, QK, MAPS = "values_outside_edit", "image_qk", "self_maps"
STRUCTURES = (VALUES, QK, MAPS)  # MAPS: the source's image->image maps (joint_attention), as on a UNet


@dataclass(frozen=True)
class RegionSpec:
    """The edited region of `values_outside_edit`: map share above `threshold` of its maximum, after a
    max-pool of `dilation` tokens (both measured: docs/mmdit_controls.md); keys too when `keys`."""

    threshold: float = 0.5
    dilation: int = 1
    keys: bool = False


def structure_rows(src: torch.Tensor, edit: torch.Tensor, n_txt: int) -> torch.Tensor:
    """The edit rows [N, h, L, D] with their image tokens := the source's [1, h, L, D] (image q/k)."""
    return torch.cat([edit[:, :, :n_txt], src[:, :, n_txt:].expand(edit.shape[0], -1, -1, -1)], 2)


def outside_rows(src: torch.Tensor, edit: torch.Tensor, n_txt: int, outside: torch.Tensor) -> torch.Tensor:
    """The edit rows [N, h, L, D] with their image tokens outside their region (`outside` [N, n_img] bool,
    one row per edit item) := the source's [1, h, L, D]."""
    sel = outside[:, None, :, None].to(edit.device)
    return torch.cat([edit[:, :, :n_txt], torch.where(sel, src[:, :, n_txt:], edit[:, :, n_txt:])], 2)
