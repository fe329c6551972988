"""Direct inversion's correction: the source item put back on the inversion trajectory at every step,
with the trajectory's CPU tensors moved to the device once."""

from __future__ import annotations

import torch

from ..steps import step_index
from .result import Inversion


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
