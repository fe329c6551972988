"""A tiny Qwen-Image built from ComfyUI's own classes: supported_models.QwenImage with a tiny
unet_config (model_base.QwenImage, QwenImageTransformer2DModel), ComfyUI's Qwen-Image text encoder
(text_encoders.qwen_image: QwenImageTokenizer with the shipped qwen25_tokenizer and its chat template,
QwenImageTEModel around llama.Qwen25_7BVLI) at a tiny width with the real 152k vocabulary, and a tiny
Wan 2.1 VAE (comfy.sd.VAE detects it from its state dict, as from the real file).

Left out: Qwen2.5-VL's vision tower. Its size is fixed in ComfyUI's class (1280 wide, 32 layers: 658M
parameters), it only reads images (Qwen-Image-Edit's prompts), and a text-only prompt never calls it; the
text model is built on the meta device, the tower dropped, the rest materialised on the CPU.
"""

from __future__ import annotations

import torch

from .tiny_dit import TinyModels, _diffusion_model, init_weights

# Qwen25_7BVLI_Config fixes head_dim 128 (a class attribute); the width and depth are tiny.
TINY_QWEN25 = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 1,
               "num_key_value_heads": 1}
TINY_QWEN_DIT = {
    "image_model": "qwen_image",
    "patch_size": 2,
    "in_channels": 64,  # 16 latent channels x 2x2 patch
    "out_channels": 16,
    "num_layers": 2,
    "attention_head_dim": 32,
    "num_attention_heads": 2,
    "joint_attention_dim": TINY_QWEN25["hidden_size"],
    "axes_dims_rope": [8, 12, 12],  # RoPE axes (frame, h, w): sum = head dim 32
}
TINY_WAN_VAE_DIM = 8  # Wan 2.1 VAE base width (96 in the real file): 8, 16, 32, 32


def build_qwen_model(seed: int = 0, dtype: torch.dtype = torch.float32, manual_cast_dtype: torch.dtype | None = None):
    import comfy.supported_models as sm

    return _diffusion_model(sm.QwenImage, dict(TINY_QWEN_DIT), seed, dtype, manual_cast_dtype)


def build_qwen_clip(seed: int = 1):
    """QwenImageTokenizer (chat template, no padding) and QwenImageTEModel: cond [B, user tokens + 5, 32]
    (the template's system part trimmed after encoding, as ComfyUI does)."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    import comfy.supported_models as sm

    target = sm.QwenImage(dict(TINY_QWEN_DIT)).clip_target(state_dict={})
    clip = comfy.sd.CLIP(target=target, model_options={"dtype": torch.float32, "initial_device": torch.device("meta"),
                                                       "qwen25_7b_model_config": dict(TINY_QWEN25)})
    model = clip.cond_stage_model
    model.qwen25_7b.transformer.visual = torch.nn.Module()  # the vision tower: see the module's doc
    model.to_empty(device=torch.device("cpu"))
    init_weights(model, seed)
    device = mm.text_encoder_device()
    clip.patcher = comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=mm.text_encoder_offload_device())
    clip.patcher.is_clip = True
    if hasattr(clip.patcher, "hook_mode"):
        import comfy.hooks

        clip.patcher.hook_mode = comfy.hooks.EnumHookMode.MinVram
    return clip


def build_qwen_vae(seed: int = 2):
    """comfy.sd.VAE around a tiny Wan 2.1 VAE (16 latent channels, 8x, 3D: images are 1-frame videos)."""
    import comfy.sd
    from comfy.ldm.wan.vae import WanVAE

    tmp = WanVAE(dim=TINY_WAN_VAE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True], dropout=0.0)
    init_weights(tmp, seed)
    return comfy.sd.VAE(sd=tmp.state_dict())


def build_tiny_qwen(seed: int = 0, dtype: torch.dtype = torch.float32,
                    manual_cast_dtype: torch.dtype | None = None) -> TinyModels:
    """Tiny Qwen-Image (model_base.QwenImage, FLUX sampling type, shift 1.15; ModelSamplingAuraFlow sets
    the shift as ComfyUI's example does). Seeds as build_all: model seed, CLIP seed + 1, VAE seed + 2."""
    return TinyModels(build_qwen_model(seed, dtype, manual_cast_dtype), build_qwen_clip(seed + 1),
                      build_qwen_vae(seed + 2))
