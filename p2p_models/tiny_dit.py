"""Tiny Flux.1 and SD3 / SD3.5 (MM-DiT) models built from ComfyUI's own classes.

The DiT counterpart of model_build (SD1/SDXL): ComfyUI's supported_models configs and
model_base classes with a tiny unet_config, ComfyUI's real tokenizers (T5 sentencepiece, CLIP-L,
CLIP-G) and text encoder classes (FluxClipModel, SD3ClipModel) at tiny sizes, and a 16-channel
tiny VAE. Weights are seeded random (ComfyUI creates layers with torch.empty). Works on
ComfyUI 0.3.75 and 0.33.0; where their constructors differ it is handled below.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch

from .tiny_unet import TINY_TEXT, TINY_VAE, ModelSpec, build_vae

# T5 keeps its real vocabulary (the real tokenizer emits ids up to 32099); only the width is tiny.
# Flux feeds T5 states to its own txt_in, so any width works: 32 keeps the table at 1M params.
TINY_T5 = {"d_model": 32, "d_kv": 16, "num_heads": 2, "d_ff": 64, "num_layers": 2}
# SD3ClipModel zero-pads CLIP-L+G features to 4096 and concatenates T5's states after them on the
# token axis, so SD3's T5 must be 4096 wide: 132M params (0.5 GB float32), cheap inner layers.
TINY_SD3_T5 = {**TINY_T5, "d_model": 4096}
TINY_CLIP_L = dict(TINY_TEXT)  # hidden 64, 3 layers (SD3 reads layer -2), projection 64
TINY_CLIP_G = dict(TINY_TEXT)
SD3_CONTEXT_WIDTH = 4096  # hard-coded in SD3ClipModel.encode_token_weights

TINY_FLUX_DIT = {
    "image_model": "flux",
    "in_channels": 16,
    "out_channels": 16,
    "vec_in_dim": TINY_CLIP_L["hidden_size"],  # Flux's CLIP-L pooled is unprojected (hidden size)
    "context_in_dim": TINY_T5["d_model"],
    "hidden_size": 64,
    "mlp_ratio": 4.0,
    "num_heads": 2,
    "depth": 2,
    "depth_single_blocks": 2,
    "axes_dim": [8, 12, 12],  # RoPE axes (index, h, w): sum = head dim 32, each even
    "theta": 10000,
    "patch_size": 2,
    "qkv_bias": True,
}
# MMDiT fixes hidden = 64 * depth and heads = depth (head dim 64): depth 2 -> 128 wide, 2 heads.
TINY_SD3_DIT = {
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "depth": 2,
    "input_size": None,
    # SD3 pooled = cat(CLIP-L unprojected pooled, CLIP-G projected pooled).
    "adm_in_channels": TINY_CLIP_L["hidden_size"] + TINY_CLIP_G["projection_dim"],
    "context_embedder_config": {"target": "torch.nn.Linear",
                                "params": {"in_features": SD3_CONTEXT_WIDTH, "out_features": 128}},
    # A fixed sin-cos table cropped to the latent's patch grid, as in the checkpoints (192 there):
    # 16x16 patches = latents up to 32x32 = images up to 256x256 with the 8x VAE.
    "pos_embed_max_size": 16,
    "num_patches": 256,
    "pos_embed_scaling_factor": None,
    "x_block_self_attn_layers": [],
}
TINY_DIT_VAE = {**TINY_VAE, "z_channels": 16}  # 8x, 16 latent channels like the Flux/SD3 VAE


class TinyModels(NamedTuple):
    """(MODEL ModelPatcher, comfy.sd.CLIP, comfy.sd.VAE): unpacks like model_build.build_all's tuple."""

    model: object
    clip: object
    vae: object


def init_weights(module: torch.nn.Module, seed: int, gain: float = 1.0, damp: dict | None = None) -> None:
    """model_build.init_weights' scheme, drawn in place (no 0.5 GB temporary for SD3's T5 table),
    and treating 1-d `*.scale` parameters (Flux's RMSNorm in 0.3.75) as norm gains. Drawn in
    float32 whatever the dtype: a bf16/fp16 build is the float32 one rounded. damp: {parameter
    name: factor} on those parameters' std."""
    gen = torch.Generator().manual_seed(seed)

    def normal_(p, std):
        if p.dtype == torch.float32:
            p.normal_(0.0, std, generator=gen)
        else:
            p.copy_(torch.empty(p.shape).normal_(0.0, std, generator=gen))

    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                normal_(p, gain * (damp or {}).get(name, 1.0) / p[0].numel() ** 0.5)
            elif name.endswith(("weight", "scale")):
                p.fill_(1.0)
            else:
                normal_(p, 0.02)
        for name, b in module.named_buffers():
            if name.endswith("position_ids"):
                b.copy_(torch.arange(b.shape[-1]).expand_as(b))


def _diffusion_model(config_cls, unet_config: dict, seed: int, dtype, manual_cast_dtype):
    import comfy.model_management as mm
    import comfy.model_patcher

    model_config = config_cls({**unet_config, "dtype": torch.float32})
    # What comfy.sd.load_diffusion_model_state_dict does with the dtypes model_management picks.
    model_config.set_inference_dtype(dtype, manual_cast_dtype)
    model = model_config.get_model({}, "", device=torch.device("cpu"))
    dm = model.diffusion_model
    # A smaller gain and a damped output layer keep a random DiT's velocity of unit scale.
    init_weights(dm, seed, gain=0.5, damp={"final_layer.linear.weight": 0.2})
    with torch.no_grad():
        if getattr(dm, "pos_embed", None) is not None:  # MMDiT: the checkpoints' sin-cos table
            from comfy.ldm.modules.diffusionmodules.mmdit import get_2d_sincos_pos_embed

            table = get_2d_sincos_pos_embed(dm.hidden_size, dm.pos_embed_max_size)
            dm.pos_embed.copy_(torch.from_numpy(table).reshape(dm.pos_embed.shape))
    dm.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())


