"""Models and conditionings for the benchmarks.

Real-size UNets are built from ComfyUI's own model configs: `comfy.supported_models.SD15` /
`SDXL` `unet_config` plus the keys `comfy.model_detection.detect_unet_config` produces for a real
checkpoint (checked: `model_config_from_unet_config` maps the finished dict back to SD15 / SDXL).
Weights are random (cost depends on the architecture, not on weight values).

Real-size conditioning: random text-context tensors of the real width ([B, 77, 768] for SD1.5,
[B, 77, 2048] plus pooled [B, 1280] for SDXL). Prompt-to-Prompt also needs the prompts' token
layout (a PromptSet); it comes from ComfyUI's real CLIP tokenizer inside a TINY text encoder
(`ModelSpec.tiny`), whose encodings are then replaced by the random real-width tensors. A real
CLIP-L / OpenCLIP-G forward pass is not part of sampling, so it is not benchmarked.
"""

from __future__ import annotations

import contextlib

import torch

SOURCE = "a photo of a cat sitting on a wooden chair"
EDIT = "a photo of a dog sitting on a wooden chair"  # word swap, same token count
NEGATIVE = ""

# Keys comfy.model_detection.detect_unet_config produces for an SD1.5 / SDXL base checkpoint
# (ComfyUI 0.3.75, also listed in model_detection.unet_config_from_diffusers_unet) that the
# supported_models classes do not carry themselves.
_SD15_DETECTED = {
    "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "transformer_depth_middle": 1,
}
_SDXL_DETECTED = {
    "num_res_blocks": [2, 2, 2],
    "channel_mult": [1, 2, 4],
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "transformer_depth_middle": 10,
}

# The pack's trained demo model (models/demo/): its prompts must use the training vocabulary.
DEMO_SOURCE = "a big red circle on the left and a small blue square on the right"
DEMO_EDIT = "a big red star on the left and a small blue square on the right"

REAL_MODELS = ("sd15", "sdxl")
TINY_MODELS = ("tiny-sd1", "tiny-sdxl", "demo")
MODELS = TINY_MODELS + REAL_MODELS


def arch_of(name: str) -> str:
    return "sdxl" if name in ("sdxl", "tiny-sdxl") else "sd1"


def real_spec(name: str):
    """ModelSpec of the real-size SD1.5 or SDXL UNet (no text encoder, no VAE)."""
    import comfy.supported_models as sm

    from p2p_attention.model_build import ModelSpec

    if name == "sd15":
        unet = {**sm.SD15.unet_config, **sm.SD15.unet_extra_config, **_SD15_DETECTED}
        unet.pop("adm_in_channels", None)  # None for SD1.5; model_build sets it
        unet.pop("use_temporal_attention", None)
        return ModelSpec(arch="sd1", unet=unet, text_l=None, text_g=None, vae=None)
    if name == "sdxl":
        extra = {k: v for k, v in sm.SDXL.unet_extra_config.items()}  # num_heads -1, num_head_channels 64
        unet = {**sm.SDXL.unet_config, **extra, **_SDXL_DETECTED}
        unet.pop("adm_in_channels", None)  # model_build derives 1280 + 6 * 256 = 2816 from text_g
        unet.pop("use_temporal_attention", None)
        return ModelSpec(arch="sdxl", unet=unet, text_l=None, text_g={"hidden_size": 1280}, vae=None)
    raise ValueError(f"not a real-size model: {name!r}")


def check_detected(name: str, spec) -> str:
    """The ComfyUI model class that model detection picks for this config (must be SD15 / SDXL)."""
    import comfy.model_detection

    from p2p_attention.model_build import _unet_config

    cfg = comfy.model_detection.model_config_from_unet_config(_unet_config(spec))
    got = type(cfg).__name__ if cfg is not None else "none"
    want = {"sd15": "SD15", "sdxl": "SDXL"}[name]
    if got != want:
        raise RuntimeError(f"{name}: ComfyUI's model detection maps this config to {got}, not {want}")
    return got


