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


def inject_structure(q: torch.Tensor, k: torch.Tensor, groups, n_txt: int) -> None:
    """In place: every edit row's image-token q and k := its source's (q, k already private copies)."""
    for src, es in groups:  # the source rows are copied first: a write may not read its own tensor
        q[es, :, n_txt:] = q[src : src + 1, :, n_txt:].clone()
        k[es, :, n_txt:] = k[src : src + 1, :, n_txt:].clone()


def inject_outside(t: torch.Tensor, groups, n_txt: int, outside: torch.Tensor) -> None:
    """In place: image tokens of edit items outside their region (`outside` [N, n_img] bool, one row per
    edit item, in batch order) := the source's."""
    sel = outside[:, None, :, None].to(t.device)
    for src, es in groups:
        t[es, :, n_txt:] = torch.where(sel, t[src : src + 1, :, n_txt:], t[es, :, n_txt:])
