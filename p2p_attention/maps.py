"""The edit maths on materialised maps, written once: the softmax map and the edited map.

    A_new = a1 * (A_src @ M) + a2 * A_e        (edits.CrossCoefficients: swap, refine, reweight, windows)

The UNet reference path (attention.py), the MM-DiT reference path (joint_attention.py, on the cross map
C) and the attention store (store.py, on head-averaged maps) all call `edited_maps`; the fast paths run
the same formula on SDPA calls (attention is linear in V).
"""

from __future__ import annotations

import torch


def softmax_maps(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) in fp32: q [B, H, Lq, D], k [B, H, Lk, D] -> [B, H, Lq, Lk]; mask:
    additive, broadcast to the logits (masked keys: -inf), or None."""
    logits = q.float() @ k.float().transpose(-1, -2) * q.shape[-1] ** -0.5
    return torch.softmax(logits if mask is None else logits + mask.float(), dim=-1)


def edited_maps(src: torch.Tensor, own: torch.Tensor, coeffs) -> torch.Tensor:
    """a1 * (src @ M) + a2 * own for N edit items: src [1, (H,) Q, T] (the source's maps), own [N, (H,) Q, T]
    (the edits' own); coeffs (edits.CrossCoefficients) per token: M [N, T, T], a1/a2 [N, T]."""
    M = coeffs.M.float()
    if src.dim() == 4:  # per head
        mapped = torch.einsum("hqi,nij->nhqj", src[0], M)
    else:  # head-averaged
        mapped = src @ M
    shape = (own.shape[0],) + (1,) * (own.dim() - 2) + (own.shape[-1],)
    return coeffs.a1.float().view(shape) * mapped + coeffs.a2.float().view(shape) * own
