"""Attention for edit items: a fast path on ComfyUI's memory-efficient attention and a
reference path that materialises maps exactly as the paper describes (kept for tests).

Shapes follow ComfyUI's replace patches: q [B, Nq, H*D], k/v [B, Nk, H*D], heads split inside.
Every backend call passes `transformer_options` as ComfyUI's own CrossAttention does, so an
`optimized_attention_override` (another pack's, or ModelPatcher.set_model_optimized_attention)
applies to the edited rows too.
"""

from __future__ import annotations

import torch

from .maps import edited_maps, softmax_maps


def _backend():
    # Looked up at call time: ComfyUI picks its backend (SDPA, xformers, sage...) at import.
    from comfy.ldm.modules.attention import optimized_attention

    return optimized_attention


def plain(q, k, v, heads, attn_precision=None, transformer_options=None):
    return _backend()(q, k, v, heads, attn_precision=attn_precision, transformer_options=transformer_options)


def attention_maps(q, k, heads, attn_precision=None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) per head, fp32: [B, H, Nq, Nk]. Only where a map is needed."""
    b, nq, c = q.shape
    d = c // heads
    return softmax_maps(q.reshape(b, nq, heads, d).transpose(1, 2), k.reshape(b, k.shape[1], heads, d).transpose(1, 2))


def apply_maps(maps: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """maps [B, H, Nq, Nk] @ v [B, Nk, H*D] -> [B, Nq, H*D] in v's dtype."""
    b, nk, c = v.shape
    vh = v.reshape(b, nk, heads, c // heads).transpose(1, 2).float()
    out = maps @ vh
    return out.transpose(1, 2).reshape(b, -1, c).to(v.dtype)


def cross_edit(q_s, k_s, q_e, k_e, v_e, heads, coeffs, reference=False, attn_precision=None,
               transformer_options=None):
    """Edited cross-attention output of N edit items.

    q_s/k_s [1, ., C] (source), q_e/k_e/v_e [N, ., C]; coeffs: edits.CrossCoefficients with
    M [N, Lk, Lk], a1/a2 [N, Lk].  out = (a1*(A_s M) + a2*A_e) V_e.
    """
    n = q_e.shape[0]
    M, a1, a2 = coeffs.M, coeffs.a1, coeffs.a2
    if reference:
        A_s = attention_maps(q_s, k_s, heads, attn_precision)  # [1, H, Nq, Lk]
        A_e = attention_maps(q_e, k_e, heads, attn_precision)  # [N, H, Nq, Lk]
        return apply_maps(edited_maps(A_s, A_e, coeffs), v_e, heads)
    out = None
    if coeffs.uses_source:
        # A_s M diag(a1) V_e == SDPA(q_s, k_s, M diag(a1) V_e)
        v_src_space = torch.bmm(M, a1[..., None] * v_e)
        out = plain(q_s.expand(n, -1, -1), k_s.expand(n, -1, -1), v_src_space, heads, attn_precision,
                    transformer_options)
    if coeffs.uses_own:
        own = plain(q_e, k_e, a2[..., None] * v_e, heads, attn_precision, transformer_options)
        out = own if out is None else out + own
    if out is None:
        out = torch.zeros_like(q_e[..., : v_e.shape[-1]])
    return out


def self_inject(q_s, k_s, v_e, heads, reference=False, attn_precision=None, transformer_options=None):
    """Self-attention injection: the edit's values under the source's map, softmax(q_s k_s^T) V_e."""
    n = v_e.shape[0]
    if reference:
        return apply_maps(attention_maps(q_s, k_s, heads, attn_precision).expand(n, -1, -1, -1), v_e, heads)
    return plain(q_s.expand(n, -1, -1), k_s.expand(n, -1, -1), v_e, heads, attn_precision, transformer_options)
