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
import dataclasses
import importlib

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
# MM-DiT: full-width Flux.1 and SD3.5 Large with fewer blocks (see DIT_BLOCKS), and the test models.
DIT_REAL = ("flux", "sd35-large")
DIT_TINY = ("tiny-flux", "tiny-sd3")
DIT_MODELS = DIT_REAL + DIT_TINY
# The newer MM-DiT families (benchmarks/bench_families.py): full width, few blocks (FAMILY_BLOCKS), and the
# families' tiny test models (p2p_models.tiny_flux2 / tiny_zimage / tiny_qwen / tiny_chroma / tiny_lumina2).
FAMILY_REAL = ("flux2-klein", "zimage", "qwen-image", "chroma", "flux2-dev", "lumina2")
FAMILY_TINY = ("tiny-flux2", "tiny-zimage", "tiny-qwen", "tiny-chroma", "tiny-flux2-dev", "tiny-lumina2")
FAMILY_MODELS = FAMILY_REAL + FAMILY_TINY
MODELS = TINY_MODELS + REAL_MODELS + DIT_MODELS + FAMILY_MODELS

# Full depth does not fit: Flux.1 (19 double + 38 single blocks) is 11.9 G parameters, 44 GiB in
# float32; SD3.5 Large (38 joint blocks) 8.1 G, 30 GiB; this machine has 24 GiB. Full WIDTH, fewer
# blocks: the per-block work (what P2P adds to, in every block alike) is the real one.
DIT_BLOCKS = {"flux": (2, 4), "sd35-large": (4,)}  # Flux: (double, single), 1:2 as in Flux.1; SD3.5: joint
SD35_LARGE_DEPTH = 38  # MMDiT's hidden = 64 * depth, heads = depth: 2432 wide, 38 heads of 64
DIT_CFG = {"flux": 1.0, "sd3": 4.5}  # Flux.1 dev is guidance-distilled (no uncond); SD3.5's default cfg
FLUX_GUIDANCE = 3.5


def arch_of(name: str) -> str:
    if name in FAMILY_MODELS:
        return FAMILY_ARCH[name.removeprefix("tiny-")]
    if name in ("flux", "tiny-flux"):
        return "flux"
    if name in ("sd35-large", "tiny-sd3"):
        return "sd3"
    return "sdxl" if name in ("sdxl", "tiny-sdxl") else "sd1"


def latent_channels(name: str) -> int:
    if name in FAMILY_MODELS:
        return FAMILY_LATENT[arch_of(name)][0]
    return 16 if name in DIT_MODELS else 4


def real_spec(name: str):
    """ModelSpec of the real-size SD1.5 or SDXL UNet (no text encoder, no VAE)."""
    import comfy.supported_models as sm

    from p2p_models.tiny_unet import ModelSpec

    if name == "sd15":
        unet = {**sm.SD15.unet_config, **sm.SD15.unet_extra_config, **_SD15_DETECTED}
        unet.pop("adm_in_channels", None)  # None for SD1.5; tiny_unet sets it
        unet.pop("use_temporal_attention", None)
        return ModelSpec(arch="sd1", unet=unet, text_l=None, text_g=None, vae=None)
    if name == "sdxl":
        extra = {k: v for k, v in sm.SDXL.unet_extra_config.items()}  # num_heads -1, num_head_channels 64
        unet = {**sm.SDXL.unet_config, **extra, **_SDXL_DETECTED}
        unet.pop("adm_in_channels", None)  # tiny_unet derives 1280 + 6 * 256 = 2816 from text_g
        unet.pop("use_temporal_attention", None)
        return ModelSpec(arch="sdxl", unet=unet, text_l=None, text_g={"hidden_size": 1280}, vae=None)
    raise ValueError(f"not a real-size model: {name!r}")


