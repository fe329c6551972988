"""Step windows and per-word settings as typed into node widgets: "0.8" (= 0-0.8), "0.2-0.8",
"default: 0.8, lion: 0.4", "smiling: 2, cat: -1.5". Which steps a window covers is steps.py's job.
"""

from __future__ import annotations

import re

from .errors import P2PError

DEFAULT_CROSS_WINDOW = (0.0, 1.0)  # official: words without a window of their own, when "default" is not given

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_WINDOW = re.compile(rf"^\s*({_NUM})\s*(?:-\s*({_NUM})\s*)?$")
_WEIGHT = re.compile(rf"^\s*([+-]?{_NUM})\s*$")


def parse_window(text: str, what: str) -> tuple[float, float]:
    """Parse a window: "0.8" -> (0.0, 0.8); "0.2-0.8" -> (0.2, 0.8); needs 0 <= a <= b <= 1."""
    m = _WINDOW.match(str(text))
    if not m:
        raise P2PError(
            f"{what}: {text!r} is not a step window; write a fraction like 0.8 or a range like 0.2-0.8."
        )
    if m.group(2) is None:
        a, b = 0.0, float(m.group(1))
    else:
        a, b = float(m.group(1)), float(m.group(2))
    if not (0.0 <= a <= b <= 1.0):
        raise P2PError(f"{what}: the window {text.strip()!r} must satisfy 0 <= start <= end <= 1.")
    return (a, b)


def _entries(text: str) -> list[str]:
    return [e.strip() for e in re.split(r"[,\n]", str(text)) if e.strip()]


def _split_entry(entry: str, what: str) -> tuple[str, str]:
    if ":" not in entry:
        raise P2PError(f"{what}: {entry!r} needs the form 'word: value'.")
    key, value = entry.rsplit(":", 1)
    key = " ".join(key.lower().split())
    if not key:
        raise P2PError(f"{what}: {entry!r} has no word before ':'.")
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
            raise P2PError(f"{what}: {key!r} is given twice.")
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
            raise P2PError(f"{what}: the weight of {key!r} ({value.strip()!r}) is not a number.")
        if key in out:
            raise P2PError(f"{what}: {key!r} is given twice.")
        out[key] = float(m.group(1))
    return out
