"""Sampling through ComfyUI's own comfy.sample.sample (what KSampler calls), for tests and benchmarks."""

from __future__ import annotations

import torch


class _StopSampling(Exception):
    pass


def encode(clip, text: str):
    """CLIPTextEncode's conditioning for one prompt."""
    out = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True, return_dict=True)
    cond = out.pop("cond")
    return [[cond, out]]


def sample(model, positive, negative, latent: dict, sampler="euler", steps=6, cfg=5.0, seed=0,
           scheduler="normal", denoise=1.0, disable_noise=False, start_step=None, last_step=None,
           stop_after=None, on_step=None):
    """comfy.sample.sample on `latent` ({"samples": ...}). `stop_after` N ends the run after N steps of the
    `steps`-step schedule and returns None (memory probes: the schedule, and so every P2P window, is the
    full run's); on_step(step) after every step."""
    import comfy.sample

    callback = None
    if stop_after or on_step:
        def callback(step, *args):
            if on_step:
                on_step(step)
            if stop_after and step + 1 >= stop_after:
                raise _StopSampling

    samples = latent["samples"]
    if disable_noise:
        noise = torch.zeros_like(samples)
    else:
        noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
    with torch.inference_mode():
        try:
            return comfy.sample.sample(
                model, noise, steps, cfg, sampler, scheduler, positive, negative, samples,
                denoise=denoise, disable_noise=disable_noise, start_step=start_step, last_step=last_step,
                seed=seed, disable_pbar=True, callback=callback,
            )
        except _StopSampling:
            return None


def empty_latent(h=8, w=8, batch=1) -> dict:
    return {"samples": torch.zeros(batch, 4, h, w)}
