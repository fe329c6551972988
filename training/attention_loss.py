"""Phases 3-4's auxiliary loss: each object word's (size, colour, shape) head-averaged
cross-attention map at 16x16 and 8x8, normalised over the image, should put its mass on its own
object's pixels (the dataset's shape masks): -log(share on the object).

The maps come from the engine's attention functions (p2p_attention.attention). The engine's
AttentionStore is not used here: it keeps the cond rows only, summed over layers at one
resolution, while this loss needs every batch row's map of each layer, with gradients."""

from __future__ import annotations

import shapes_dataset as ds
import torch
import torch.nn.functional as F
from text_encoder import tokenize

from p2p_attention.attention import apply_maps, attention_maps
from p2p_attention.unet_blocks import spatial_downsample

LOSS_DOWNSAMPLE = (1, 2)  # the layers at 16x16 and 8x8 (of the 16x16 latent)


class AttnCapture:
    """attn2 replace patch for training: explicit softmax attention (differentiable), keeps the
    head-averaged maps [B, Nq, 77] of the layers LOSS_DOWNSAMPLE times smaller than the latent."""

    def __init__(self, keep=LOSS_DOWNSAMPLE):
        self.keep = keep
        self.maps = []

    def __call__(self, q, k, v, extra):
        attn = attention_maps(q, k, extra["n_heads"])
        if spatial_downsample(q.shape[1], *extra["original_shape"][-2:]) in self.keep:
            self.maps.append(attn.mean(1))
        return apply_maps(attn, v, extra["n_heads"])


def capture_options(block_keys, capture: AttnCapture) -> dict:
    """transformer_options that route the cross-attention of these transformer blocks
    (unet_blocks.transformer_block_keys) through `capture`."""
    return {"patches_replace": {"attn2": {key: capture for key in block_keys}}}


def object_targets(scenes, captions, clip) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: token positions of each object's size/colour/shape words [N, 6] (-1 pad), the
    object they name [N, 6], and the objects' coverage masks at 16x16 [N, 2, 256]."""
    n = len(scenes)
    pos = torch.full((n, 6), -1, dtype=torch.long)
    obj = torch.zeros((n, 6), dtype=torch.long)
    masks = torch.zeros((n, 2, 256))
    for i, (sc, cap) in enumerate(zip(scenes, captions)):
        words = cap.split()
        split = words.index("above") if sc.relation == "above" else words.index("and")
        j = 0
        for wi, w in enumerate(words):
            if w in ds.COLOURS or w in ds.SHAPES or w in ds.SIZES:
                pos[i, j], obj[i, j] = wi + 1, int(wi > split)  # BOS is token 0
                j += 1
        for k, o in enumerate(sc.objs):
            m = torch.from_numpy(ds.shape_mask(o.shape, o.cx, o.cy, o.radius, ss=4))
            masks[i, k] = F.avg_pool2d(m[None, None], 2).flatten()
    tok = tokenize(clip, captions[0])
    assert tok[len(captions[0].split()) + 1] == tok[-1] and tok[len(captions[0].split())] != tok[-1], "one token per word"
    return pos, obj, masks


def attention_loss(maps: list[torch.Tensor], pos, obj, masks16, valid) -> torch.Tensor:
    """Mean over layers and object words of -log(share of the word's normalised map on its object)."""
    if not valid.any():
        return torch.zeros(())
    b = pos.shape[0]
    losses = []
    for a in maps:  # [B, Nq, 77]
        nq = a.shape[1]
        side = int(round(nq**0.5))
        m = masks16 if side == 16 else F.adaptive_avg_pool2d(masks16.view(b * 2, 1, 16, 16), side).view(b, 2, nq)
        at = a.gather(2, pos.clamp(min=0)[:, None, :].expand(b, nq, pos.shape[1]))  # [B, Nq, 6]
        at = at / at.sum(1, keepdim=True)
        mk = m.gather(1, obj[:, :, None].expand(b, obj.shape[1], nq))  # [B, 6, Nq]
        share = (at * mk.transpose(1, 2)).sum(1)  # [B, 6]
        losses.append(-(share + 1e-4).log()[valid])
    return torch.cat(losses).mean()
