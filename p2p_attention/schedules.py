"""Step windows and per-word settings typed into node widgets, and the current step of a sampler.

Windows are fractions of the sampling steps, "0.8" (= 0-0.8) or "0.2-0.8"; a window [a, b) is
active at step s of n when int(a*n) <= s < int(b*n) (the official convention; a tiny epsilon keeps
0.29 * 100 at 29, not 28.999...).
"""

from __future__ import annotations

import math
import re

import torch

DEFAULT_CROSS_WINDOW = (0.0, 0.8)

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_WINDOW = re.compile(rf"^\s*({_NUM})\s*(?:-\s*({_NUM})\s*)?$")
_WEIGHT = re.compile(rf"^\s*([+-]?{_NUM})\s*$")
_EPS = 1e-9


def parse_window(text: str, what: str) -> tuple[float, float]:
    """Parse a window: "0.8" -> (0.0, 0.8); "0.2-0.8" -> (0.2, 0.8); needs 0 <= a <= b <= 1."""
    m = _WINDOW.match(str(text))
    if not m:
        raise ValueError(
            f"{what}: {text!r} is not a step window; write a fraction like 0.8 or a range like 0.2-0.8."
        )
    if m.group(2) is None:
        a, b = 0.0, float(m.group(1))
    else:
        a, b = float(m.group(1)), float(m.group(2))
    if not (0.0 <= a <= b <= 1.0):
        raise ValueError(f"{what}: the window {text.strip()!r} must satisfy 0 <= start <= end <= 1.")
    return (a, b)


def _entries(text: str) -> list[str]:
    return [e.strip() for e in re.split(r"[,\n]", str(text)) if e.strip()]


def _split_entry(entry: str, what: str) -> tuple[str, str]:
    if ":" not in entry:
        raise ValueError(f"{what}: {entry!r} needs the form 'word: value'.")
    key, value = entry.rsplit(":", 1)
    key = " ".join(key.lower().split())
    if not key:
        raise ValueError(f"{what}: {entry!r} has no word before ':'.")
    return key, value


def parse_word_windows(text: str, what: str) -> dict[str, tuple[float, float]]:
    """Parse per-word windows: "0.8", "default: 0.8, lion: 0.4" or "default: 0.1-0.8, lion: 0-0.4" (commas or newlines).
    A bare window sets "default"; "default" is always present ((0.0, 0.8) when not given).
    Word keys are lowercased."""
    out: dict[str, tuple[float, float]] = {}
    for entry in _entries(text):
        if ":" in entry:
            key, value = _split_entry(entry, what)
            if key == "default_":  # the official notebooks' spelling
                key = "default"
        else:
            key, value = "default", entry
        if key in out:
            raise ValueError(f"{what}: {key!r} is given twice.")
        out[key] = parse_window(value, f"{what} ({key})")
    out.setdefault("default", DEFAULT_CROSS_WINDOW)
    return out


def parse_word_weights(text: str, what: str) -> dict[str, float]:
    """Parse per-word weights: "smiling: 2, cat: -1.5" (commas or newlines) -> {"smiling": 2.0, "cat": -1.5}; "" -> {}."""
    out: dict[str, float] = {}
    for entry in _entries(text):
        key, value = _split_entry(entry, what)
        m = _WEIGHT.match(value)
        if not m:
            raise ValueError(f"{what}: the weight of {key!r} ({value.strip()!r}) is not a number.")
        if key in out:
            raise ValueError(f"{what}: {key!r} is given twice.")
        out[key] = float(m.group(1))
    return out


def step_index(sigma, sample_sigmas) -> int:
    """The sampling step in progress at `sigma`: the index of the schedule sigma it equals (within
    float16 precision), else the step whose interval contains it (a midpoint evaluation of a
    second-order sampler belongs to the step it started from). Works for descending schedules and
    ascending ones (inversion with FlipSigmas). Clamped to [0, len(sample_sigmas) - 2]."""
    if isinstance(sigma, torch.Tensor):
        sigma = float(sigma.detach().float().max().cpu())
    s = torch.as_tensor(sample_sigmas).detach().to("cpu", torch.float64).flatten()
    n = s.numel()
    if n <= 1:
        return 0
    last = n - 2
    tol = 2e-3 * max(abs(sigma), 1e-8)
    if s[0] >= s[-1]:  # descending: last index whose sigma is >= the current one
        idx = torch.nonzero(s >= sigma - tol).flatten()
    else:  # ascending: last index whose sigma is <= the current one
        idx = torch.nonzero(s <= sigma + tol).flatten()
    i = int(idx[-1]) if idx.numel() else 0
    return max(0, min(i, last))


def window_active(window: tuple[float, float], step: int, n_steps: int) -> bool:
    """int(a*n) <= step < int(b*n)."""
    a, b = window
    return math.floor(a * n_steps + _EPS) <= step < math.floor(b * n_steps + _EPS)
