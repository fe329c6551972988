"""Source projections handed to the edit items of a joint (MM-DiT) attention call, before the call.

Two controls, each a plain substitution of rows of q, k or v, so they cost no extra attention call
and work with any backend (SageAttention's fixed head sizes included):

- structure (Shin et al., ICCV 2025): the edit's image-token queries and keys become the source's,
  so its image->image attention is the source's and its image queries read the text as the source's
  do; text queries and keys and every value stay the edit's.
- preserve (in the spirit of KV-Edit): outside the edited region, the edit's image-token values (and
  optionally keys) become the source's, so what is drawn there is the source's content; inside the
  region the edit draws its own. The region is read from the attention store (blend.region_masks).

Tensors are [B, H, L, D]; image tokens follow the n_txt text tokens (0 for image-only attention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .steps import SELF, window_active


@dataclass(frozen=True)
class PreserveSpec:
    """Source image values (and keys) outside the edited region, during `window`, in `blocks`."""

    window: tuple[float, float] = (0.0, 0.4)
    blocks: frozenset | None = None  # None: every attention block
    threshold: float = 0.3
    dilation: int = 1  # in image tokens
    keys: bool = False

    def active(self, block, step: int, n_steps: int) -> bool:
        return (self.blocks is None or block in self.blocks) and window_active(self.window, step, n_steps, SELF)


def inject_structure(q: torch.Tensor, k: torch.Tensor, groups, n_txt: int) -> None:
    """In place: every edit row's image-token q and k := its source's (q, k already private copies)."""
    for src, es in groups:
        q[es, :, n_txt:] = q[src : src + 1, :, n_txt:]
        k[es, :, n_txt:] = k[src : src + 1, :, n_txt:]


def inject_outside(t: torch.Tensor, groups, n_txt: int, outside: torch.Tensor) -> None:
    """In place: image tokens of edit items outside their region (`outside` [N, n_img] bool, one row per
    edit item, in batch order) := the source's."""
    sel = outside[:, None, :, None].to(t.device)
    for src, es in groups:
        t[es, :, n_txt:] = torch.where(sel, t[src : src + 1, :, n_txt:], t[es, :, n_txt:])