def check_detected(name: str, spec) -> str:
    """The ComfyUI model class that model detection picks for this config (must be SD15 / SDXL)."""
    import comfy.model_detection

    from p2p_models.tiny_unet import _unet_config

    cfg = comfy.model_detection.model_config_from_unet_config(_unet_config(spec))
    got = type(cfg).__name__ if cfg is not None else "none"
    want = {"sd15": "SD15", "sdxl": "SDXL"}[name]
    if got != want:
        raise RuntimeError(f"{name}: ComfyUI's model detection maps this config to {got}, not {want}")
    return got


def fast_init(module: torch.nn.Module, seed: int, gain: float = 1.0) -> None:
    """Like tiny_unet.init_weights (same scales), but fills from one tiled random pool: a
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
    from p2p_models import tiny_unet

    original = tiny_unet.init_weights
    tiny_unet.init_weights = fast_init
    try:
        yield
    finally:
        tiny_unet.init_weights = original


def count_params(patcher) -> int:
    return sum(p.numel() for p in patcher.get_model_object("diffusion_model").parameters())


def build(name: str, seed: int = 0, blocks=None, dtype: str = "float32", edits: list[str] | None = None):
    """-> dict(model=ModelPatcher, positive=[src, *edits] CONDITIONING, prompts=PromptSet,
    negative=CONDITIONING, clip=CLIP or None, info=dict). blocks / dtype: MM-DiT models only;
    edits: [EDIT] unless given (not for the demo model)."""
    edits = edits or [EDIT]
    from p2p_attention.conditioning import encode_prompt_set
    from p2p_models.tiny_unet import ModelSpec, build_clip, build_unet

    if name == "demo":
        return _build_demo()
    if name in DIT_MODELS:
        return _build_dit(name, seed, blocks, dtype, edits)
    if name in FAMILY_MODELS:
        return _build_family(name, seed, blocks, dtype, edits)
    arch = arch_of(name)
    tiny = ModelSpec.tiny(arch)
    clip = build_clip(tiny, seed=seed + 1)
    positive, prompts = encode_prompt_set(clip, SOURCE, edits)
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
    from p2p_models.demo_unet import load_demo_model

    model, clip, _ = load_demo_model()
    positive, prompts = encode_prompt_set(clip, DEMO_SOURCE, [DEMO_EDIT])
    out = clip.encode_from_tokens(clip.tokenize(NEGATIVE), return_pooled=True, return_dict=True)
    negative = [[out.pop("cond"), out]]
    info = {"model": "demo", "arch": "sd1", "conditioning": "the demo model's trained text encoder",
            "unet_params_M": round(count_params(model) / 1e6, 1), "context_dim": int(positive[0][0].shape[-1])}
    return {"model": model, "positive": positive, "prompts": prompts, "negative": negative, "clip": clip,
            "info": info, "trained": True}


# ----------------------------------------------------------------------------------------------
# MM-DiT (Flux.1, SD3.5)


def flux_width_config(double: int, single: int) -> dict:
    """The unet_config comfy.model_detection produces for a Flux.1 dev checkpoint (hidden 3072, 24
    heads of 128, RoPE axes 16/56/56, T5 width 4096, CLIP-L pooled 768, guidance embedding), with
    `double` double-stream and `single` single-stream blocks instead of 19 and 38."""
    from comfy.ldm.flux.model import FluxParams

    cfg = {"image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": 768,
           "context_in_dim": 4096, "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24,
           "depth": double, "depth_single_blocks": single, "axes_dim": [16, 56, 56], "theta": 10000,
           "patch_size": 2, "qkv_bias": True, "guidance_embed": True}
    if "txt_ids_dims" in {f.name for f in dataclasses.fields(FluxParams)}:
        cfg["txt_ids_dims"] = []  # ComfyUI 0.33.0's detection adds it ([] for Flux.1)
    return cfg


def sd35_large_width_config(blocks: int) -> dict:
    """The unet_config comfy.model_detection produces for SD3.5 Large (depth 38: hidden 2432, 38 heads
    of 64, RMS q/k norm, no x_block self attention, pooled 2048, context 4096, 192x192 position table),
    with MMDiT's num_blocks = `blocks` joint blocks (MMDiT ties the width to `depth`, not to the
    number of blocks it builds)."""
    hidden = 64 * SD35_LARGE_DEPTH
    return {"in_channels": 16, "out_channels": 16, "patch_size": 2, "depth": SD35_LARGE_DEPTH, "num_blocks": blocks,
            "input_size": None, "adm_in_channels": 2048,
            "context_embedder_config": {"target": "torch.nn.Linear",
                                        "params": {"in_features": 4096, "out_features": hidden}},
            "num_patches": 192 * 192, "pos_embed_max_size": 192, "qk_norm": "rms",
            "pos_embed_scaling_factor": None, "x_block_self_attn_layers": []}


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dit_model(config_cls, unet_config: dict, seed: int, dtype: torch.dtype):
    """dit_build's construction (ComfyUI's config class and model_base, as a checkpoint load makes
    them), filled by fast_init with dit_build's scales (gain 0.5, final layer damped 0.2)."""
    import comfy.model_detection

    detected = comfy.model_detection.model_config_from_unet_config(dict(unet_config))
    got = type(detected).__name__ if detected is not None else "none"
    if got != config_cls.__name__:
        raise RuntimeError(f"ComfyUI's model detection maps this config to {got}, not {config_cls.__name__}")
    model_config = config_cls({**unet_config, "dtype": torch.float32})
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, "", device=torch.device("cpu"))
    dm = model.diffusion_model
    fast_init(dm, seed, gain=0.5)
    with torch.no_grad():
        for pname, p in dm.named_parameters():
            if p.ndim == 1 and pname.endswith(".scale"):  # Flux's RMSNorm gains (0.3.75 names them scale)
                p.fill_(1.0)
        final = getattr(dm, "final_layer", None)  # Flux, MMDiT, NextDiT: final_layer.linear; Qwen-Image: proj_out
        (final.linear if final is not None else dm.proj_out).weight.mul_(0.2)
        if getattr(dm, "pos_embed", None) is not None:  # MMDiT: the checkpoints' sin-cos table
            from comfy.ldm.modules.diffusionmodules.mmdit import get_2d_sincos_pos_embed

            table = get_2d_sincos_pos_embed(dm.hidden_size, dm.pos_embed_max_size)
            dm.pos_embed.copy_(torch.from_numpy(table).reshape(dm.pos_embed.shape))
    dm.eval()
    return _patcher(model), got


