"""The family graph tests' shared graph: a tiny model's loader -> P2P Prompt Pair -> P2P Latent Batch -> a
stack of P2P controls -> P2P Apply -> a stock sampler -> SaveLatent ("lat"), VAEDecode + SaveImage ("img"),
P2P Attention Maps ("maps", its mask "mask"); and the checks every family's run of it shares. Each family's
test file keeps what is its own (its loader, sampling nodes, latent, controls, and its own assertions)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import safetensors.torch
import torch
from comfy_graph import Graph, Node
from comfy_inprocess import inprocess_image_path, output_images
from PIL import Image

WIDTH, HEIGHT = 96, 64  # not square: a swapped h/w shows
SRC = "a red circle on the left"
WINDOWS = {"cross_replace": "0.8", "self_replace": "0.5"}
BLEND = {"words": "circle", "subtract": "", "threshold": 0.5, "subtract_threshold": 0.3, "start_blend": 0.0,
         "dilation": 0}
SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced")

ModelHook = Callable[[Graph, list], "Node | list"]


def edit_stack(g: Graph, prompts, base: str | None = "P2PWordSwap", weights: str | None = None,
               blend: bool = True) -> Node:
    """P2P controls on `prompts`: `base` (P2PWordSwap / P2PRefine, or None), then P2PReweight with `weights`,
    then P2PLocalBlend on "circle" (blend), each stacked on the one before."""
    edit = g.node(base, prompts=prompts, **WINDOWS) if base else None
    if weights:
        edit = g.node("P2PReweight", prompts=prompts, weights=weights, **WINDOWS, **({"edit": edit} if edit else {}))
    if blend:
        edit = g.node("P2PLocalBlend", prompts=prompts, **BLEND, edit=edit)
    return edit


def stock_sampler(g: Graph, sampler: str, model, positive, negative, latent, cfg: float, seed: int = 2,
                  steps: int = 4, guider=None, sigmas=None) -> Node:
    """KSampler (simple), KSamplerAdvanced (beta) or SamplerCustomAdvanced (euler; `guider` or a CFGGuider,
    `sigmas` or BasicScheduler simple) on the same seed and steps."""
    common = {"model": model, "positive": positive, "negative": negative, "latent_image": latent, "cfg": cfg}
    if sampler == "KSampler":
        return g.node("KSampler", **common, seed=seed, steps=steps, sampler_name="euler", scheduler="simple",
                      denoise=1.0)
    if sampler == "KSamplerAdvanced":
        return g.node("KSamplerAdvanced", **common, add_noise="enable", noise_seed=seed, steps=steps,
                      sampler_name="euler", scheduler="beta", start_at_step=0, end_at_step=10000,
                      return_with_leftover_noise="disable")
    assert sampler == "SamplerCustomAdvanced", sampler
    guider = guider or g.node("CFGGuider", model=model, positive=positive, negative=negative, cfg=cfg)
    sigmas = sigmas or g.node("BasicScheduler", model=model, scheduler="simple", steps=steps, denoise=1.0)
    return g.node("SamplerCustomAdvanced", noise=g.node("RandomNoise", noise_seed=seed), guider=guider,
                  sampler=g.node("KSamplerSelect", sampler_name="euler"), sigmas=sigmas, latent_image=latent)


def p2p_graph(loader: str, loader_inputs: dict, edits: str, prefix: str, cfg: float, *, sampler: str = "KSampler",
              base: str | None = "P2PWordSwap", weights: str | None = None, blend: bool = True,
              empty_latent: str = "EmptySD3LatentImage", model_hook: ModelHook | None = None,
              sampled_hook: ModelHook | None = None, guidance: float | None = None, negative: bool = True,
              basic_guider: bool = False, sigmas: Callable[[Graph, list], Node] | None = None) -> Graph:
    """The family graph on SRC -> `edits`. model_hook: the family's sampling nodes on the loaded MODEL (before
    P2P Apply); sampled_hook: on P2P Apply's MODEL. guidance: FluxGuidance on the positive. negative: a
    CLIPTextEncode of "" (else the positive, as guidance-distilled models sample at cfg 1). basic_guider:
    SamplerCustomAdvanced through BasicGuider; sigmas: its scheduler node (default BasicScheduler)."""
    g = Graph()
    m = g.node(loader, **loader_inputs)
    model = model_hook(g, m[0]) if model_hook else m[0]
    pair = g.node("P2PPromptPair", clip=m[1], source=SRC, edits=edits)
    pos = g.node("FluxGuidance", conditioning=pair[0], guidance=guidance)[0] if guidance else pair[0]
    neg = g.node("CLIPTextEncode", clip=m[1], text="")[0] if negative else pos
    lat = g.node("P2PLatentBatch", latent=g.node(empty_latent, width=WIDTH, height=HEIGHT, batch_size=1),
                 prompts=pair[1])
    applied = g.node("P2PApply", model=model, edit=edit_stack(g, pair[1], base, weights, blend), self_blocks="auto")
    sampled = sampled_hook(g, applied[0]) if sampled_hook else applied[0]
    guider = g.node("BasicGuider", model=sampled, conditioning=pos) if basic_guider else None
    out = stock_sampler(g, sampler, sampled, pos, neg, lat, cfg, guider=guider,
                        sigmas=sigmas(g, sampled) if sigmas else None)
    g.node("SaveLatent", _id="lat", samples=out[0], filename_prefix=prefix)
    img = g.node("VAEDecode", samples=out[0], vae=m[2])
    g.node("SaveImage", _id="img", images=img, filename_prefix=prefix)
    maps = g.node("P2PAttentionMaps", attention_store=applied[1], samples=out[0], prompt_index=1, words="circle",
                  threshold=0.0, image=img)
    g.node("SaveImage", _id="maps", images=maps[0], filename_prefix=f"{prefix}_maps")
    g.node("SaveImage", _id="mask", images=g.node("MaskToImage", mask=maps[1]), filename_prefix=f"{prefix}_mask")
    return g


def model_sampling(g: Graph, family: str, model) -> Node:
    """The family's own sampling node: ModelSamplingFlux (at the graph's size) on Flux.1, else ModelSamplingSD3."""
    if family.startswith("flux"):
        return g.node("ModelSamplingFlux", model=model, max_shift=1.15, base_shift=0.5, width=WIDTH, height=HEIGHT)
    return g.node("ModelSamplingSD3", model=model, shift=3.0)


def saved_latent(outputs, node: str = "lat") -> torch.Tensor:
    (saved,) = outputs[node]["latents"]
    return safetensors.torch.load_file(str(inprocess_image_path(saved)))["latent_tensor"]


def image_array(outputs, node: str) -> np.ndarray:
    """The last image a SaveImage node saved (a batch's last item: the last edit)."""
    return np.asarray(Image.open(inprocess_image_path(outputs[node]["images"][-1])))


def check_p2p_outputs(outputs, latent_shape: tuple) -> torch.Tensor:
    """What every family's P2P graph gives: its three images, the latent of `latent_shape` (finite), the decoded
    image at WIDTH x HEIGHT, the word's soft mask (peak 1, not flat) and maps that are not flat. The latent."""
    assert sorted(dict(output_images(outputs))) == ["img", "maps", "mask"]
    latent = saved_latent(outputs)
    assert latent.shape == latent_shape and torch.isfinite(latent).all()
    assert image_array(outputs, "img").shape == (HEIGHT, WIDTH, 3)
    mask = image_array(outputs, "mask")
    assert mask.shape[:2] == (HEIGHT, WIDTH) and mask.max() == 255 and mask.std() > 0
    maps = image_array(outputs, "maps")
    assert maps.shape[0] > 0 and maps.std() > 0
    return latent