def flux_unet_config(schnell: bool = False) -> dict:
    """The tiny Flux.1 dev (guidance-embedded) or schnell unet_config, for this ComfyUI."""
    from comfy.ldm.flux.model import FluxParams

    cfg = {**TINY_FLUX_DIT, "guidance_embed": not schnell}
    if "txt_ids_dims" in {f.name for f in dataclasses.fields(FluxParams)}:
        cfg["txt_ids_dims"] = []  # 0.33.0: a required field, [] for Flux.1 (no RoPE position on text)
    return cfg


def sd3_unet_config(x_block_self_attn: bool = False) -> dict:
    """The tiny SD3 unet_config; x_block_self_attn: SD3.5 Medium's layout (RMS q/k norm, a second,
    image-only attention in the first half of the blocks: here block 0)."""
    cfg = dict(TINY_SD3_DIT)
    if x_block_self_attn:
        cfg.update(qk_norm="rms", x_block_self_attn_layers=list(range(cfg["depth"] // 2)))
    return cfg


def build_flux_model(seed: int = 0, dtype: torch.dtype = torch.float32, schnell: bool = False,
                     manual_cast_dtype: torch.dtype | None = None):
    import comfy.supported_models as sm

    return _diffusion_model(sm.FluxSchnell if schnell else sm.Flux, flux_unet_config(schnell), seed, dtype, manual_cast_dtype)


def build_sd3_model(seed: int = 0, dtype: torch.dtype = torch.float32, x_block_self_attn: bool = False,
                    manual_cast_dtype: torch.dtype | None = None):
    import comfy.supported_models as sm

    return _diffusion_model(sm.SD3, sd3_unet_config(x_block_self_attn), seed, dtype, manual_cast_dtype)


def _clip(target, model_options: dict, seed: int):
    import comfy.sd

    clip = comfy.sd.CLIP(target=target, model_options={**model_options, "dtype": torch.float32})
    init_weights(clip.cond_stage_model, seed)
    return clip


def build_flux_clip(seed: int = 1):
    """FluxTokenizer (T5 min 256 tokens + CLIP-L) and FluxClipModel: cond [B, >=256, 32] (T5
    states), pooled [B, 64] (CLIP-L)."""
    import comfy.supported_models as sm

    target = sm.Flux(flux_unet_config()).clip_target(state_dict={})
    return _clip(target, {"clip_l_model_config": dict(TINY_CLIP_L), "t5xxl_model_config": dict(TINY_T5)}, seed)


def build_sd3_clip(seed: int = 1, t5: bool = True):
    """SD3Tokenizer (CLIP-L, CLIP-G 77 each, T5 min 77) and SD3ClipModel: cond [B, 77 + T5 tokens,
    4096] (L+G features zero-padded to 4096, then T5), pooled [B, 128]; t5=False: an SD3
    checkpoint without T5 (cond [B, 77, 4096]; the tokenizer still emits "t5xxl")."""
    import comfy.text_encoders.sd3_clip as sd3_clip
    from comfy.supported_models_base import ClipTarget

    # SD3.clip_target enables only the encoders it finds in a state dict: name them instead.
    target = ClipTarget(sd3_clip.SD3Tokenizer, sd3_clip.sd3_clip(clip_l=True, clip_g=True, t5=t5))
    opts = {"clip_l_model_config": dict(TINY_CLIP_L), "clip_g_model_config": dict(TINY_CLIP_G),
            "t5xxl_model_config": dict(TINY_SD3_T5)}
    return _clip(target, opts, seed)


def build_dit_vae(seed: int = 2):
    """AutoencoderKL with 16 latent channels, 8x (EmptySD3LatentImage's latents)."""
    vae = build_vae(ModelSpec(vae=dict(TINY_DIT_VAE)), seed=seed)
    vae.latent_channels = TINY_DIT_VAE["z_channels"]  # a config VAE defaults to 4
    return vae


def build_tiny_flux(seed: int = 0, dtype: torch.dtype = torch.float32, schnell: bool = False,
                    manual_cast_dtype: torch.dtype | None = None) -> TinyModels:
    """Tiny Flux.1 dev (model_base.Flux, FLUX sampling, guidance input; FluxGuidance applies) or
    schnell (FLOW sampling, shift 1, no guidance). Seeds as build_all: model seed, CLIP seed + 1,
    VAE seed + 2."""
    return TinyModels(build_flux_model(seed, dtype, schnell, manual_cast_dtype), build_flux_clip(seed + 1),
                      build_dit_vae(seed + 2))


def build_tiny_sd3(seed: int = 0, dtype: torch.dtype = torch.float32, x_block_self_attn: bool = False,
                   manual_cast_dtype: torch.dtype | None = None, t5: bool = True) -> TinyModels:
    """Tiny SD3 (model_base.SD3, FLOW sampling, shift 3); x_block_self_attn: SD3.5 Medium-like.
    The CLIP and VAE do not depend on x_block_self_attn: one seed gives the same ones for both."""
    return TinyModels(build_sd3_model(seed, dtype, x_block_self_attn, manual_cast_dtype),
                      build_sd3_clip(seed + 1, t5=t5), build_dit_vae(seed + 2))


def latent_tokens(height: int, width: int, patch_size: int = 2) -> int:
    """Image tokens of a [B, 16, height, width] latent: both families pad to the patch size."""
    return math.ceil(height / patch_size) * math.ceil(width / patch_size)
