"""The export: fp16 safetensors of the UNet, the text encoder (only the token-embedding rows of the
vocabulary) and the VAE, as p2p_models.demo_unet.load_demo_model reads them."""

from __future__ import annotations

from pathlib import Path

import shapes_dataset as ds
import torch
from text_encoder import tokenize

from p2p_models.demo_unet import DEMO_SPEC, TOKEN_KEY
from p2p_models.tiny_unet import build_clip


def used_token_ids(captions: list[str] | None = None) -> list[int]:
    """Token ids of the vocabulary (+ start/end); with captions, checks they use no others."""
    clip = build_clip(DEMO_SPEC, seed=0)
    used = {tok for w in ds.vocabulary() + [""] for tok in tokenize(clip, w)}
    if captions is not None:
        extra = {tok for c in set(captions) for tok in tokenize(clip, c)} - used
        assert not extra, f"captions use tokens outside the vocabulary: {extra}"
    return sorted(used)


def export(unet_sd: dict, clip_sd: dict, vae_sd: dict, used_ids: list[int], out: Path) -> None:
    import safetensors.torch

    sd = {}
    for k, v in unet_sd.items():
        sd["unet." + k] = v.half().contiguous()
    for k, v in clip_sd.items():
        if k == TOKEN_KEY or k.endswith("position_ids"):
            continue
        sd["clip." + k] = v.half().contiguous() if v.is_floating_point() else v.contiguous()
    ids = torch.tensor(sorted(set(used_ids)), dtype=torch.int32)
    sd["clip.token_ids"] = ids
    sd["clip.token_rows"] = clip_sd[TOKEN_KEY][ids.long()].half().contiguous()
    for k, v in vae_sd.items():
        sd["vae." + k] = v.half().contiguous()
    out.parent.mkdir(parents=True, exist_ok=True)
    # One metadata entry: safetensors writes its metadata map in hash order, so two entries
    # would make reruns differ in bytes (and sha256) with identical tensors.
    safetensors.torch.save_file(sd, str(out), metadata={"model": "p2p_demo_tiny"})
