"""Attention maps as ComfyUI IMAGE grids and MASKs (tensors [B, H, W, C] / [B, H, W] in [0, 1])."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .blend import parse_words
from .errors import P2PError
from .prompts import words_available
from .store import AttentionStore


def check_samples(store: AttentionStore, samples) -> None:
    """The maps must come from the sampling that produced `samples` (a LATENT): not an earlier prompt's."""
    from .checks import current_run

    if not isinstance(store, AttentionStore):
        raise P2PError("'attention_store' is not an attention store.")
    latent = samples.get("samples") if isinstance(samples, dict) else samples
    if isinstance(latent, torch.Tensor) and not latent.is_nested:
        store.check_read(latent, current_run())
    else:
        store.maps()


def _check_index(store: AttentionStore, index: int) -> None:
    n = len(store.prompts.prompts)
    if not 0 <= index < n:
        raise P2PError(f"prompt_index {index} does not exist; use 0 (source) to {n - 1}.")


def _label(text: str, width: int, height: int = 14) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    while text and draw.textlength(text, font=font) > width - 2:
        text = text[:-1]
    draw.text((1, 1), text, fill=(255, 255, 255), font=font)
    return np.asarray(img, dtype=np.float32) / 255.0


def _heat(m: torch.Tensor) -> torch.Tensor:
    """[h, w] in [0, 1] -> [h, w, 3] (black-red-yellow-white)."""
    return torch.stack([(m * 3).clamp(0, 1), (m * 3 - 1).clamp(0, 1), (m * 3 - 2).clamp(0, 1)], -1)


def token_grid(store: AttentionStore, index: int, image: torch.Tensor | None = None, cell: int = 96) -> torch.Tensor:
    """One cell per word token of prompt `index`: its map (overlaid on `image` when given), token under it."""
    _check_index(store, index)
    prompt = store.prompts.prompts[index]
    maps = store.maps()[index].float().cpu()  # [h, w, L]
    positions = [i for i, w in enumerate(prompt.word_of) if w >= 0]
    base = None
    if image is not None:
        img = image[min(index, image.shape[0] - 1)].float().cpu()
        base = F.interpolate(img.permute(2, 0, 1)[None], size=(cell, cell), mode="bilinear")[0].permute(1, 2, 0)
    cells = []
    for pos in positions:
        m = maps[..., pos]
        m = m / m.max().clamp_min(1e-12)
        m = F.interpolate(m[None, None], size=(cell, cell), mode="bilinear")[0, 0]
        rgb = _heat(m) if base is None else 0.45 * base + 0.55 * _heat(m)
        token = prompt.words[prompt.word_of[pos]]
        cells.append(np.concatenate([rgb.numpy(), _label(token, cell)], 0))
    if not cells:
        raise P2PError(f"prompt {index} has no word tokens.")
    return torch.from_numpy(np.concatenate(cells, 1))[None].clamp(0, 1)


def word_mask(store: AttentionStore, index: int, words: str, size: tuple[int, int], threshold: float = 0.0) -> torch.Tensor:
    """MASK [1, H, W]: the words' summed map for prompt `index`, normalised to max 1 (binary if threshold > 0)."""
    _check_index(store, index)
    if not 0.0 <= threshold <= 1.0:
        raise P2PError(f"threshold must be in [0, 1], got {threshold}.")
    prompt = store.prompts.prompts[index]
    positions = sorted({p for w in parse_words(words) for p in prompt.positions_of(w)})
    if not positions:
        raise P2PError(
            f"none of the words {words!r} is in prompt {index} ({prompt.text!r}). "
            f"{words_available([prompt])}"
        )
    m = store.word_map(index, positions).float().cpu()
    m = F.interpolate(m[None, None], size=size, mode="bilinear")[0]
    m = m / m.max().clamp_min(1e-12)
    return (m > threshold).float() if threshold > 0 else m.clamp(0, 1)
