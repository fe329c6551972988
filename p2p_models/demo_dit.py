"""The pack's embedded MM-DiT demo model: a tiny Flux.1-schnell-architecture model trained by
`training/train_dit_demo.py` on the same shapes data as the SD1 demo (`demo_model`).

Everything is ComfyUI's own classes: supported_models.FluxSchnell (model_base.Flux, FLOW sampling,
shift 1, no guidance embedding) with a tiny unet_config (2 double-stream + 2 single-stream blocks,
hidden 128, 4 heads, patch 1 on an 8x8x16 latent = 64 image tokens), ComfyUI's FluxClipModel with
the real T5 sentencepiece tokenizer (T5 padded to 24 tokens instead of 256: ComfyUI's
`t5xxl_min_length` tokenizer setting) and a tiny T5 trained with the DiT, and a 4x AutoencoderKL
(32x32x3 <-> 8x8x16) whose latents follow ComfyUI's Flux latent format (process_in gives zero mean,
unit variance per channel). This Flux has no `vector_in` (vec_in_dim None): text reaches the image
only through joint attention. CLIP-L only gives the (unused) pooled vector; it is seeded random.

The file stores only the token-embedding rows the training vocabulary uses (T5 and CLIP-L:
`<enc>.token_ids` + `<enc>.token_rows`); the loader expands them into the full tables (other rows
zero, so words outside the vocabulary are reported as unknown).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .tiny_unet import ModelSpec
from .weights import DemoWeightsError, checked_weights

REPO_ROOT = Path(__file__).resolve().parent.parent
DIT_DEMO_WEIGHTS = REPO_ROOT / "models" / "demo" / "p2p_demo_flux_tiny.safetensors"
DIT_DEMO_SHA256 = "931beb5cac6803102065150f10c4d7ecdb8b5ffb5fb0c38b49ceb4878fa065ab"
DIT_SCENES_WEIGHTS = REPO_ROOT / "models" / "demo" / "p2p_demo_flux_scenes.safetensors"
DIT_SCENES_SHA256 = "3179f408e97f35190c60f8c63eb1ca3c665e28b565282594d8ab148c4ed8355a"
DIT_DEMO_RESOLUTION = 32  # pixels; latent 8x8x16 (EmptyLatentImage / EmptySD3LatentImage width/height 64)
LATENT_HW = 8
T5_MIN_LENGTH = 24  # every caption of the shapes data is <= 18 T5 tokens (with its end token)

DIT_UNET = {
    "image_model": "flux",
    "in_channels": 16,
    "out_channels": 16,
    "vec_in_dim": None,  # no pooled-text modulation: text acts through attention only
    "context_in_dim": 64,
    "hidden_size": 128,
    "mlp_ratio": 4.0,
    "num_heads": 4,
    "depth": 2,
    "depth_single_blocks": 2,
    "axes_dim": [8, 12, 12],  # RoPE (index, h, w): head dim 32
    "theta": 10000,
    "patch_size": 1,
    "qkv_bias": True,
    "guidance_embed": False,
}
DIT_T5 = {"d_model": 64, "d_kv": 32, "num_heads": 2, "d_ff": 128, "num_layers": 2}
DIT_CLIP_L = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 1, "num_hidden_layers": 1,
              "projection_dim": 32}
DIT_VAE = {
    "double_z": True,
    "z_channels": 16,
    "resolution": 32,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 2, 2],  # 4x: 32x32 image <-> 8x8x16 latent
    "num_res_blocks": 1,
    "attn_resolutions": [],
    "dropout": 0.0,
}
T5_TOKEN_KEY = "t5xxl.transformer.shared.weight"
CLIP_TOKEN_KEY = "clip_l.transformer.text_model.embeddings.token_embedding.weight"
TOKEN_TABLES = {"t5": T5_TOKEN_KEY, "clip_l": CLIP_TOKEN_KEY}  # file prefix -> text encoder key


def unet_config() -> dict:
    import dataclasses

    from comfy.ldm.flux.model import FluxParams

    cfg = dict(DIT_UNET)
    if "txt_ids_dims" in {f.name for f in dataclasses.fields(FluxParams)}:
        cfg["txt_ids_dims"] = []  # ComfyUI 0.33.0: required, [] for Flux.1
    return cfg


def build_dit(state_dict: dict | None = None, seed: int = 0):
    """ModelPatcher around model_base.Flux (FluxSchnell config): seeded, or with `state_dict`."""
    import comfy.supported_models as sm

    from .tiny_dit import _diffusion_model

    patcher = _diffusion_model(sm.FluxSchnell, unet_config(), seed, torch.float32, None)
    if state_dict is not None:
        dm = patcher.model.diffusion_model
        _load_strict(dm, _rms_names(state_dict, set(dm.state_dict())), "DiT")
    return patcher


def build_text(state_dict: dict | None = None, seed: int = 1):
    """comfy.sd.CLIP: FluxTokenizer (T5 padded to T5_MIN_LENGTH) + FluxClipModel at tiny width."""
    import comfy.sd
    import comfy.supported_models as sm

    from .tiny_dit import init_weights

    target = sm.FluxSchnell(unet_config()).clip_target(state_dict={})
    clip = comfy.sd.CLIP(target=target, tokenizer_data={"t5xxl_min_length": T5_MIN_LENGTH},
                         model_options={"clip_l_model_config": dict(DIT_CLIP_L), "t5xxl_model_config": dict(DIT_T5),
                                        "dtype": torch.float32})
    if state_dict is None:
        init_weights(clip.cond_stage_model, seed)
    else:
        _load_strict(clip.cond_stage_model, state_dict, "text encoder")
    return clip


def build_dit_demo_vae(state_dict: dict | None = None, seed: int = 2):
    from .tiny_unet import build_vae

    vae = build_vae(ModelSpec(vae=dict(DIT_VAE)), state_dict=state_dict, seed=seed)
    vae.latent_channels = DIT_VAE["z_channels"]
    return vae


def _rms_names(sd: dict, expected: set) -> dict:
    """Flux's q/k RMSNorm gain is `*.scale` in ComfyUI 0.3.75 and `*.weight` in 0.33.0: name it as
    this ComfyUI's module does (the file has 0.3.75's names)."""
    out = {}
    for k, v in sd.items():
        for a, b in ((".scale", ".weight"), (".weight", ".scale")):
            if k not in expected and k.endswith(a) and k[: -len(a)] + b in expected:
                k = k[: -len(a)] + b
                break
        out[k] = v
    return out


def _load_strict(module: torch.nn.Module, sd: dict, what: str) -> None:
    missing, unexpected = module.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise DemoWeightsError(f"demo DiT {what} weights do not match the architecture: missing {missing[:5]}, "
                       f"unexpected {unexpected[:5]}; retrain with training/train_dit_demo.py.")


def split_state_dict(sd: dict) -> tuple[dict, dict, dict]:
    """File layout -> (dit, text encoder, vae) state dicts (fp32), token tables expanded."""
    dit, text, vae = {}, {}, {}
    tables = {f"{p}.token_{s}" for p in TOKEN_TABLES for s in ("ids", "rows", "vocab")}
    for k, v in sd.items():
        if k in tables:
            continue
        if k.startswith("dit."):
            dit[k[4:]] = v.float()
        elif k.startswith("vae."):
            vae[k[4:]] = v.float()
        elif k.startswith("text."):
            text[k[5:]] = v.float() if v.is_floating_point() else v
    for prefix, key in TOKEN_TABLES.items():
        ids, rows = sd[f"{prefix}.token_ids"].long(), sd[f"{prefix}.token_rows"].float()
        table = torch.zeros(int(sd[f"{prefix}.token_vocab"]), rows.shape[1])
        table[ids] = rows
        text[key] = table
    return dit, text, vae


def pack_state_dict(dit_sd: dict, text_sd: dict, vae_sd: dict, used: dict[str, list[int]]) -> dict:
    """The inverse of split_state_dict, fp16: only the rows `used[prefix]` of each token table."""
    sd = {"dit." + k: v.half().contiguous() for k, v in dit_sd.items()}
    keys = set(TOKEN_TABLES.values())
    for k, v in text_sd.items():
        if k in keys or k.endswith("position_ids"):
            continue
        sd["text." + k] = v.half().contiguous() if v.is_floating_point() else v.contiguous()
    for prefix, key in TOKEN_TABLES.items():
        ids = torch.tensor(sorted(set(used[prefix])), dtype=torch.int32)
        sd[f"{prefix}.token_ids"] = ids
        sd[f"{prefix}.token_rows"] = text_sd[key][ids.long()].half().contiguous()
        sd[f"{prefix}.token_vocab"] = torch.tensor(text_sd[key].shape[0], dtype=torch.int32)
    sd.update({"vae." + k: v.half().contiguous() for k, v in vae_sd.items()})
    return sd


_DEFAULT = object()


def load_demo_dit_model(path: str | Path | None = None, expected_sha256: str | None | object = _DEFAULT):
    """(MODEL, CLIP, VAE) of the shipped tiny Flux demo; the shipped file is checked against
    DIT_DEMO_SHA256, another `path` (a fresh training run) only when `expected_sha256` is given."""
    import safetensors.torch

    if expected_sha256 is _DEFAULT:
        expected_sha256 = DIT_DEMO_SHA256 if path is None else None
    path = checked_weights(Path(path) if path is not None else DIT_DEMO_WEIGHTS, expected_sha256,
                           "training/train_dit_demo.py")
    dit_sd, text_sd, vae_sd = split_state_dict(safetensors.torch.load_file(str(path)))
    return build_dit(dit_sd), build_text(text_sd), build_dit_demo_vae(vae_sd)


def load_demo_scenes_model(path: str | Path | None = None, expected_sha256: str | None | object = _DEFAULT):
    """(MODEL, CLIP, VAE) of the scenes demo (the same architecture, trained on
    training/scenes_dataset.py: captions say what, not where); the shipped file is checked against
    DIT_SCENES_SHA256."""
    if expected_sha256 is _DEFAULT:
        expected_sha256 = DIT_SCENES_SHA256 if path is None else None
    return load_demo_dit_model(DIT_SCENES_WEIGHTS if path is None else path, expected_sha256)