def _patcher(model):
    import comfy.model_management as mm
    import comfy.model_patcher

    return comfy.model_patcher.ModelPatcher(model, load_device=mm.get_torch_device(),
                                           offload_device=mm.unet_offload_device())


def _build_dit(name: str, seed: int, blocks, dtype: str, edits: list[str]):
    """Full-width random MM-DiT (or dit_build's tiny one) and its conditioning. The PromptSet (token
    layout) comes from ComfyUI's real tokenizers in dit_build's tiny text encoders (Flux: T5 padded to
    256 tokens; SD3: 77 CLIP + 77 T5 tokens); for the full-width models the encodings are replaced by
    random tensors of the real width: context [B, tokens, 4096] and pooled [B, 768] (Flux, CLIP-L) /
    [B, 2048] (SD3.5, CLIP-L + CLIP-G)."""
    import comfy.supported_models as sm

    from p2p_attention.conditioning import encode_prompt_set
    from p2p_models import tiny_dit as dit_build

    arch = arch_of(name)
    torch_dtype = _DTYPES[dtype]
    clip = dit_build.build_flux_clip(seed + 1) if arch == "flux" else dit_build.build_sd3_clip(seed + 1)
    positive, prompts = encode_prompt_set(clip, SOURCE, edits)
    info = {"model": name, "arch": arch, "dtype": dtype}
    if name in DIT_TINY:
        if arch == "flux":
            model = dit_build.build_flux_model(seed, dtype=torch_dtype)
        else:
            model = dit_build.build_sd3_model(seed, dtype=torch_dtype, x_block_self_attn=True)
        info["detected_as"] = type(model.model.model_config).__name__
        out = clip.encode_from_tokens(clip.tokenize(NEGATIVE), return_pooled=True, return_dict=True)
        negative = [[out.pop("cond"), out]]
        if arch == "flux":
            positive[0][1]["guidance"] = FLUX_GUIDANCE
        info["conditioning"] = "tiny text encoder (real tokenizers)"
    else:
        blocks = tuple(blocks or DIT_BLOCKS[name])
        if arch == "flux":
            cfg, pooled = flux_width_config(*blocks), 768
            model, info["detected_as"] = _dit_model(sm.Flux, cfg, seed, torch_dtype)
            info["blocks"] = f"{blocks[0]} double + {blocks[1]} single (of 19 + 38)"
        else:
            cfg, pooled = sd35_large_width_config(*blocks), 2048
            model, info["detected_as"] = _dit_model(sm.SD3, cfg, seed, torch_dtype)
            info["blocks"] = f"{blocks[0]} joint (of 38)"
        info["unet_config"] = {k: v for k, v in cfg.items() if k != "context_embedder_config"}
        gen = torch.Generator().manual_seed(seed + 7)
        tokens, items = prompts.length, positive[0][0].shape[0]
        extra = dict(positive[0][1])
        extra["pooled_output"] = torch.randn(items, pooled, generator=gen)
        neg_extra = {"pooled_output": torch.randn(1, pooled, generator=gen)}
        if arch == "flux":
            extra["guidance"] = neg_extra["guidance"] = FLUX_GUIDANCE  # what FluxGuidance sets
        positive = [[torch.randn(items, tokens, 4096, generator=gen), extra]]
        negative = [[torch.randn(1, tokens, 4096, generator=gen), neg_extra]]
        info["conditioning"] = (f"random context [B, {tokens}, 4096], pooled [B, {pooled}]; PromptSet from the "
                                "real tokenizers in dit_build's tiny text encoders")
    dm = model.get_model_object("diffusion_model")
    info["unet_params_M"] = round(count_params(model) / 1e6, 1)
    info["hidden_size"] = int(dm.hidden_size)
    info["heads"] = int(dm.num_heads)
    info["context_dim"] = int(positive[0][0].shape[-1])
    info["text_tokens"] = int(prompts.length)
    return {"model": model, "positive": positive, "prompts": prompts, "negative": negative, "clip": clip,
            "info": info, "cfg": DIT_CFG[arch], "latent_channels": 16}


