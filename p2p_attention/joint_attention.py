"""Prompt-to-Prompt on joint (MM-DiT) attention: text and image tokens in one softmax.

For an image query i of an item, the joint row P(i, .) over [text keys T | image keys I] splits as
P(i, T) = m(i) C(i, .) and P(i, I) = (1 - m(i)) S(i, .), where m is the row's text mass, C its
cross-attention map (a distribution over text tokens, P2P's cross map) and S its self-attention map
(a distribution over image tokens). An edit item e keeps its own balance m_e between text and image
and edits the two maps as on a UNet:

    C_new = a1 (C_src M) + a2 C_e          (edits.CrossCoefficients: swap, refine, reweight, windows)
    S_new = S_src while self injection is on, else S_e
    out_e(i) = m_e(i) C_new(i) V_T + (1 - m_e(i)) S_new(i) V_I

Text queries (text->text, text->image) are left to the edit: its text stream is its own prompt.

Attention is linear in V, so the fast path runs only SDPA calls (through the backend ComfyUI hands
the override, so other packs' overrides and backends still apply): the edit's joint call with values
[a2 V_T | V_I] (or [a2 V_T | 0] while injecting) and one extra value channel, 1 on text keys, that
returns m_e from the same call; a text-keys-only call for C_src M diag(a1) V_T; and, while injecting,
an image-keys-only call for S_src V_I. The reference path materialises the maps (tests, checking).

Tensors are [B, H, L, D] (Flux's layout; the adapters convert SD3's).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .maps import edited_maps, softmax_maps

# attend(q, k, v) -> [B, H, Lq, D]: one SDPA call on the model's attention backend
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
MASS_PAD = 8  # channels added to q/k/v for the text-mass channel (a multiple of 8 keeps fast kernels)


joint_maps = softmax_maps  # softmax(q k^T / sqrt(d)) in fp32: [B, H, Lq, Lk]


def split_maps(maps: torch.Tensor, n_txt: int):
    """Joint rows -> (text mass m [.., 1], cross map C over text, self map S over image, image mass 1 - m).
    Each mass is its own part's sum, not 1 minus the other's: a row whose text mass rounds to 1 in float32
    keeps an exact image mass, so S stays a distribution instead of tiny / (1 - m) = garbage."""
    txt, img = maps[..., :n_txt], maps[..., n_txt:]
    m, m_img = txt.sum(-1, keepdim=True), img.sum(-1, keepdim=True)
    return m, txt / m.clamp_min(1e-30), img / m_img.clamp_min(1e-30), m_img


def edited_cross_map(c_src: torch.Tensor, c_e: torch.Tensor, coeffs) -> torch.Tensor:
    """a1 (C_src M) + a2 C_e: c_src [1, H, Q, T], c_e [N, H, Q, T]; coeffs at T tokens, or None."""
    return c_e if coeffs is None else edited_maps(c_src, c_e, coeffs)


def edit_rows_reference(q_s, k_s, q_e, k_e, v_e, n_txt: int, coeffs, inject: bool, mask_s=None,
                        mask_e=None) -> torch.Tensor:
    """The semantics: image rows of N edit items, [N, H, Q, D], from materialised joint maps.
    q_s/k_s [1, H, ., D] (source, q at the image rows only), q_e [N, H, Q, D], k_e/v_e [N, H, L, D];
    mask_s/mask_e: additive key masks [1 / N, 1, 1, L] (text padding), or None."""
    _, c_src, s_src, _ = split_maps(joint_maps(q_s, k_s, mask_s), n_txt)
    m_e, c_e, s_e, m_img_e = split_maps(joint_maps(q_e, k_e, mask_e), n_txt)
    c_new = edited_cross_map(c_src, c_e, coeffs)
    s_new = s_src.expand_as(s_e) if inject else s_e
    v = v_e.float()
    out = m_e * (c_new @ v[:, :, :n_txt]) + m_img_e * (s_new @ v[:, :, n_txt:])
    return out.to(v_e.dtype)


def _with_mass_channel(q, k, v, indicator):
    """Pad q/k with zeros and v with [indicator, 0...]; q is scaled so that the backend's
    1/sqrt(d + pad) softmax scale gives exactly the model's 1/sqrt(d)."""
    d = q.shape[-1]
    pad = q.new_zeros(*q.shape[:-1], MASS_PAD)
    q2 = torch.cat([q * ((d + MASS_PAD) / d) ** 0.5, pad], -1)
    k2 = torch.cat([k, k.new_zeros(*k.shape[:-1], MASS_PAD)], -1)
    extra = v.new_zeros(*v.shape[:-1], MASS_PAD)
    extra[..., 0] = indicator
    return q2, k2, torch.cat([v, extra], -1)


def _masked(attend: Attend, q, k, v, mask):
    """attend with a key mask when there is one (an Attend with masks takes it as a 4th argument)."""
    return attend(q, k, v) if mask is None else attend(q, k, v, mask)


def edit_rows_fast(attend: Attend, q_s, k_s, q_e, k_e, v_e, n_txt: int, coeffs, inject: bool, mask_s=None,
                   mask_e=None) -> torch.Tensor:
    """edit_rows_reference on SDPA calls only (no map is materialised)."""
    n, d = q_e.shape[0], v_e.shape[-1]
    src_mask = None if mask_s is None else mask_s.expand(n, -1, -1, -1)
    v_txt, v_img = v_e[:, :, :n_txt], v_e[:, :, n_txt:]
    own_txt = v_txt if coeffs is None or not coeffs.uses_own else coeffs.a2[:, None, :, None] * v_txt
    if coeffs is not None and not coeffs.uses_own:
        own_txt = torch.zeros_like(v_txt)
    own_img = torch.zeros_like(v_img) if inject else v_img
    indicator = torch.zeros(v_e.shape[2], dtype=v_e.dtype, device=v_e.device)
    indicator[:n_txt] = 1
    q2, k2, v2 = _with_mass_channel(q_e, k_e, torch.cat([own_txt, own_img], 2), indicator)
    joint = _masked(attend, q2, k2, v2, mask_e)
    out, m = joint[..., :d], joint[..., d : d + 1]
    if coeffs is not None and coeffs.uses_source:
        # C_src M diag(a1) V_T == SDPA over the source's text keys with values M diag(a1) V_T
        mapped_v = torch.einsum("nij,nhjd->nhid", coeffs.M.to(v_e.dtype), coeffs.a1[:, None, :, None] * v_txt)
        src_txt = _masked(attend, q_s.expand(n, -1, -1, -1), k_s[:, :, :n_txt].expand(n, -1, -1, -1), mapped_v,
                          None if src_mask is None else src_mask[..., :n_txt])
        out = out + m * src_txt
    if inject:
        src_img = _masked(attend, q_s.expand(n, -1, -1, -1), k_s[:, :, n_txt:].expand(n, -1, -1, -1), v_img,
                          None if src_mask is None else src_mask[..., n_txt:])
        out = out + (1 - m) * src_img
    return out
