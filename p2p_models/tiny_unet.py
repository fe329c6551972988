"""Build SD1.x / SDXL-shaped models from ComfyUI's own classes and configs.

Used by the tests (tiny random models), the demo loader (a trained tiny model) and the
benchmarks (real-size UNets with random weights). Weight values never matter here except
where a state dict is loaded; ComfyUI creates layers with torch.empty, so every build is
explicitly initialised from a seed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

TINY_SD1_UNET = {
    "model_channels": 32,
    "channel_mult": [1, 2, 2],
    "num_res_blocks": [1, 1, 1],
    "transformer_depth": [1, 1, 1],
    "transformer_depth_output": [1, 1, 1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "num_head_channels": 16,
    "num_heads": -1,
    "context_dim": 64,
    "use_linear_in_transformer": False,
}
TINY_SDXL_UNET = {  # SDXL's layout: no attention at the first level, deeper below; the linear proj_in/out
    **TINY_SD1_UNET,
    "transformer_depth": [0, 1, 2],
    "transformer_depth_output": [0, 0, 1, 1, 2, 2],
    "context_dim": 128,
    "use_linear_in_transformer": True,
}
TINY_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 2,
    "num_hidden_layers": 3,  # SDXL reads layer -2
    "projection_dim": 64,
}
TINY_VAE = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 64,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,  # GroupNorm(32) needs multiples of 32
    "ch_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "attn_resolutions": [],
    "dropout": 0.0,
}


@dataclass
class ModelSpec:
    """Architecture of a model family member; `arch` is "sd1" or "sdxl"."""

    arch: str = "sd1"
    unet: dict = field(default_factory=lambda: dict(TINY_SD1_UNET))
    text_l: dict | None = field(default_factory=lambda: dict(TINY_TEXT))
    text_g: dict | None = None
    vae: dict | None = field(default_factory=lambda: dict(TINY_VAE))
    v_prediction: bool = False

    @staticmethod
    def tiny(arch: str) -> ModelSpec:
        if arch == "sd1":
            return ModelSpec()
        if arch == "sdxl":
            return ModelSpec(
                arch="sdxl",
                unet=dict(TINY_SDXL_UNET),
                text_l=dict(TINY_TEXT),
                text_g={**TINY_TEXT, "hidden_size": 64},
            )
        raise ValueError(f"unknown arch {arch!r}")


def _unet_config(spec: ModelSpec) -> dict:
    cfg = {
        "use_checkpoint": False,
        "image_size": 32,
        "out_channels": 4,
        "in_channels": 4,
        "use_spatial_transformer": True,
        "legacy": False,
        "use_temporal_attention": False,
        "use_temporal_resblock": False,
        "adm_in_channels": None,
        "num_classes": None,
        "dtype": torch.float32,
    }
    cfg.update(copy.deepcopy(spec.unet))
    if spec.arch == "sdxl":
        cfg["num_classes"] = "sequential"
        cfg["adm_in_channels"] = spec.text_g["hidden_size"] + 6 * 256  # pooled + size embeddings
    return cfg


def _model_config(spec: ModelSpec, dtype: torch.dtype = torch.float32, manual_cast_dtype: torch.dtype | None = None):
    import comfy.supported_models as sm

    config_cls = sm.SDXL if spec.arch == "sdxl" else sm.SD15
    model_config = config_cls(_unet_config(spec))
    # What comfy.sd.load_diffusion_model_state_dict does with the dtypes model_management picks.
    model_config.set_inference_dtype(dtype, manual_cast_dtype)
    return model_config


def _text_options(spec: ModelSpec) -> dict:
    opts = {}
    if spec.text_l is not None:
        opts["clip_l_model_config"] = dict(spec.text_l)
    if spec.text_g is not None:
        opts["clip_g_model_config"] = dict(spec.text_g)
    return opts


def init_weights(module: torch.nn.Module, seed: int, gain: float = 1.0) -> None:
    """Deterministic init for modules ComfyUI created with torch.empty."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (gain / fan_in**0.5))
            elif name.endswith("weight"):  # norms
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
        for name, b in module.named_buffers():
            if name.endswith("position_ids"):
                b.copy_(torch.arange(b.shape[-1]).expand_as(b))