# ----------------------------------------------------------------------------------------------
# The newer MM-DiT families: Flux.2 klein, Z-Image, Qwen-Image, Chroma


FAMILY_ARCH = {"flux2-klein": "flux2", "flux2": "flux2", "zimage": "zimage", "qwen-image": "qwen", "qwen": "qwen",
               "chroma": "chroma", "flux2-dev": "flux2dev", "lumina2": "lumina2"}
# (latent channels, patch size, 5-d video latent): what each family's empty latent node makes.
FAMILY_LATENT = {"flux2": (128, 1, False), "zimage": (16, 2, False), "qwen": (16, 2, True), "chroma": (16, 2, False),
                 "flux2dev": (128, 1, False), "lumina2": (16, 2, False)}
# Text context width of the real text encoder: klein 4B stacks 3 hidden layers of Qwen3 4B (3 x 2560);
# Z-Image reads Qwen3 4B (2560); Qwen-Image Qwen2.5-VL 7B (3584); Chroma T5-XXL (4096, unpadded);
# Flux.2 dev stacks 3 hidden layers of Mistral 3 Small 24B (3 x 5120); Lumina 2 reads Gemma 2 2B (2304).
FAMILY_CONTEXT = {"flux2": 3 * 2560, "zimage": 2560, "qwen": 3584, "chroma": 4096, "flux2dev": 3 * 5120,
                  "lumina2": 2304}
