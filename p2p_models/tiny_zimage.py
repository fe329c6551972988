"""Tiny Z-Image (NextDiT, config ZImage) built from ComfyUI's own classes.

ComfyUI's supported_models.ZImage config and model_base.Lumina2 class with a tiny unet_config in
Z-Image's layout (what model_detection gives a Z-Image checkpoint: q/k RMS norm, z_image_modulation,
time_scale 1000, caption and image tokens padded to a multiple of 32 with cap_pad_token /
x_pad_token), ComfyUI's z_image text encoder classes (ZImageTokenizer: the qwen25 tokenizer shipped in
ComfyUI and its chat template; Qwen3_4BModel) with a tiny Qwen3 (the real 151936-row vocabulary at
width 32) and the 16-channel tiny VAE of tiny_dit (Z-Image uses the Flux VAE). Weights are seeded
random. Works on ComfyUI 0.3.75 and 0.33.0.
"""

from __future__ import annotations

import torch

from .tiny_dit import TinyModels, _clip, _diffusion_model, build_dit_vae

# Qwen3: the real vocabulary (the tokenizer emits ids up to 151935), tiny width. head_dim is fixed
# at 128 by Qwen3_4BConfig (not a field); ComfyUI reads the second-to-last hidden layer.
TINY_QWEN3 = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2,
              "num_key_value_heads": 1}

TINY_ZIMAGE_DIT = {
    "image_model": "lumina2",
    "patch_size": 2,
    "in_channels": 16,
    "dim": 256,  # z_image_modulation takes a 256-wide time embedding into min(dim, 256): dim >= 256
    "cap_feat_dim": TINY_QWEN3["hidden_size"],
    "n_layers": 2,
    "n_refiner_layers": 1,
    "n_heads": 4,
    "n_kv_heads": 4,
    "qk_norm": True,
    "axes_dims": [16, 24, 24],  # RoPE axes (caption index, h, w): sum = head dim 64
    "axes_lens": [1536, 512, 512],
    "rope_theta": 256.0,
    "ffn_dim_multiplier": 8.0 / 3.0,
    "z_image_modulation": True,
    "time_scale": 1000.0,
    "pad_tokens_multiple": 32,
}


def build_zimage_model(seed: int = 0, dtype: torch.dtype = torch.float32, manual_cast_dtype: torch.dtype | None = None):
    import comfy.supported_models as sm

    patcher = _diffusion_model(sm.ZImage, dict(TINY_ZIMAGE_DIT), seed, dtype, manual_cast_dtype)
    dm = patcher.model.diffusion_model
    with torch.no_grad():  # the pad tokens as learned vectors of the checkpoints' scale
        gen = torch.Generator().manual_seed(seed + 100)
        for name in ("cap_pad_token", "x_pad_token"):
            p = getattr(dm, name)
            p.copy_(torch.randn(p.shape, generator=gen).to(p.dtype))
    return patcher


def build_zimage_clip(seed: int = 1):
    """ZImageTokenizer (Qwen2 BPE, chat template) and the Z-Image Qwen3 text encoder: cond [B, tokens, 32]."""
    import comfy.supported_models as sm

    target = sm.ZImage(dict(TINY_ZIMAGE_DIT)).clip_target(state_dict={})
    return _clip(target, {"qwen3_4b_model_config": dict(TINY_QWEN3)}, seed)


def build_tiny_zimage(seed: int = 0, dtype: torch.dtype = torch.float32,
                      manual_cast_dtype: torch.dtype | None = None) -> TinyModels:
    """Tiny Z-Image (model_base.Lumina2, FLOW sampling, shift 3: ModelSamplingAuraFlow applies). Seeds as
    build_all: model seed, CLIP seed + 1, VAE seed + 2."""
    return TinyModels(build_zimage_model(seed, dtype, manual_cast_dtype), build_zimage_clip(seed + 1),
                      build_dit_vae(seed + 2))
