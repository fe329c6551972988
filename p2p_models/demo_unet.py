"""The pack's embedded demo model: a tiny text-to-image model trained by `training/train_demo.py`.

32x32 RGB images of two coloured shapes over a textured background; a 2x AutoencoderKL
(16x16x4 latent: in ComfyUI an EmptyLatentImage of 128x128 "pixels", which assumes 8x), an SD1-shaped UNet with self- and cross-attention at 16x16, 8x8 and 4x4,
and ComfyUI's SD1 CLIP stack (real tokenizer) at width 128. Everything is built from ComfyUI's
own classes by `model_build`; the weights ship as fp16 safetensors in `models/demo/`.

The file stores only the token-embedding rows the training vocabulary uses
(`clip.token_ids` + `clip.token_rows`); `load_demo_model` expands them into the full
49408-row table (other rows zero).
"""

from __future__ import annotations

from pathlib import Path

from .tiny_unet import TINY_SD1_UNET, ModelSpec
from .weights import checked_weights

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_WEIGHTS = REPO_ROOT / "models" / "demo" / "p2p_demo_tiny.safetensors"
DEMO_SHA256 = "e5b11a60489d572ce2b525045e0403176ac322b25d970024169a2fa28b32d674"
VOCAB_SIZE = 49408
TOKEN_KEY = "clip_l.transformer.text_model.embeddings.token_embedding.weight"

DEMO_SPEC = ModelSpec(
    arch="sd1",
    unet={**TINY_SD1_UNET, "channel_mult": [1, 2, 4], "num_head_channels": 32, "context_dim": 128},
    text_l={
        "hidden_size": 128,
        "intermediate_size": 512,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "projection_dim": 128,
    },
    text_g=None,
    vae={
        "double_z": True,
        "z_channels": 4,
        "resolution": 32,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 32,
        "ch_mult": [1, 2],  # 2x: 32x32 image <-> 16x16x4 latent
        "num_res_blocks": 1,
        "attn_resolutions": [],
        "dropout": 0.0,
    },
)
DEMO_RESOLUTION = 32  # pixels; the latent is 16x16 (EmptyLatentImage width/height 128)


def split_state_dict(sd: dict) -> tuple[dict, dict, dict]:
    """File layout -> (unet, text encoder, vae) state dicts (fp32), token table expanded."""
    import torch

    unet, clip, vae = {}, {}, {}
    for k, v in sd.items():
        if k.startswith("unet."):
            unet[k[5:]] = v.float()
        elif k.startswith("vae."):
            vae[k[4:]] = v.float()
        elif k.startswith("clip.") and k not in ("clip.token_ids", "clip.token_rows"):
            clip[k[5:]] = v.float()
    ids = sd["clip.token_ids"].long()
    rows = sd["clip.token_rows"].float()
    table = torch.zeros(VOCAB_SIZE, rows.shape[1])
    table[ids] = rows
    clip[TOKEN_KEY] = table
    return unet, clip, vae


_DEFAULT = object()


def load_demo_model(path: str | Path | None = None, expected_sha256: str | None | object = _DEFAULT):
    """(MODEL ModelPatcher, comfy.sd.CLIP, comfy.sd.VAE) of the shipped demo model.

    The shipped file is checked against DEMO_SHA256. For another file (`path`, e.g. a fresh
    training run) nothing is checked unless `expected_sha256` is given.
    """
    import safetensors.torch

    from .tiny_unet import build_clip, build_unet, build_vae

    if expected_sha256 is _DEFAULT:
        expected_sha256 = DEMO_SHA256 if path is None else None
    path = checked_weights(Path(path) if path is not None else DEMO_WEIGHTS, expected_sha256,
                           "training/train_demo.py")
    sd = safetensors.torch.load_file(str(path))
    unet_sd, clip_sd, vae_sd = split_state_dict(sd)
    model = build_unet(DEMO_SPEC, state_dict=unet_sd)
    clip = build_clip(DEMO_SPEC, state_dict=clip_sd)
    vae = build_vae(DEMO_SPEC, state_dict=vae_sd)
    return model, clip, vae