# cfg of the released checkpoints' usual settings: klein 4B is step-distilled (cfg 1), Z-Image Turbo
# too (cfg 1); Qwen-Image: ComfyUI's example (2.5); Chroma: real CFG (4); Flux.2 dev guidance-distilled
# (cfg 1, FluxGuidance 4 as ComfyUI's example); Lumina 2: ComfyUI's example (4).
FAMILY_CFG = {"flux2": 1.0, "zimage": 1.0, "qwen": 2.5, "chroma": 4.0, "flux2dev": 1.0, "lumina2": 4.0}
FLUX2_DEV_GUIDANCE = 4.0
# Fewer blocks than the real models, every kind of block present: klein (double, single) of (5, 20);
# Z-Image (main layers, refiner layers of each refiner) of (30, 2); Qwen-Image (blocks,) of (60,); Chroma
# (double, single) of (19, 38), 1:2 as Flux.1 here; Flux.2 dev (double, single) of (8, 48); Lumina 2
# (main layers, refiner layers of each refiner) of (26, 2).
FAMILY_BLOCKS = {"flux2-klein": (1, 2), "zimage": (2, 1), "qwen-image": (2,), "chroma": (1, 2), "flux2-dev": (1, 2),
                 "lumina2": (2, 1)}
FAMILY_FULL_DEPTH = {"flux2-klein": (5, 20), "zimage": (30, 2), "qwen-image": (60,), "chroma": (19, 38),
                     "flux2-dev": (8, 48), "lumina2": (26, 2)}


def klein_width_config(double: int, single: int) -> dict:
    """The unet_config comfy.model_detection produces for a Flux.2 klein 4B checkpoint (hidden 3072 =
    24 heads of 128, four RoPE axes of 32, mlp 3.0 SiLU-gated, global modulation, no guidance
    embedding, no pooled vector, 128-channel latent at patch 1, context 7680), with `double` / `single`
    blocks instead of 5 / 20 (0.33.0's detection also sets txt_ids_dims [3]; 0.3.75's does not)."""
    from p2p_models.tiny_flux2 import flux2_unet_config

    cfg = flux2_unet_config(guidance_embed=False, context_in_dim=FAMILY_CONTEXT["flux2"])
    cfg.update(hidden_size=3072, num_heads=24, axes_dim=[32, 32, 32, 32], depth=double, depth_single_blocks=single)
    return cfg


def zimage_width_config(layers: int, refiner_layers: int) -> dict:
    """The unet_config comfy.model_detection produces for Z-Image (NextDiT dim 3840, 30 heads of 128,
    q/k RMS norm, RoPE axes 32/48/48, caption width 2560, z_image_modulation, pads to 32), with `layers`
    main (joint) layers instead of 30 and `refiner_layers` in each refiner (noise, context) instead of
    NextDiT's default 2."""
    from p2p_models.tiny_zimage import TINY_ZIMAGE_DIT

    return {**TINY_ZIMAGE_DIT, "dim": 3840, "cap_feat_dim": FAMILY_CONTEXT["zimage"], "n_layers": layers,
            "n_refiner_layers": refiner_layers, "n_heads": 30, "n_kv_heads": 30, "axes_dims": [32, 48, 48]}


def qwen_width_config(blocks: int) -> dict:
    """The unet_config comfy.model_detection produces for Qwen-Image (in_channels 64 = 16 x 2x2 patch,
    the class's defaults: 24 heads of 128 = 3072, context 3584, RoPE axes 16/56/56), with `blocks`
    transformer blocks instead of 60."""
    return {"image_model": "qwen_image", "in_channels": 64, "num_layers": blocks}


