"""Sampling helpers for engine tests: ComfyUI's own comfy.sample.sample (what KSampler calls)."""

from __future__ import annotations

import torch


def encode(clip, text: str):
    """CLIPTextEncode's conditioning for one prompt."""
    out = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True, return_dict=True)
    cond = out.pop("cond")
    return [[cond, out]]


def sample(model, positive, negative, latent: dict, sampler="euler", steps=6, cfg=5.0, seed=0,
           scheduler="normal", denoise=1.0, disable_noise=False, start_step=None, last_step=None):
    import comfy.sample

    samples = latent["samples"]
    if disable_noise:
        noise = torch.zeros_like(samples)
    else:
        noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
    with torch.inference_mode():
        return comfy.sample.sample(
            model, noise, steps, cfg, sampler, scheduler, positive, negative, samples,
            denoise=denoise, disable_noise=disable_noise, start_step=start_step, last_step=last_step,
            seed=seed, disable_pbar=True,
        )


def empty_latent(h=8, w=8, batch=1) -> dict:
    return {"samples": torch.zeros(batch, 4, h, w)}
