"""Tiny Chroma and Chroma Radiance (MM-DiT) models built from ComfyUI's own classes.

ComfyUI's supported_models configs (Chroma, ChromaRadiance) and model_base classes with a tiny
unet_config, ComfyUI's real PixArt T5 tokenizer and text encoder class (T5 only, no padding) at a tiny
width, the 16-channel tiny VAE (Chroma) or ComfyUI's pixel-space VAE (Radiance). Weights are seeded
random, as tiny_dit's. Works on ComfyUI 0.3.75 and 0.33.0 (0.33.0's extra required fields are filled as
its model detection fills them).
"""

from __future__ import annotations

import dataclasses

import torch

from .tiny_dit import TINY_FLUX_DIT, TINY_T5, TinyModels, _clip, _diffusion_model, build_dit_vae

# Chroma: Flux.1's blocks without modulation layers (an Approximator makes every block's modulation from
# the timestep), T5 only, real CFG. img_in takes the 2x2 patch of the 16 latent channels (64), the
# Approximator a 64-wide input (16 timestep + 16 guidance + 32 index features) out to the hidden width.
TINY_CHROMA_DIT = {
    **{k: v for k, v in TINY_FLUX_DIT.items() if k != "vec_in_dim"},  # no pooled input: T5 only
    "image_model": "chroma",
    "in_channels": 64,
    "out_channels": 64,
    "in_dim": 64,
    "out_dim": TINY_FLUX_DIT["hidden_size"],  # the hidden width: the Approximator's output is every block's modulation
    "hidden_dim": 32,
    "n_layers": 2,
}
# Chroma Radiance: the same blocks on 16x16 patches of RGB pixels (no VAE), a NeRF head back to pixels.
TINY_RADIANCE_DIT = {
    **TINY_CHROMA_DIT,
    "image_model": "chroma_radiance",
    "in_channels": 3,
    "out_channels": 3,
    "patch_size": 16,
    "nerf_hidden_size": 16,
    "nerf_mlp_ratio": 2,
    "nerf_depth": 2,
    "nerf_max_freqs": 8,
    "nerf_tile_size": 0,
    "nerf_final_head_type": "conv",
    "nerf_embedder_dtype": torch.float32,
}
RADIANCE_PATCH = TINY_RADIANCE_DIT["patch_size"]


def chroma_unet_config(radiance: bool = False) -> dict:
    """The tiny Chroma (or Chroma Radiance) unet_config, for this ComfyUI."""
    if radiance:
        from comfy.ldm.chroma_radiance.model import ChromaRadianceParams as params
    else:
        from comfy.ldm.chroma.model import ChromaParams as params

    cfg = dict(TINY_RADIANCE_DIT if radiance else TINY_CHROMA_DIT)
    # 0.33.0's required fields, as its model detection fills them for Chroma (unused by Chroma's forward)
    defaults = {"txt_ids_dims": [], "vec_in_dim": 768, "use_x0": False, "use_sequential_txt_ids": False}
    cfg.update({k: v for k, v in defaults.items() if k in {f.name for f in dataclasses.fields(params)}})
    return cfg


def build_chroma_model(seed: int = 0, dtype: torch.dtype = torch.float32, radiance: bool = False,
                       manual_cast_dtype: torch.dtype | None = None):
    import comfy.supported_models as sm

    config = sm.ChromaRadiance if radiance else sm.Chroma
    return _diffusion_model(config, chroma_unet_config(radiance), seed, dtype, manual_cast_dtype)


def build_chroma_clip(seed: int = 1):
    """Chroma's text encoder (ComfyUI's PixArt T5: T5 only, no padding: a prompt is its tokens and '</s>'):
    cond [B, tokens, 32], no pooled output."""
    import comfy.supported_models as sm

    target = sm.Chroma(chroma_unet_config()).clip_target(state_dict={})
    return _clip(target, {"t5xxl_model_config": dict(TINY_T5)}, seed)


def build_pixel_vae():
    """Chroma Radiance's VAE: ComfyUI's pixel-space conversion (IMAGE pixels as the latent, in -1..1)."""
    import comfy.sd

    return comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})


def build_tiny_chroma(seed: int = 0, dtype: torch.dtype = torch.float32, radiance: bool = False,
                      manual_cast_dtype: torch.dtype | None = None) -> TinyModels:
    """Tiny Chroma (model_base.Chroma: FLUX sampling, real CFG) with the 16-channel VAE, or Chroma
    Radiance (pixel space: 3 channels, 16x16 patches) with the pixel-space VAE. Seeds as build_tiny_flux:
    model seed, CLIP seed + 1, VAE seed + 2."""
    vae = build_pixel_vae() if radiance else build_dit_vae(seed + 2)
    return TinyModels(build_chroma_model(seed, dtype, radiance, manual_cast_dtype), build_chroma_clip(seed + 1), vae)