def chroma_width_config(double: int, single: int) -> dict:
    """The unet_config comfy.model_detection produces for Chroma (Flux.1's width: hidden 3072, 24 heads of
    128, RoPE axes 16/56/56, T5 context 4096; the Approximator in_dim 64 -> out_dim 3072, hidden 5120,
    5 layers; 64 in / out channels at patch 2), with `double` / `single` blocks instead of 19 / 38."""
    from p2p_models.tiny_chroma import chroma_unet_config

    cfg = chroma_unet_config()
    cfg.update(context_in_dim=FAMILY_CONTEXT["chroma"], hidden_size=3072, num_heads=24, axes_dim=[16, 56, 56],
               depth=double, depth_single_blocks=single, out_dim=3072, hidden_dim=5120, n_layers=5)
    return cfg


def flux2_dev_width_config(double: int, single: int) -> dict:
    """The unet_config comfy.model_detection produces for Flux.2 dev (Flux.2's layout at hidden 6144 = 48
    heads of 128, with the guidance embedding, context 15360), with `double` / `single` blocks instead of
    8 / 48."""
    from p2p_models.tiny_flux2 import flux2_unet_config

    cfg = flux2_unet_config(guidance_embed=True, context_in_dim=FAMILY_CONTEXT["flux2dev"])
    cfg.update(hidden_size=6144, num_heads=48, axes_dim=[32, 32, 32, 32], depth=double, depth_single_blocks=single)
    return cfg


def lumina2_width_config(layers: int, refiner_layers: int) -> dict:
    """The unet_config comfy.model_detection produces for Lumina-Image 2.0 (NextDiT dim 2304, 24 heads of
    96 with 8 kv heads, q/k RMS norm, RoPE axes 32/32/32, caption width 2304), with `layers` main layers
    instead of 26 and `refiner_layers` in each refiner instead of 2."""
    from p2p_models.tiny_lumina2 import TINY_LUMINA2_DIT

    return {**TINY_LUMINA2_DIT, "dim": 2304, "cap_feat_dim": FAMILY_CONTEXT["lumina2"], "n_layers": layers,
            "n_refiner_layers": refiner_layers, "n_heads": 24, "n_kv_heads": 8, "axes_dims": [32, 32, 32]}


def family_width_config(name: str, blocks) -> dict:
    return {"flux2-klein": klein_width_config, "zimage": zimage_width_config, "qwen-image": qwen_width_config,
            "chroma": chroma_width_config, "flux2-dev": flux2_dev_width_config,
            "lumina2": lumina2_width_config}[name](*blocks)


# Each family's tiny test builders: (p2p_models module, text-encoder builder, diffusion-model builder).
_FAMILY_TINY_BUILDERS = {"flux2": ("tiny_flux2", "build_klein_clip", "build_flux2_model"),
                         "flux2dev": ("tiny_flux2", "build_dev_clip", "build_flux2_dev_model"),
                         "zimage": ("tiny_zimage", "build_zimage_clip", "build_zimage_model"),
                         "qwen": ("tiny_qwen", "build_qwen_clip", "build_qwen_model"),
                         "chroma": ("tiny_chroma", "build_chroma_clip", "build_chroma_model"),
                         "lumina2": ("tiny_lumina2", "build_lumina2_clip", "build_lumina2_model")}


def _family_builder(arch: str, which: int):
    module, *builders = _FAMILY_TINY_BUILDERS[arch]
    return getattr(importlib.import_module(f"p2p_models.{module}"), builders[which])


def _family_clip(arch: str, seed: int):
    return _family_builder(arch, 0)(seed)


def _tiny_family_model(arch: str, seed: int, dtype: torch.dtype):
    return _family_builder(arch, 1)(seed, dtype)


def family_available(name: str) -> str | None:
    """None, or why this ComfyUI cannot build the family's prompts (Flux.2 klein's text encoder is in
    ComfyUI 0.33.0, not 0.3.75)."""
    if arch_of(name) == "flux2":
        from p2p_models.tiny_flux2 import klein_available

        if not klein_available():
            return "this ComfyUI has no Flux.2 klein text encoder (0.33.0 has it)"
    return None


