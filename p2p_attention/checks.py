"""Checks of one P2P Apply's inputs against each other and against the MODEL: options of the other
model family, a MODEL patched twice, the text context's width and the latent's channels (which torch
would otherwise report as a shape error deep in the model), and a run whose every step keeps the
source's maps. Also which ComfyUI prompt is running, which the attention store is stamped with.
"""

from __future__ import annotations

import torch

from .edits import CompiledEdit
from .errors import Explain, P2PError
from .families import FAMILIES
from .steps import CROSS, SELF, window_steps

# The key of every wrapper P2P Apply registers (OUTER_SAMPLE, and APPLY_MODEL on MM-DiT): a MODEL P2P Apply
# patched has its OUTER_SAMPLE wrapper.
WRAPPER_KEY = "p2p_attention"
# Text context widths of the families' encoders, to say which encoder a conditioning came from.
KNOWN_WIDTHS = {768: "SD1.x (CLIP-L)", 1024: "SD2.x (OpenCLIP-H)", 2048: "SDXL (CLIP-L + CLIP-G)",
                4096: "Flux.1 / SD3 / Chroma (T5-XXL)",
                2560: "Z-Image (Qwen3 4B)", 3584: "Qwen-Image (Qwen2.5-VL 7B)"}


def current_run():
    """The id of the ComfyUI prompt executing now, or None outside ComfyUI's executor."""
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None
    context = get_executing_context()
    return getattr(context, "prompt_id", None) if context is not None else None


