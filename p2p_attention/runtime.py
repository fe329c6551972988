"""Attention time: the replace patch every transformer block gets, and the state its calls share.

For each attention call the runtime finds the source and edit rows (batch.py), the step
(steps.py) and the edit's coefficients (edits.py), feeds the store, and runs the edited rows on
attention.py; the source, the uncond chunk and the rows outside every window are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import attention
from .batch import batch_layout
from .edits import CompiledEdit, EditPlan
from .steps import StepClock
from .store import AttentionStore
from .unet_blocks import spatial_downsample

DEFAULT_SELF_MIN_DOWNSAMPLE = 4  # official SD notebook: self maps <= 16x16 at 512 px (SD1), 32x32 at 1024 px (SDXL)


@dataclass
class P2PRuntime:
    """State shared by every attention patch of one P2P Apply: the plan and its tensors."""

    plan: EditPlan
    compiled: CompiledEdit
    reference: bool = False  # materialise maps (tests and benchmarks)
    self_min_downsample: int = DEFAULT_SELF_MIN_DOWNSAMPLE
    store: AttentionStore | None = None  # fed at cross-attention with the maps the edit used
    clock: StepClock = field(default_factory=StepClock)

    def attend(self, kind: str, q, k, v, extra: dict, prior):
        heads = extra["n_heads"]
        precision = extra.get("attn_precision")
        layout = batch_layout(q.shape[0], extra["cond_or_uncond"], self.compiled.n_edits)
        step, n_steps = self.clock(extra)
        if kind == "attn2":
            coeffs = self.compiled.cross_coefficients(step, n_steps, k.shape[1], q.device, q.dtype)
            if self.store is not None:
                self.store(q, k, extra, layout, coeffs)
            active = coeffs is not None
        else:
            h, w = extra["original_shape"][-2:]
            active = (
                self.compiled.self_active(step, n_steps)
                and spatial_downsample(q.shape[1], h, w) >= self.self_min_downsample
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


class P2PAttentionPatch:
    """An attn1/attn2 replace patch; shared state lives in the runtime (clone() deep-copies patches)."""

    def __init__(self, runtime: P2PRuntime, kind: str, prior=None):
        self.runtime, self.kind, self.prior = runtime, kind, prior

    def __call__(self, q, k, v, extra_options):
        return self.runtime.attend(self.kind, q, k, v, extra_options, self.prior)

    def __deepcopy__(self, memo):
        return self