def fast_init(module: torch.nn.Module, seed: int, gain: float = 1.0) -> None:
    """Like model_build.init_weights (same scales), but fills from one tiled random pool: a
    2.6 G-parameter SDXL UNet initialises at memcpy speed instead of ~1 min of randn on one core.
    The pool length is prime, so rows of a weight matrix are not copies of each other."""
    gen = torch.Generator().manual_seed(seed)
    pool = torch.randn(1_000_003, generator=gen)
    offset = 0
    with torch.no_grad():
        for name, p in module.named_parameters():
            flat = p.view(-1)
            if p.ndim >= 2 or not name.endswith("weight"):
                scale = gain / p[0].numel() ** 0.5 if p.ndim >= 2 else 0.02
                n = flat.numel()
                i = 0
                while i < n:
                    start = (offset + i) % pool.numel()
                    take = min(n - i, pool.numel() - start)
                    flat[i : i + take].copy_(pool[start : start + take])
                    i += take
                flat.mul_(scale)
                offset += 7919 + n
            else:  # norm weights
                p.fill_(1.0)


@contextlib.contextmanager
def _patched_init():
    from p2p_attention import model_build

    original = model_build.init_weights
    model_build.init_weights = fast_init
    try:
        yield
    finally:
        model_build.init_weights = original


def count_params(patcher) -> int:
    return sum(p.numel() for p in patcher.get_model_object("diffusion_model").parameters())


def build(name: str, seed: int = 0):
    """-> dict(model=ModelPatcher, positive=[src, edit] CONDITIONING, prompts=PromptSet,
    negative=CONDITIONING, clip=CLIP or None, info=dict)."""
    from p2p_attention.conditioning import encode_prompt_set
    from p2p_attention.model_build import ModelSpec, build_clip, build_unet

    if name == "demo":
        return _build_demo()
    arch = arch_of(name)
    tiny = ModelSpec.tiny(arch)
    clip = build_clip(tiny, seed=seed + 1)
    positive, prompts = encode_prompt_set(clip, SOURCE, [EDIT])
    info = {"model": name, "arch": arch}
    if name in TINY_MODELS:
        model = build_unet(tiny, seed=seed)
        out = clip.encode_from_tokens(clip.tokenize(NEGATIVE), return_pooled=True, return_dict=True)
        cond = out.pop("cond")
        negative = [[cond, out]]
        info["conditioning"] = "tiny text encoder (real tokenizer)"
    else:
        spec = real_spec(name)
        info["detected_as"] = check_detected(name, spec)
        with _patched_init():
            model = build_unet(spec, seed=seed)
        width = spec.unet["context_dim"]
        gen = torch.Generator().manual_seed(seed + 7)
        tokens = prompts.length
        cond, extra = positive[0]
        extra = dict(extra)
        items = cond.shape[0]
        cond = torch.randn(items, tokens, width, generator=gen)
        neg_extra = {}
        if arch == "sdxl":
            extra["pooled_output"] = torch.randn(items, 1280, generator=gen)
            neg_extra["pooled_output"] = torch.randn(1, 1280, generator=gen)
        positive = [[cond, extra]]
        negative = [[torch.randn(1, tokens, width, generator=gen), neg_extra]]
        info["conditioning"] = f"random context [B, {tokens}, {width}]" + (
            ", pooled [B, 1280]" if arch == "sdxl" else ""
        ) + "; PromptSet from the tiny CLIP's real tokenizer"
    info["unet_params_M"] = round(count_params(model) / 1e6, 1)
    info["context_dim"] = int(positive[0][0].shape[-1])
    return {"model": model, "positive": positive, "prompts": prompts, "negative": negative, "clip": clip,
            "info": info}


def _build_demo():
    """The trained demo model: a realistic case for null-text's early stop (random weights never stop;
    the shipped checkpoint does not either, see benchmarks/README.md)."""
    from p2p_attention.conditioning import encode_prompt_set
    from p2p_attention.demo_model import load_demo_model

    model, clip, _ = load_demo_model()
    positive, prompts = encode_prompt_set(clip, DEMO_SOURCE, [DEMO_EDIT])
    out = clip.encode_from_tokens(clip.tokenize(NEGATIVE), return_pooled=True, return_dict=True)
    negative = [[out.pop("cond"), out]]
    info = {"model": "demo", "arch": "sd1", "conditioning": "the demo model's trained text encoder",
            "unet_params_M": round(count_params(model) / 1e6, 1), "context_dim": int(positive[0][0].shape[-1])}
    return {"model": model, "positive": positive, "prompts": prompts, "negative": negative, "clip": clip,
            "info": info, "trained": True}
