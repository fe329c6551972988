"""Attention time on UNet models (the UNet adapter's runtime; dit_runtime.py is the MM-DiT one): the
replace patch every transformer block gets, the state its calls share, and the recorder that feeds the
attention store from the layers of one resolution.

For each attention call the runtime finds the source and edit rows (batch.py), the step
(steps.py) and the edit's coefficients (edits.py), feeds the store, and runs the edited rows on
attention.py; the source, the uncond chunk and the rows outside every window are left alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import attention
from .batch import batch_layout
from .edit_runtime import EditRuntime
from .store import AttentionStore
from .unet_blocks import spatial_downsample

DEFAULT_SELF_MIN_DOWNSAMPLE = 4  # official SD notebook: self maps <= 16x16 at 512 px (SD1), 32x32 at 1024 px (SDXL)


class MapRecorder:
    """Feeds an AttentionStore from the cross-attention calls of the UNet blocks `keys` (block, number,
    index), the blocks at `map_downsample` (the latent's size / the map's): head-averaged maps of the
    first cond chunk's source and edits, as the edit used them."""

    def __init__(self, store: AttentionStore, keys: set[tuple], map_downsample: int):
        self.store, self.keys, self.map_downsample = store, keys, map_downsample

    def __call__(self, q, k, extra, layout, coeffs=None):
        """Record this layer's maps; `coeffs` (edits.CrossCoefficients or None) is this step's edit."""
        block = extra.get("block")
        if block is None or (block[0], block[1], extra.get("block_index", 0)) not in self.keys:
            return
        if not layout.groups:  # an uncond-only call
            return
        src, edits = layout.groups[0]
        idx = [src, *edits]
        H, W = extra["original_shape"][-2:]
        h, w = math.ceil(H / self.map_downsample), math.ceil(W / self.map_downsample)
        if h * w != q.shape[1]:
            return
        maps = attention.attention_maps(q[idx], k[idx], extra["n_heads"], extra.get("attn_precision")).mean(1)
        self.store.add(maps, h, w, coeffs)


@dataclass
class P2PRuntime(EditRuntime):
    """State shared by every attention patch of one P2P Apply on a UNet: the plan and its tensors."""

    self_attn_min_downsample: int = DEFAULT_SELF_MIN_DOWNSAMPLE
    recorder: MapRecorder | None = None  # feeds the store at cross-attention with the maps the edit used

    def attend(self, kind: str, q, k, v, extra: dict, prior):
        self.ran.add((kind, *extra.get("block", ()), extra.get("block_index", 0)))
        heads = extra["n_heads"]
        precision = extra.get("attn_precision")
        layout = batch_layout(q.shape[0], extra["cond_or_uncond"], self.compiled.n_edits)
        step, n_steps = self.clock(extra)
        if kind == "attn2":
            coeffs = self.compiled.cross_coefficients(step, n_steps, k.shape[1], q.device, q.dtype)
            if self.recorder is not None:
                self.recorder(q, k, extra, layout, coeffs)
            active = coeffs is not None
        else:
            h, w = extra["original_shape"][-2:]
            active = (
                self.compiled.self_active(step, n_steps)
                and spatial_downsample(q.shape[1], h, w) >= self.self_attn_min_downsample
            )
        base = prior(q, k, v, extra) if prior is not None else None
        if not active or not layout.groups:
            return base if base is not None else attention.plain(q, k, v, heads, precision, extra)

        edits = set(layout.edit_index)
        if base is None:
            rest = [i for i in range(q.shape[0]) if i not in edits]
            out = torch.empty_like(q[..., : v.shape[-1]])
            out[rest] = attention.plain(q[rest], k[rest], v[rest], heads, precision, extra)
        else:
            out = base.clone()
        for src, es in layout.groups:
            q_s, k_s = q[src : src + 1], k[src : src + 1]
            if kind == "attn2":
                edited = attention.cross_edit(q_s, k_s, q[es], k[es], v[es], heads, coeffs, self.reference,
                                              precision, extra)
            else:
                edited = attention.self_inject(q_s, k_s, v[es], heads, self.reference, precision, extra)
            if base is None:
                out[es] = edited
            else:
                # Another pack's patch ran first: keep what it adds, swap its plain attention for ours.
                out[es] = base[es] + edited - attention.plain(q[es], k[es], v[es], heads, precision, extra)
        return out


def make_apply_model_wrapper(runtime: P2PRuntime):
    """An APPLY_MODEL wrapper: after each model call, whether every transformer block's attention reached
    the edit (EditRuntime.check_blocks_ran)."""

    def apply_model(executor, *args, **kwargs):
        runtime.ran = set()
        out = executor(*args, **kwargs)
        to = kwargs.get("transformer_options", args[5] if len(args) > 5 else None)
        runtime.check_blocks_ran(to if isinstance(to, dict) else {})
        return out

    return apply_model


class P2PAttentionPatch:
    """An attn1/attn2 replace patch; shared state lives in the runtime (clone() deep-copies patches)."""

    def __init__(self, runtime: P2PRuntime, kind: str, prior=None):
        self.runtime, self.kind, self.prior = runtime, kind, prior

    def __call__(self, q, k, v, extra_options):
        return self.runtime.attend(self.kind, q, k, v, extra_options, self.prior)

    def __deepcopy__(self, memo):
        return self