def _build_family(name: str, seed: int, blocks, dtype: str, edits: list[str]):
    """Full-width random Flux.2 klein / Z-Image / Qwen-Image / Chroma / Flux.2 dev / Lumina 2 with few blocks (or the family's tiny test
    model). The PromptSet comes from the family's tiny text encoder (ComfyUI's real tokenizer and chat
    template); for the full-width models its encodings are replaced by random tensors of the real
    text encoder's width (FAMILY_CONTEXT), same token counts, the encoder's other outputs kept."""
    import comfy.supported_models as sm

    from p2p_attention.conditioning import encode_prompt_set
    from p2p_testkit.sampling import encode

    arch = arch_of(name)
    torch_dtype = _DTYPES[dtype]
    clip = _family_clip(arch, seed + 1)
    source = SOURCE
    if arch == "lumina2":  # written as ComfyUI's CLIP Text Encode (Lumina 2) writes it; the edits take its head
        from comfy_extras.nodes_lumina2 import CLIPTextEncodeLumina2

        source = f"{CLIPTextEncodeLumina2.SYSTEM_PROMPT['superior']} <Prompt Start> {SOURCE}"
    positive, prompts = encode_prompt_set(clip, source, edits)
    negative = encode(clip, NEGATIVE)
    info = {"model": name, "arch": arch, "dtype": dtype}
    if name in FAMILY_TINY:
        model = _tiny_family_model(arch, seed, torch_dtype)
        info["detected_as"] = type(model.model.model_config).__name__
        info["conditioning"] = "tiny text encoder (real tokenizer)"
    else:
        blocks = tuple(blocks or FAMILY_BLOCKS[name])
        cfg = family_width_config(name, blocks)
        config_cls = {"flux2": sm.Flux2, "zimage": sm.ZImage, "qwen": sm.QwenImage, "chroma": sm.Chroma,
                      "flux2dev": sm.Flux2, "lumina2": sm.Lumina2}[arch]
        model, info["detected_as"] = _dit_model(config_cls, cfg, seed, torch_dtype)
        full = FAMILY_FULL_DEPTH[name]
        double_single, nextdit = "{} double + {} single (of {} + {})", "{} layers + {} refiner each (of {} + {})"
        info["blocks"] = {"flux2": double_single, "zimage": nextdit, "qwen": "{} blocks (of {})", "chroma": double_single,
                          "flux2dev": double_single, "lumina2": nextdit}[arch].format(*blocks, *full)
        info["unet_config"] = cfg
        width = FAMILY_CONTEXT[arch]
        gen = torch.Generator().manual_seed(seed + 7)
        positive = [[torch.randn(*positive[0][0].shape[:2], width, generator=gen), dict(positive[0][1])]]
        negative = [[torch.randn(*negative[0][0].shape[:2], width, generator=gen), dict(negative[0][1])]]
        info["conditioning"] = (f"random context [B, {prompts.length}, {width}]; PromptSet from the real tokenizer "
                                "in the family's tiny text encoder")
    if arch == "flux2dev":  # what FluxGuidance sets in ComfyUI's Flux.2 dev example
        positive, negative = ([[c[0][0], {**c[0][1], "guidance": FLUX2_DEV_GUIDANCE}]] for c in (positive, negative))
    dm = model.get_model_object("diffusion_model")
    info["unet_params_M"] = round(count_params(model) / 1e6, 1)
    info["hidden_size"] = int(getattr(dm, "hidden_size", 0) or getattr(dm, "dim", 0) or getattr(dm, "inner_dim", 0))
    info["context_dim"] = int(positive[0][0].shape[-1])
    info["text_tokens"] = int(prompts.length)
    channels, patch, video = FAMILY_LATENT[arch]
    return {"model": model, "positive": positive, "prompts": prompts, "negative": negative, "clip": clip,
            "info": info, "cfg": FAMILY_CFG[arch], "latent_channels": channels, "patch": patch, "video": video}