def checked_outer_sample(check, explain: Explain, sample=None, explain_sampling: bool = False):
    """The one OUTER_SAMPLE validator shape (P2P Apply's and an inversion's): `check(executor, noise,
    latent_image, sampler, sigmas)` before sampling, its P2PError worded by `explain`; then
    `sample(executor, noise, latent_image, sampler, sigmas, *args, **kwargs)` (default: the executor).
    explain_sampling: a P2PError raised while sampling (by our patches) is worded by `explain` too."""

    def outer_sample(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        try:
            check(executor, noise, latent_image, sampler, sigmas)
            if explain_sampling:
                return _sample(executor, noise, latent_image, sampler, sigmas, *args, **kwargs)
        except P2PError as e:  # raised by the check (or by our patches during sampling)
            raise explain(e) from None
        return _sample(executor, noise, latent_image, sampler, sigmas, *args, **kwargs)

    def _sample(executor, *args, **kwargs):
        return executor(*args, **kwargs) if sample is None else sample(executor, *args, **kwargs)

    return outer_sample


def check_not_patched(model_patcher) -> None:
    """A second edit on a patched MODEL would replace the first one's patches: refuse it."""
    import comfy.patcher_extension

    if model_patcher.get_wrappers(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY):
        raise P2PError("this MODEL already carries a Prompt-to-Prompt edit; a second edit on it would silently "
                       "replace the first.", fix="unpatched_model")


# Speed-ups that return cached model outputs on the steps they skip (ComfyUI core,
# comfy_extras/nodes_easycache.py, 0.3.75 and 0.33.0): their wrapper key -> the node that adds it.
CACHE_WRAPPERS = {"easycache": "EasyCache", "lazycache": "LazyCache"}


def cache_speedups(model_patcher=None, model_options: dict | None = None) -> list[str]:
    """The nodes of CACHE_WRAPPERS whose wrappers a MODEL (its patcher's wrappers) or a sampling's
    model_options (the guider's: wrappers merged in by ComfyUI) carry."""
    tables = [getattr(model_patcher, "wrappers", None) or {}]
    if model_options is not None:
        tables.append(model_options.get("transformer_options", {}).get("wrappers", {}))
    return sorted({CACHE_WRAPPERS[key] for table in tables for by_key in table.values() for key, fns in by_key.items()
                   if key in CACHE_WRAPPERS and fns})


def check_no_cache_speedup(model_patcher=None, model_options: dict | None = None) -> None:
    """EasyCache and LazyCache skip whole model calls: the edit would silently miss those steps."""
    nodes = cache_speedups(model_patcher, model_options)
    if nodes:
        raise P2PError(f"this MODEL carries {' and '.join(nodes)}, which returns cached model outputs instead of "
                       "running the model on the steps it skips: Prompt-to-Prompt would not see those steps' "
                       f"attention, and the edit would silently be weak or wrong. Remove {' and '.join(nodes)} "
                       "for Prompt-to-Prompt.", fix="cache_speedup")


def check_family_options(family: str | None, self_blocks: str, self_attn_min_downsample: int, map_downsample: int,
                         auto_downsample: int, default_map_downsample: int) -> None:
    """Options of the other family's path are refused, not ignored: self_blocks is for MM-DiT models,
    self_attn_min_downsample and map_downsample for UNet models."""
    if family is None:
        if str(self_blocks).strip().lower() not in ("", "auto"):
            raise P2PError(f"self_blocks {self_blocks!r} applies to MM-DiT models only; on this UNet model "
                           "(SD1.x, SD2.x, SDXL) self_attn_min_downsample chooses the self-attention layers. "
                           "Set self_blocks to 'auto'.")
        return
    if self_attn_min_downsample != auto_downsample:
        raise P2PError(f"self_attn_min_downsample {self_attn_min_downsample} applies to UNet models only; on this "
                       f"MM-DiT model self_blocks chooses the blocks. Set it to {auto_downsample} (auto).")
    if map_downsample != default_map_downsample:
        raise P2PError(f"map_downsample {map_downsample} applies to UNet models only; an MM-DiT model keeps its "
                       f"maps at its token grid. Set it to {default_map_downsample}.")


def check_structure(family: str | None, structure: str, choices: tuple[str, ...], default: str) -> None:
    """mmdit_structure: one of its choices, and left at its default on a UNet (which injects self maps)."""
    if structure not in choices:
        raise P2PError(f"mmdit_structure {structure!r} is not one of {', '.join(choices)}.")
    if family is None and structure != default:
        raise P2PError(f"mmdit_structure {structure!r} applies to MM-DiT models only; a UNet model injects the "
                       f"source's self-attention maps. Set mmdit_structure to {default}.")


def _config_name(model_patcher) -> str:
    return type(model_patcher.model.model_config).__name__


def context_width(model_patcher) -> int | None:
    """The text context width the diffusion model takes (None when it cannot be read)."""
    dm = model_patcher.get_model_object("diffusion_model")
    for name in dict.fromkeys(f.context_layer for f in FAMILIES):
        try:
            layer = dm.get_submodule(name)  # a dotted path too (Z-Image: cap_embedder.1)
        except AttributeError:
            layer = None
        if isinstance(getattr(layer, "in_features", None), int):
            return layer.in_features
    for name, module in dm.named_modules():  # UNet: the cross-attention keys
        if name.endswith("attn2.to_k") and isinstance(getattr(module, "in_features", None), int):
            return module.in_features
    return None


def latent_channels(model_patcher) -> int | None:
    fmt = getattr(model_patcher.model, "latent_format", None)
    channels = getattr(fmt, "latent_channels", None)
    return channels if isinstance(channels, int) else None


def check_model_inputs(model_patcher, conds: dict, latent_image, width: int | None, channels: int | None) -> None:
    """The conditionings' width and the latent's channels must be the MODEL's (checked before sampling)."""
    for kind in ("positive", "negative"):
        if any(isinstance(c, dict) and c.get("reference_latents") is not None for c in conds.get(kind, [])):
            # Their image tokens join the joint attention, which the edit then leaves alone: no edit at all.
            raise P2PError(f"the {kind} conditioning carries reference images (ReferenceLatent, Qwen-Image-Edit's "
                           "or Flux Kontext's image inputs); Prompt-to-Prompt edits text-to-image sampling only.",
                           fix="no_reference_images")
    if width is not None:
        for kind in ("positive", "negative"):
            for c in conds.get(kind, []):
                ctx = c.get("cross_attn") if isinstance(c, dict) else None
                if isinstance(ctx, torch.Tensor) and ctx.ndim == 3 and ctx.shape[-1] != width:
                    got = KNOWN_WIDTHS.get(ctx.shape[-1])
                    raise P2PError(
                        f"the {kind} conditioning is {ctx.shape[-1]} wide"
                        + (f" (a {got} text encoder)" if got else "")
                        + f", but this MODEL ({_config_name(model_patcher)}) takes a {width}-wide text context"
                        + (f" ({KNOWN_WIDTHS[width]})" if width in KNOWN_WIDTHS else "")
                        + ": the prompts were encoded by another model's text encoder.", fix="text_encoder")
    if (channels is not None and isinstance(latent_image, torch.Tensor) and not latent_image.is_nested
            and latent_image.ndim >= 4 and latent_image.shape[1] != channels):
        raise P2PError(f"the latent has {latent_image.shape[1]} channels, but this MODEL "
                       f"({_config_name(model_patcher)}) works on {channels}-channel latents: it was encoded by "
                       "another model's VAE.", fix="latent_for_model")


def check_text_length(conds: dict, length: int) -> None:
    """The positive conditioning holds the prompts' own tokens, no more: tokens joined on after the text (a
    style model's image tokens from StyleModelApply, e.g. Flux Redux; another text by ConditioningConcat) have
    no place in the edit's token map, and a ConditioningCombine'd entry of another length ends in a shape error
    inside the model. (The negative may be any length: the edit leaves unconditional calls alone.)"""
    for c in conds.get("positive", []):
        ctx = c.get("cross_attn") if isinstance(c, dict) else None
        if isinstance(ctx, torch.Tensor) and ctx.ndim == 3 and ctx.shape[1] != length:
            raise P2PError(f"the positive conditioning has {ctx.shape[1]} tokens, but the prompts {length}: it "
                           "carries tokens that are not the prompts' (a style model's image tokens, e.g. Flux "
                           "Redux's, or another conditioning joined on), which Prompt-to-Prompt cannot map between "
                           "the source and the edits.", fix="prompt_tokens_only")


def windows_without_steps(compiled: CompiledEdit, n_steps: int) -> list[str]:
    """The windows given as a non-empty range that still cover no step of n_steps (e.g. 0.5-0.52 at 20)."""
    out = []
    for kind, label, windows in ((CROSS, "cross_replace", compiled.windows), (SELF, "self_replace",
                                                                             (compiled.self_window,))):
        out += [f"{label} {a:g}-{b:g}" for a, b in windows if a < b and not window_steps((a, b), n_steps, kind)]
    return out


def source_at_every_step(compiled: CompiledEdit, n_steps: int) -> bool:
    """Every token of every edit takes the source's cross-attention at every one of n_steps steps, none is
    new (refinement) and no word is reweighted: the edit keeps the source's maps throughout (only the new
    words' values differ)."""
    if n_steps < 1 or not bool((compiled.w == 1).all()) or not bool((compiled.beta == 1).all()):
        return False
    used = {compiled.windows[i] for i in compiled.window_id.unique().tolist()}
    return all(len(window_steps(w, n_steps, CROSS)) == n_steps for w in used)
