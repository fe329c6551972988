"""What the engine's family tests share: an edit of SRC through ComfyUI's own sampler (encode the prompt set,
P2P's apply_edit, comfy.sample), the official windows' plans, the q/k gains that make a random tiny DiT's
attention selective, and the check that every control moves the edit. Each family's test keeps its model,
latent, CFG and what is its own."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from sampling import encode, sample

from p2p_attention.apply import apply_edit
from p2p_attention.conditioning import encode_prompt_set
from p2p_attention.edits import make_plan
from p2p_attention.joint_injection import MAPS, VALUES

SRC = "a red circle on the left"


def swap(prompts):
    return make_plan(prompts, None, "swap", "0.8", "0.5")


def refine(prompts):
    return make_plan(prompts, None, "refine", "0.8", "0.5")


def reweight(weights: str):
    return lambda prompts: make_plan(prompts, None, None, "0.8", "0.5", weights)


def sharpen(patcher, gains: dict[tuple[str, ...], float]):
    """The diffusion model's parameters whose names end with a key's suffixes, times its factor (in place): a
    random tiny DiT's attention is otherwise near uniform. The patcher."""
    with torch.no_grad():
        for name, p in patcher.model.diffusion_model.named_parameters():
            for suffixes, factor in gains.items():
                if name.endswith(suffixes):
                    p.mul_(factor)
    return patcher


def sharpened_mmdit(family: str, gain: float = 6.0):
    """The tiny Flux.1 ("flux") or SD3.5-like SD3 (x-block self-attention) of seed 3, q/k projections times
    `gain` (linear1: a single block's qkv and MLP in): a fresh build (the tests cache their own)."""
    from p2p_models.tiny_dit import build_tiny_flux, build_tiny_sd3

    models = build_tiny_flux(seed=3) if family == "flux" else build_tiny_sd3(seed=3, x_block_self_attn=True)
    sharpen(models.model, {("qkv.weight", "linear1.weight"): gain})
    return models


def run_edit(model, clip, plan_fn, edits: list[str], latent: Callable[[int], dict], cfg: float, steps: int, *,
             src: str = SRC, negative: str | None = "", reference: bool = False, self_blocks: str = "auto",
             structure: str = VALUES, cond_extra=None):
    """src -> edits sampled (euler, simple) on latent(1 + len(edits)) with P2P Apply's patches: (samples, cond,
    negative, runtime, prompts). negative: its prompt (None: the positive itself, as at cfg 1); cond_extra:
    cond -> keys added to the conditioning."""
    cond, prompts = encode_prompt_set(clip, src, edits)
    if cond_extra:
        cond = [[cond[0][0], {**cond[0][1], **cond_extra(cond[0][0])}]]
    neg = cond if negative is None else encode(clip, negative)
    patched, runtime = apply_edit(model, plan_fn(prompts), attention_path="reference" if reference else "fast",
                                  self_blocks=self_blocks, mmdit_structure=structure)
    out = sample(patched, cond, neg, latent(1 + len(edits)), steps=steps, cfg=cfg, scheduler="simple")
    return out, cond, neg, runtime, prompts


def self_block_extremes(run) -> tuple[torch.Tensor, torch.Tensor]:
    """run(self_blocks=, structure=)'s samples with no block and with every block taking the source's self maps
    (MAPS: the structure whose effect a random tiny model shows well above rounding)."""
    none, every = (run(self_blocks=blocks, structure=MAPS)[0] for blocks in ("none", "all"))
    return none, every


def assert_every_control_moves_the_edit(swap_out, naive, refine_out, reweight_out, noise: float) -> None:
    """Word swap (against its source and against the naive edit: both prompts, no control), refine and reweight
    each move their edit item by more than 4x what float rounding alone can."""
    for name, item in (("swap vs source", swap_out[1] - swap_out[0]), ("swap vs naive", swap_out[1] - naive[1]),
                       ("refine", refine_out[1] - refine_out[0]), ("reweight", reweight_out[1] - reweight_out[0])):
        assert item.abs().max().item() > 4 * noise, name


def record_attends(runtime, record: Callable) -> None:
    """Wrap the runtime's attend: record(args, kwargs) sees every attention call that reaches the edit."""
    attend = runtime.attend

    def recording(backend, args, kwargs):
        record(args, kwargs)
        return attend(backend, args, kwargs)

    runtime.attend = recording


def blocks_reached(patched, runtime, cond, latent: dict, steps: int) -> list[tuple]:
    """Sample the patched model (cfg 1: the cond chunk only); every attention call that reaches the edit as
    (block_type, block_index, tokens), sorted."""
    seen = []
    record_attends(runtime, lambda args, kwargs: seen.append(
        (kwargs["transformer_options"].get("block_type"), kwargs["transformer_options"].get("block_index"),
         args[0].shape[2])))
    sample(patched, cond, cond, latent, steps=steps, cfg=1.0, scheduler="simple")
    return sorted(seen)


def recording_model(model):
    """A clone of `model` with an override installed before P2P Apply's: every attention call's q, mask and
    cond_or_uncond, appended to the returned list."""
    model = model.clone()
    calls = []

    def other(fn, *args, **kwargs):
        to = kwargs.get("transformer_options") or {}
        calls.append((args[0].detach().clone(), kwargs.get("mask"), tuple(to.get("cond_or_uncond", ()))))
        return fn(*args, **kwargs)

    model.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = other
    return model, calls


def psnr(x, ref) -> float:
    """Peak signal-to-noise ratio of x against ref (dB; the peak: ref's largest magnitude)."""
    mse = float(((x.float() - ref.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(float(ref.abs().max()) ** 2 / mse)

