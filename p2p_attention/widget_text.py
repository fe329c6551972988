"""Widget text parsed: step windows and per-word settings as typed into node widgets, "0.8" (= 0-0.8),
"0.2-0.8", "default: 0.8, lion: 0.4", "smiling: 2, cat: -1.5"; block ranges ("single 20-37, double 0-1");
list values. Which steps a window covers is steps.py's job; which blocks a range selects dit_blocks'.
"""

from __future__ import annotations

import re

from .errors import P2PError

DEFAULT_CROSS_WINDOW = (0.0, 1.0)  # official: words without a window of their own, when "default" is not given

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_WINDOW = re.compile(rf"^\s*({_NUM})\s*(?:-\s*({_NUM})\s*)?$")
_WEIGHT = re.compile(rf"^\s*([+-]?{_NUM}(?:[eE][+-]?\d+)?)\s*$")
# A weight scales a word's share of each pixel's attention (a share of 1 is all of it): a few units
# already make the word dominate; far beyond, one word drowns the prompt and the image turns to noise.
MAX_WEIGHT = 100.0
ATTENTION_PATHS = ("fast", "reference")


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
    if not _entries(text):
        raise P2PError(f"{what} is empty; write a fraction like 0.8 (the default), a range like 0.2-0.8 or "
                       "per word 'default: 0.8, dog: 0.4'.")
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
        out[key] = check_weight(float(m.group(1)), f"{what}: the weight of {key!r}")
    return out


def check_weight(value: float, what: str) -> float:
    """A reweighting factor within +-MAX_WEIGHT (see there why)."""
    if not abs(value) <= MAX_WEIGHT:
        raise P2PError(
            f"{what} ({value:g}) is outside -{MAX_WEIGHT:g} to {MAX_WEIGHT:g}: a weight multiplies the word's share "
            "of each pixel's attention, so a few units already change the image strongly (useful weights are about "
            "-5 to 5) and far larger ones drown the rest of the prompt and turn the image into noise."
        )
    return value


def parse_choice(value: str, options: tuple[str, ...], what: str) -> str:
    """A list widget's value, checked here: not every ComfyUI version checks a V3 list's values."""
    if value not in options:
        raise P2PError(f"{what}: {value!r} is not one of {', '.join(repr(o) for o in options)}.")
    return value


_BLOCK_RANGE = re.compile(r"^\s*(double|single|joint)\s+(\d+)(?:\s*-\s*(\d+))?\s*$")


def parse_block_ranges(text: str):
    """self_blocks: 'auto' (or empty), 'all', 'none', or a list like 'single 20-37, double 0-1' ->
    [(kind, first, last), ...] (which blocks of a model these are: dit_blocks.select_blocks)."""
    spec = text.strip().lower()
    if spec in ("", "auto"):
        return "auto"
    if spec in ("all", "none"):
        return spec
    out = []
    for part in spec.replace(";", ",").split(","):
        m = _BLOCK_RANGE.match(part)
        if not m:
            raise P2PError(f"self_blocks: {part.strip()!r} is not a block range; write e.g. 'single 20-37, "
                           "double 0-18', 'auto', 'all' or 'none'.")
        lo = int(m.group(2))
        out.append((m.group(1), lo, int(m.group(3)) if m.group(3) else lo))
    return out
