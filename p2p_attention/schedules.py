"""Step windows and per-word settings typed into node widgets, and the current step of a sampler.

Windows are fractions of the sampling steps, "0.8" (= 0-0.8) or "0.2-0.8". The engine has one step
function (`step_index`) and one window function (`window_steps`), with the official conventions:
a window [a, b) over a table of `rows` rows covers steps int(a*rows) <= s < int(b*rows), computed in
float64 exactly as the official Python does. Cross-attention windows use the official alpha table
of n + 1 rows; self-attention windows and the local-blend start use n rows.
"""

from __future__ import annotations

import re

import torch

DEFAULT_CROSS_WINDOW = (0.0, 1.0)  # official: words without a window of their own, when "default" is not given

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_WINDOW = re.compile(rf"^\s*({_NUM})\s*(?:-\s*({_NUM})\s*)?$")
_WEIGHT = re.compile(rf"^\s*([+-]?{_NUM})\s*$")


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
    A bare window sets "default"; "default" is always present ((0.0, 1.0) when not given, as official).
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
        raise ValueError(f"unknown window kind {kind!r}")
    rows = n_steps + 1 if kind == CROSS else n_steps
    a, b = window
    return range(int(float(a) * rows), min(int(float(b) * rows), n_steps))


def window_active(window: tuple[float, float], step: int, n_steps: int, kind: str) -> bool:
    return step in window_steps(window, n_steps, kind)