def build_unet(spec: ModelSpec, state_dict: dict | None = None, seed: int = 0,
               dtype: torch.dtype = torch.float32, manual_cast_dtype: torch.dtype | None = None):
    """A ComfyUI ModelPatcher around BaseModel/SDXL built from `spec`.

    dtype / manual_cast_dtype: the UNet's weight dtype and ComfyUI's manual-cast compute dtype
    (None: compute in the weight dtype), set as ComfyUI sets them when it loads a checkpoint
    (`model_config.set_inference_dtype`, then `comfy.ops.pick_operations`). The weights are the
    float32 initialisation rounded to `dtype`."""
    import comfy.model_management as mm
    import comfy.model_patcher
    from comfy.model_base import ModelType

    model_config = _model_config(spec, dtype, manual_cast_dtype)
    model = model_config.get_model({}, "", device=torch.device("cpu"))
    if spec.v_prediction:
        import comfy.model_sampling as ms

        model.model_type = ModelType.V_PREDICTION

        class _VSampling(ms.ModelSamplingDiscrete, ms.V_PREDICTION):
            pass

        model.model_sampling = _VSampling(model_config)
    if state_dict is None:
        # A smaller gain keeps a random UNet's predictions of unit scale, like a trained one.
        init_weights(model.diffusion_model, seed, gain=0.5)
        with torch.no_grad():
            model.diffusion_model.out[-1].weight.mul_(0.2)
    else:
        _load_strict(model.diffusion_model, state_dict, "UNet")
    model.diffusion_model.eval()
    return comfy.model_patcher.ModelPatcher(
        model, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )


def build_clip(spec: ModelSpec, state_dict: dict | None = None, seed: int = 1):
    """A comfy.sd.CLIP with ComfyUI's real tokenizer(s) and a text encoder of `spec`'s size."""
    import comfy.sd

    target = _model_config(spec).clip_target(state_dict={})
    clip = comfy.sd.CLIP(target=target, model_options={**_text_options(spec), "dtype": torch.float32})
    enc = clip.cond_stage_model
    if state_dict is None:
        init_weights(enc, seed)
    else:
        _load_strict(enc, state_dict, "text encoder")
    return clip


def build_vae(spec: ModelSpec, state_dict: dict | None = None, seed: int = 2, downscale: int | None = None):
    """A comfy.sd.VAE around AutoencoderKL with `spec.vae` as its ddconfig."""
    import comfy.sd

    cfg = dict(spec.vae)
    params = {"embed_dim": cfg["z_channels"], "ddconfig": cfg}
    if state_dict is None:
        from comfy.ldm.models.autoencoder import AutoencoderKL

        tmp = AutoencoderKL(**params)
        init_weights(tmp, seed)
        state_dict = tmp.state_dict()
    vae = comfy.sd.VAE(sd=state_dict, config={"params": params})
    _check_loaded(vae.first_stage_model, state_dict, "VAE")
    ratio = downscale or 2 ** (len(cfg["ch_mult"]) - 1)
    vae.downscale_ratio = vae.upscale_ratio = ratio  # a config VAE defaults to 8x
    return vae


def build_all(spec: ModelSpec, seed: int = 0, dtype: torch.dtype = torch.float32,
              manual_cast_dtype: torch.dtype | None = None):
    """(MODEL, CLIP, VAE); dtype / manual_cast_dtype apply to the UNet (see build_unet)."""
    unet = build_unet(spec, seed=seed, dtype=dtype, manual_cast_dtype=manual_cast_dtype)
    return unet, build_clip(spec, seed=seed + 1), build_vae(spec, seed=seed + 2)


def _load_strict(module: torch.nn.Module, sd: dict, what: str) -> None:
    missing, unexpected = module.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"{what} weights do not match the architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")


def _check_loaded(module: torch.nn.Module, sd: dict, what: str) -> None:
    expected = set(module.state_dict().keys())
    missing = sorted(expected - set(sd.keys()))
    if missing:
        raise RuntimeError(f"{what} weights miss keys: {missing[:5]}")
