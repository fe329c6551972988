"""Sampling time: which step a sampler is at, and which steps a window covers.

The engine's one step function (`step_index`, from the sampler's sigmas, so any sampler and
schedule works) and one window function (`window_steps`), with the official conventions: a window
[a, b) over a table of `rows` rows covers steps int(a*rows) <= s < int(b*rows), computed in float64
exactly as the official Python does. Cross-attention windows use the official alpha table of
n + 1 rows; self-attention windows and the local-blend start use n rows.
"""

from __future__ import annotations

import torch

from .errors import P2PError


def step_index(sigma, sample_sigmas, exact: bool = False) -> int | None:
    """The sampling step in progress at `sigma`: the index of the schedule sigma it equals (within
    float16 precision), else the step whose interval contains it (a midpoint evaluation of a
    second-order sampler belongs to the step it started from). Works for descending schedules and
    ascending ones (inversion with FlipSigmas). Clamped to [0, len(sample_sigmas) - 2].
    exact=True: None unless `sigma` is one of the schedule's sigmas."""
    if isinstance(sigma, torch.Tensor):
        sigma = float(sigma.detach().float().max().cpu())
    s = torch.as_tensor(sample_sigmas).detach().to("cpu", torch.float64).flatten()
    n = s.numel()
    if n <= 1:
        return None if exact else 0
    last = n - 2
    # float16 has a 2^-10 relative step: sigmas that passed through half precision still match.
    tol = 2e-3 * max(abs(sigma), 1e-8)
    if s[0] >= s[-1]:  # descending: last index whose sigma is >= the current one
        idx = torch.nonzero(s >= sigma - tol).flatten()
    else:  # ascending: last index whose sigma is <= the current one
        idx = torch.nonzero(s <= sigma + tol).flatten()
    i = max(0, min(int(idx[-1]) if idx.numel() else 0, last))
    if exact and abs(float(s[i]) - sigma) > tol:
        return None
    return i


CROSS = "cross"  # official get_time_words_attention_alpha: a table of n + 1 rows
SELF = "self"  # official num_self_replace and LocalBlend's start_blend: n rows


def window_steps(window: tuple[float, float], n_steps: int, kind: str) -> range:
    """The steps (0-based, of n_steps) a window covers: range(int(a*rows), int(b*rows)), where rows is
    n_steps + 1 for cross-attention windows and n_steps for self windows and the blend start. For
    example 20 steps at 0.29: cross 0-5 (int(0.29*21) = 6), self 0-4 (int(0.29*20) = 5)."""
    if kind not in (CROSS, SELF):
        raise P2PError(f"unknown window kind {kind!r}")
    rows = n_steps + 1 if kind == CROSS else n_steps
    a, b = window
    return range(int(float(a) * rows), min(int(float(b) * rows), n_steps))


def window_active(window: tuple[float, float], step: int, n_steps: int, kind: str) -> bool:
    return step in window_steps(window, n_steps, kind)


class StepClock:
    """The step of the model call in progress, found once per call: every layer of one call sees
    the same sigmas tensor (the reference held here keeps its id from being reused)."""

    def __init__(self):
        self._last: tuple | None = None

    def __call__(self, extra_options: dict) -> tuple[int, int]:
        sigmas = extra_options["sigmas"]
        if self._last is None or self._last[0] is not sigmas:
            self._last = (sigmas, current_step(extra_options))
        return self._last[1]


def _step(sigma, sample_sigmas) -> tuple[int, int]:
    if sample_sigmas is None:
        raise P2PError("the patched MODEL was run without a sampler's schedule.", fix="sampler_nodes")
    return step_index(sigma, sample_sigmas), len(sample_sigmas) - 1


def current_step(extra_options: dict) -> tuple[int, int]:
    """(step index, number of steps) inside attention, from the sampler's sigmas."""
    return _step(extra_options["sigmas"], extra_options.get("sample_sigmas"))


def step_of(sigma, model_options: dict) -> tuple[int, int]:
    """(step index, number of steps) in sampler hooks (post-CFG functions, wrappers)."""
    return _step(sigma, model_options.get("transformer_options", {}).get("sample_sigmas"))


def sampler_function_name(sampler) -> str:
    """The k-diffusion function behind a comfy Sampler ("sample_euler" for ddim and euler)."""
    fn = getattr(sampler, "sampler_function", None)
    if fn is None:
        return type(sampler).__name__
    return getattr(fn, "__name__", type(fn).__name__)
