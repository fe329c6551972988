"""Floating-point bounds for the tests, derived from what a test compares, never from one machine's print.

    fp_bound(reference, dtype, terms) = K * eps(dtype) * max|reference| * sqrt(terms)

* eps(dtype): the machine epsilon of the dtype that rounds the compared values (the UNet's dtype
  for sampled latents; float32 where only ComfyUI's sampler arithmetic is involved).
* max|reference|: float error is relative to the values' scale, and the largest element is where it
  is largest.
* terms: how many independent rounding sources add into the compared value; they add in quadrature.
  For a sampled latent it is the number of UNet evaluations (`unet_evals`): each evaluation's
  rounding enters the latent through the sampler's step (weight <= 1).
* K = 2 * K_RUN. K_RUN = 8: one run lies within K_RUN * eps * max|ref| * sqrt(terms) of the exact
  result: ~2 ulp per evaluation (the rounding of its last layers and residual sums) x 2 (float32
  also accumulates its long reductions, up to ~10^3 terms, in the dtype itself) x 2 (the largest
  of up to ~10^4 elements of a sum of independent errors: a 4-sigma tail of a 2-sigma scale).
  tests/engine/test_bounds.py checks that premise against float64 on the machine that runs the suite, in
  float32, float16 and bfloat16. Two runs that compute the same exact value in different orders
  (another batch shape, another kernel) are each within that of it, so they differ by at most 2x.

Where the maths makes two results bit-identical (the same batch through the same kernels, a copy,
an exact power-of-two scaling) the tests keep torch.equal / == 0.
"""

from __future__ import annotations

import math

import torch

K_RUN = 8.0
K = 2.0 * K_RUN

# k-diffusion samplers: UNet evaluations per step (heun: 2, except its last step).
_EVALS_PER_STEP = {"heun": 2, "dpm_2": 2}


def eps(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


def magnitude(reference) -> float:
    if isinstance(reference, torch.Tensor):
        return float(reference.detach().abs().max())
    return float(abs(reference))


def fp_bound(reference, dtype: torch.dtype, terms: int = 1, k: float = K) -> float:
    """k * eps(dtype) * max|reference| * sqrt(terms) (see the module docstring)."""
    if terms < 1:
        raise ValueError("terms must be >= 1")
    return k * eps(dtype) * magnitude(reference) * math.sqrt(terms)


def unet_evals(steps: int, sampler: str = "euler") -> int:
    """UNet evaluations of one sampling run (each evaluates cond and uncond in one batch)."""
    per = _EVALS_PER_STEP.get(sampler, 1)
    return per * steps - (per - 1)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def last_step_bound(latent) -> float:
    """Two items whose last denoised predictions are equal (local blend outside its mask, direct
    inversion's forced source) end equal up to ComfyUI's last sampler step alone, which runs in
    float32 whatever the UNet dtype: x + (0 - s) * (x - x0) / s (euler/ddim; dpmpp_2m returns x0
    itself) rounds ~4 times at max|x| per item, within fp_bound(latent, float32, terms=1)."""
    return fp_bound(latent, torch.float32, 1)
