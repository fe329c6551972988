"""The hooks a method puts on a model: the unconditional text context from a provider (null-text),
the source item put back on the inversion trajectory (direct), identity weight wrappers
(gradients through inference-mode weights), and CPU tensors moved to the device once."""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import P2PError
from ..steps import step_index
from .result import Inversion


class UncondContextPatch:
    """attn2_patch: the unconditional chunk's text context comes from `provider(extra_options)`.

    Rows of the unconditional chunk (found with extra_options["cond_or_uncond"]) are replaced by
    the provided [1, Le, D] context, repeated to the batch's token length (ComfyUI repeats
    prompts of different lengths to their least common multiple).
    """

    def __init__(self, provider: Callable[[dict], torch.Tensor | None]):
        self.provider = provider

    def __deepcopy__(self, memo):  # ModelPatcher.clone() deep-copies model_options
        return self

    def __call__(self, n, context, value, extra_options):
        kinds = extra_options.get("cond_or_uncond") or []
        if 1 not in kinds or context is None:
            return n, context, value
        emb = self.provider(extra_options)
        if emb is None:
            return n, context, value
        chunks = len(kinds)
        per = context.shape[0] // chunks
        length, dim = context.shape[1], context.shape[2]
        if emb.shape[-1] != dim or length % emb.shape[1] != 0:
            raise P2PError(
                f"the inversion's unconditional embedding ({tuple(emb.shape[1:])}) does not fit "
                f"this model's text context ({length} tokens x {dim}). Invert with the same model and CLIP."
            )
        emb = emb.to(device=context.device, dtype=context.dtype)
        if emb.shape[1] != length:
            emb = emb.repeat(1, length // emb.shape[1], 1)
        new_context = _replace_uncond_rows(context, emb, kinds, per)
        if value is context:
            return n, new_context, new_context
        if value is not None and value.shape == context.shape:
            value = _replace_uncond_rows(value, emb, kinds, per)
        return n, new_context, value


def _replace_uncond_rows(t: torch.Tensor, emb: torch.Tensor, kinds: list, per: int) -> torch.Tensor:
    parts = [
        emb.expand(per, -1, -1) if kind == 1 else t[c * per : (c + 1) * per] for c, kind in enumerate(kinds)
    ]
    return torch.cat(parts)


def identity_weight(weight):
    # Registered for every UNet weight and bias: ComfyUI then casts a *copy* of the weight (its
    # inference-mode parameters cannot be saved for backward); detach keeps autograd off weights.
    return weight.detach()


class DeviceCache:
    """CPU tensors moved once per (device, dtype)."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.cache = {}

    def get(self, i, like: torch.Tensor):
        key = (i, like.device, like.dtype)
        t = self.cache.get(key)
        if t is None:
            t = self.tensors[i].to(device=like.device, dtype=like.dtype)
            self.cache[key] = t
        return t


class DirectCorrection:
    """post-CFG: the source item's denoised value that makes the DDIM step land on the trajectory."""

    def __init__(self, inversion: Inversion):
        self.sigmas = inversion.sigmas.double()
        self.trajectory = DeviceCache(inversion.trajectory)

    def __deepcopy__(self, memo):
        return self

    def __call__(self, args):
        denoised, x = args["denoised"], args["input"]
        sigma = float(args["sigma"].reshape(-1)[0])
        k = step_index(sigma, self.sigmas, exact=True)
        if k is None:
            return denoised
        s, s_next = self.sigmas[k].item(), self.sigmas[k + 1].item()
        target = self.trajectory.get(k + 1, x)
        x0 = x[:1]
        forced = x0 - (target - x0) * (s / (s_next - s))
        out = denoised.clone()
        out[:1] = forced.to(out.dtype)
        return out
