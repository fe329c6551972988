"""The SD1 CLIP text encoder during training: its text model, a differentiable forward and the
token ids of a caption."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def text_model_of(clip):
    return clip.cond_stage_model.clip_l.transformer.text_model


def text_forward(tm, ids: torch.Tensor) -> torch.Tensor:
    """Out-of-place copy of ComfyUI's CLIPTextModel_ forward (causal, layer 'last', final LN)."""
    x = tm.embeddings.token_embedding.weight[ids] + tm.embeddings.position_embedding.weight[: ids.shape[1]]
    for layer in tm.encoder.layers:
        h = layer.layer_norm1(x)
        att = layer.self_attn
        b, n, d = h.shape
        q, k, v = (t.view(b, n, att.heads, d // att.heads).transpose(1, 2) for t in (att.q_proj(h), att.k_proj(h), att.v_proj(h)))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + att.out_proj(o.transpose(1, 2).reshape(b, n, d))
        x = x + layer.mlp(layer.layer_norm2(x))
    return tm.final_layer_norm(x)


def tokenize(clip, caption: str) -> list[int]:
    return [t for t, _w in clip.tokenize(caption)["l"][0]]
