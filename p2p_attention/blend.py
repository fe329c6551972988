"""Local blend: keep everything outside the edited words' region equal to the source.

The mask of edit item e is the union of its own and the source's maps of the blend words
(from the attention store so far: the maps the edit used, after injection), 3x3 max-pooled,
normalised by its maximum and thresholded; `subtract` words remove their region (not pooled,
as official). After `start` of the steps the CFG
denoised prediction is blended, x0_e <- x0_src + mask * (x0_e - x0_src), through the
patcher's post-CFG hook, so it works with every sampler. For samplers whose last step returns
the denoised prediction (ddim/euler, heun, dpmpp_2m, lcm, ...), the final edit then equals
the source outside the final mask exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .edits import PromptSet
from .errors import P2PError
from .prompts import words_available
from .steps import SELF, step_of, window_active


@dataclass(frozen=True)
class LocalBlendSpec:
    words: tuple[str, ...]
    subtract: tuple[str, ...] = ()
    threshold: float = 0.3
    subtract_threshold: float = 0.3
    start: float = 0.2
    dilation: int = 1  # max-pool radius in map pixels (1 = the official 3x3)


def parse_words(text: str) -> tuple[str, ...]:
    return tuple(w.strip().lower() for w in text.replace("\n", ",").split(",") if w.strip())


def make_blend(prompts: PromptSet, words: str, subtract: str, threshold: float,
               subtract_threshold: float, start: float, dilation: int) -> LocalBlendSpec:
    spec = LocalBlendSpec(parse_words(words), parse_words(subtract), float(threshold),
                          float(subtract_threshold), float(start), int(dilation))
    if not spec.words:
        raise P2PError("give at least one word whose region may change (e.g. 'cat, dog').")
    for name, val in (("threshold", spec.threshold), ("subtract_threshold", spec.subtract_threshold),
                      ("start_blend", spec.start)):
        if not 0.0 <= val <= 1.0:
            raise P2PError(f"{name} must be in [0, 1], got {val}.")
    # Maps are divided by their maximum, so nothing exceeds 1; the blend starts at step int(start * n).
    if spec.threshold >= 1.0:
        raise P2PError(f"threshold must be below 1, got {spec.threshold:g}: each map is divided by its maximum, so "
                       "no pixel exceeds 1 and the edit would be the source everywhere. Use e.g. 0.3.")
    # Every pixel of a map is above 0 (softmax attention), so a threshold of 0 selects the whole image.
    if spec.threshold <= 0.0:
        raise P2PError(f"threshold must be above 0, got {spec.threshold:g}: every pixel's map is above 0, so the "
                       "region would be the whole image and the blend would keep nothing of the source (no blend "
                       "at all). Use e.g. 0.3.")
    if spec.subtract and spec.subtract_threshold <= 0.0:
        raise P2PError(f"subtract_threshold must be above 0, got {spec.subtract_threshold:g}: every pixel's map is "
                       "above 0, so the subtract words would keep the whole image and the edit would be the source "
                       "everywhere. Use e.g. 0.3.")
    if spec.subtract and spec.subtract_threshold >= 1.0:
        raise P2PError(f"subtract_threshold must be below 1, got {spec.subtract_threshold:g}: no pixel exceeds 1, "
                       "so the subtract words would keep nothing. Use e.g. 0.3.")
    if spec.start >= 1.0:
        raise P2PError(f"start_blend must be below 1, got {spec.start:g}: the blend starts after that share of the "
                       "steps, so it would never run. Use e.g. 0.2.")
    if spec.dilation < 0:
        raise P2PError("dilation must be >= 0.")
    for word in spec.words + spec.subtract:
        if not any(p.positions_of(word) for p in prompts.prompts):
            raise P2PError(f"'{word}' is in no prompt. {words_available(prompts.prompts)}")
    return spec


def _word_mask(store, prompts: PromptSet, words, item_prompts: list[int], dilation: int) -> torch.Tensor:
    """[items, h, w] normalised maps of `words` per item (0 where an item's prompt lacks them)."""
    positions = [sorted({i for w in words for i in prompts.prompts[p].positions_of(w)}) for p in item_prompts]
    return _token_mask(store.maps(), [(row, pos) for row, pos in enumerate(positions)], dilation)


def _token_mask(maps: torch.Tensor, rows: list[tuple[int, list[int]]], dilation: int) -> torch.Tensor:
    """[len(rows), h, w]: for each (item, token positions), the item's summed map of those tokens,
    max-pooled by `dilation`, normalised by its maximum (all 0 where no position is given)."""
    out = torch.zeros(len(rows), *maps.shape[1:3], device=maps.device)
    for row, (item, positions) in enumerate(rows):
        if positions:
            out[row] = maps[item][..., positions].sum(-1)
    if dilation > 0:
        k = 2 * dilation + 1
        out = F.max_pool2d(out[:, None], k, 1, padding=dilation)[:, 0]
    peak = out.flatten(1).max(1).values.clamp_min(1e-12)
    return out / peak[:, None, None]


def blend_masks(spec: LocalBlendSpec, store, prompts: PromptSet, latent_hw) -> torch.Tensor:
    """Binary masks [N, 1, H, W] of the edit items at latent resolution."""
    items = list(range(prompts.n_edits + 1))
    m = _word_mask(store, prompts, spec.words, items, spec.dilation) > spec.threshold
    m = m[1:] | m[:1]  # the edited region is where the source's OR the edit's words are
    if spec.subtract:
        s = _word_mask(store, prompts, spec.subtract, items, 0) > spec.subtract_threshold
        m = m & ~(s[1:] | s[:1])
    return F.interpolate(m[:, None].float(), size=tuple(latent_hw), mode="nearest")


def region_masks(store, compiled, blend: LocalBlendSpec | None, prompts: PromptSet, threshold: float,
                 dilation: int) -> torch.Tensor | None:
    """[N, h*w] bool, at the store's token grid: the region each edit item may change. With a local
    blend, its words' region (source's or edit's map); else the changed tokens' (compiled.changed_src
    on the source's map, compiled.changed_edit on the edit's). None before any map is recorded."""
    if store.sum is None:
        return None
    maps = store.maps()
    n = compiled.n_edits
    if blend is not None:
        m = _word_mask(store, prompts, blend.words, list(range(n + 1)), dilation) > threshold
        region = m[1:] | m[:1]
    else:
        def rows(item, flags):  # the store's maps are at the prompts' token length
            return [(item(e), torch.nonzero(flags[e]).flatten().tolist()) for e in range(n)]

        src = _token_mask(maps, rows(lambda e: 0, compiled.changed_src), dilation)
        own = _token_mask(maps, rows(lambda e: 1 + e, compiled.changed_edit), dilation)
        region = (src > threshold) | (own > threshold)
    return region.flatten(1)


def make_post_cfg(spec: LocalBlendSpec, store, prompts: PromptSet):
    def post_cfg(args):
        denoised = args["denoised"]
        step, n_steps = step_of(args["sigma"], args["model_options"])
        if not window_active((spec.start, 1.0), step, n_steps, SELF) or store.sum is None:
            return denoised
        masks = blend_masks(spec, store, prompts, denoised.shape[-2:]).to(denoised)
        store.last_masks = masks
        src = denoised[:1]
        out = denoised.clone()
        masks = masks.reshape(*masks.shape[:2], *(1,) * (denoised.ndim - 4), *masks.shape[-2:])  # 5-d: frames
        out[1:] = src + masks * (denoised[1:] - src)
        return out

    return post_cfg
