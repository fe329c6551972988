"""Tiny Flux.2 models built from ComfyUI's own classes: supported_models.Flux2 / model_base.Flux2 with a
tiny unet_config (the keys model_detection sets for Flux.2: 128-channel latents, patch 1, four RoPE
axes with the text's index on the fourth, global modulation, no pooled vector), the klein text encoder
(text_encoders.flux.klein_te: Qwen3 4B's class with the real qwen25 tokenizer and KleinTokenizer's chat
template, three hidden layers stacked; here 28 layers of width 32 so layers 9, 18 and 27 exist) and
the Flux.2 VAE (AutoencoderKL with a 32-channel latent, 2x2 patchified and batch-normalised to 128
channels, 16x). Weights are seeded random. Klein's text encoder exists in ComfyUI 0.33.0, not 0.3.75
(which has Flux.2 dev's Mistral encoder only): klein_available() says which.

Flux.2 dev (both ComfyUIs): the model with its guidance embedding, and flux2_te (Mistral 3 Small's class,
31 layers of width 32 so layers 10, 20 and 30 exist) with ComfyUI's Flux2Tokenizer loading a tiny tekken
vocabulary built here (tiny_tekken: the real special tokens, every byte, merges for a few words), as it
loads the real one from the text-encoder file.
"""

from __future__ import annotations

import dataclasses

import torch

from .tiny_dit import TinyModels, _clip, _diffusion_model
from .tiny_unet import TINY_VAE, ModelSpec, build_vae

# Qwen3 4B's class at a tiny width; the real vocabulary (the tokenizer emits ids up to 151935).
TINY_QWEN3 = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1,
              "num_hidden_layers": 28}  # head_dim is the class's (128)
KLEIN_CONTEXT = 3 * TINY_QWEN3["hidden_size"]  # layers 9, 18, 27 stacked on the feature axis

TINY_FLUX2_DIT = {
    "image_model": "flux2",
    "in_channels": 128,
    "out_channels": 128,
    "vec_in_dim": None,
    "context_in_dim": KLEIN_CONTEXT,
    "hidden_size": 64,
    "mlp_ratio": 3.0,
    "num_heads": 2,
    "depth": 2,
    "depth_single_blocks": 2,
    "axes_dim": [8, 8, 8, 8],  # (index, h, w, text position): sum = head dim 32
    "theta": 2000,
    "patch_size": 1,
    "qkv_bias": False,
    "global_modulation": True,
    "mlp_silu_act": True,
    "ops_bias": False,
    "default_ref_method": "index",
    "ref_index_scale": 10.0,
}
# The Flux.2 VAE: z 32 channels at 8x, then 2x2 patches (128 channels, 16x) normalised by its BatchNorm.
TINY_FLUX2_VAE = {**TINY_VAE, "z_channels": 32, "batch_norm_latent": True}


def klein_available() -> bool:
    """ComfyUI ships Flux.2 klein's text encoder (KleinTokenizer, klein_te): 0.33.0 yes, 0.3.75 no."""
    import comfy.text_encoders.flux as flux

    return hasattr(flux, "KleinTokenizer") and hasattr(flux, "klein_te")


def flux2_unet_config(guidance_embed: bool = False, context_in_dim: int = KLEIN_CONTEXT) -> dict:
    """The tiny Flux.2 unet_config: klein (no guidance embedding) or dev (guidance_embed)."""
    from comfy.ldm.flux.model import FluxParams

    cfg = {**TINY_FLUX2_DIT, "guidance_embed": guidance_embed, "context_in_dim": context_in_dim}
    if "txt_ids_dims" in {f.name for f in dataclasses.fields(FluxParams)}:
        cfg["txt_ids_dims"] = [3]  # 0.33.0: the text's RoPE position on axis 3, as model_detection sets
    return cfg


def build_flux2_model(seed: int = 0, dtype: torch.dtype = torch.float32, guidance_embed: bool = False,
                      manual_cast_dtype: torch.dtype | None = None, context_in_dim: int = KLEIN_CONTEXT):
    import comfy.supported_models as sm

    return _diffusion_model(sm.Flux2, flux2_unet_config(guidance_embed, context_in_dim), seed, dtype,
                            manual_cast_dtype)


def build_klein_clip(seed: int = 1):
    """KleinTokenizer (chat template, padded to 512 with <|endoftext|>) and klein_te (Qwen3 4B class):
    cond [B, >=512, 96]."""
    import comfy.text_encoders.flux as flux
    from comfy.supported_models_base import ClipTarget

    if not klein_available():
        raise RuntimeError("this ComfyUI has no Flux.2 klein text encoder (KleinTokenizer, klein_te)")
    target = ClipTarget(flux.KleinTokenizer, flux.klein_te(model_type="qwen3_4b"))
    return _clip(target, {"qwen3_4b_model_config": dict(TINY_QWEN3)}, seed)


def build_flux2_vae(seed: int = 2):
    """AutoencoderKL with the Flux.2 latent: 128 channels at 16x (EmptyFlux2LatentImage's latents)."""
    vae = build_vae(ModelSpec(vae=dict(TINY_FLUX2_VAE)), seed=seed, downscale=16)
    vae.latent_channels = 128
    with torch.no_grad():  # a checkpoint's running statistics, not BatchNorm's (0, 1) defaults
        bn = vae.first_stage_model.bn
        gen = torch.Generator().manual_seed(seed)
        bn.running_mean.copy_(0.1 * torch.randn(bn.running_mean.shape, generator=gen))
        bn.running_var.copy_(0.5 + torch.rand(bn.running_var.shape, generator=gen))
    return vae


def build_tiny_flux2(seed: int = 0, dtype: torch.dtype = torch.float32,
                     manual_cast_dtype: torch.dtype | None = None) -> TinyModels:
    """Tiny Flux.2 klein (model_base.Flux2, FLUX sampling with shift 2.02, no guidance input). Seeds as
    build_all: model seed, CLIP seed + 1, VAE seed + 2."""
    return TinyModels(build_flux2_model(seed, dtype, manual_cast_dtype=manual_cast_dtype),
                      build_klein_clip(seed + 1), build_flux2_vae(seed + 2))


# ----------------------------------------------------------------------------- Flux.2 dev (Mistral 3 Small)

# Mistral 3 Small 24B's class at a tiny width; 31 layers so layers 10, 20 and 30 (the ones Flux.2 dev stacks)
# exist. vocab_size is set from the tiny tekken vocabulary (tiny_tekken).
TINY_MISTRAL3 = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1,
                 "num_hidden_layers": 31}  # head_dim is the class's (128)
DEV_CONTEXT = 3 * TINY_MISTRAL3["hidden_size"]  # layers 10, 20, 30 stacked on the feature axis

# The real tekken v7 special tokens (Mistral 3 Small's): their ranks are their ids; 20..999 are fillers.
TEKKEN_SPECIALS = ("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                   "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]",
                   "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]")
TEKKEN_NUM_SPECIAL = 1000
# Words the tiny vocabulary merges into tokens (with and without the space before them); any other text
# tokenizes byte by byte (every single byte is a token), as a real tekken vocabulary does for rare words.
TEKKEN_WORDS = ("a", "red", "green", "blue", "big", "small", "circle", "square", "on", "the", "left", "right",
                "cake", "chocolate", "photo", "of", "cat", "dog", "You", "are", "an", "image", "object")
# The tekken pre-tokenizer pattern (ComfyUI's loaders use their own copy of it).
_TEKKEN_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?"
                   r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|"
                   r"\s*[\r\n]+|\s+(?!\S)|\s+")


def _tekken_pieces(words: tuple[str, ...]) -> list[bytes]:
    pieces: list[bytes] = [bytes([b]) for b in range(256)]
    seen = set(pieces)
    for word in words:
        for text in (word, " " + word):
            raw = text.encode("utf-8")
            for n in range(2, len(raw) + 1):
                if raw[:n] not in seen:
                    seen.add(raw[:n])
                    pieces.append(raw[:n])
    return pieces


def tiny_tekken(words: tuple[str, ...] = TEKKEN_WORDS) -> bytes:
    """A tekken JSON (Mistral's tokenizer file format, as Flux.2 dev's text-encoder file carries it in
    tokenizer_data["tekken_model"]): the real special tokens at their ranks, all 256 single bytes (ranks
    0..255, ids 1000..1255), then every prefix of each word and of " word" (so BPE merges it into one token)."""
    import base64
    import json

    pieces = _tekken_pieces(words)
    vocab = [{"rank": r, "token_bytes": base64.b64encode(p).decode("ascii"),
              "token_str": p.decode("utf-8", "replace")} for r, p in enumerate(pieces)]
    names = TEKKEN_SPECIALS + tuple(f"<SPECIAL_{i}>" for i in range(len(TEKKEN_SPECIALS), TEKKEN_NUM_SPECIAL))
    specials = [{"rank": r, "token_str": s, "is_control": True} for r, s in enumerate(names)]
    config = {"pattern": _TEKKEN_PATTERN, "num_vocab_tokens": len(vocab), "default_vocab_size":
              TEKKEN_NUM_SPECIAL + len(vocab), "default_num_special_tokens": TEKKEN_NUM_SPECIAL, "version": "v7"}
    return json.dumps({"config": config, "vocab": vocab, "special_tokens": specials}).encode("utf-8")


def tekken_tokenizer_data(words: tuple[str, ...] = TEKKEN_WORDS) -> dict:
    """tokenizer_data as ComfyUI reads it from a Flux.2 dev text-encoder file: the tekken JSON's bytes in a
    uint8 tensor under "tekken_model"."""
    data = tiny_tekken(words)
    return {"tekken_model": torch.frombuffer(bytearray(data), dtype=torch.uint8)}


def build_dev_clip(seed: int = 1):
    """Flux2Tokenizer (the system-prompt template, Mistral3Tokenizer: BOS, no end token, left padding,
    loaded by ComfyUI from the tiny tekken vocabulary) and flux2_te (Mistral 3 Small's class, layers 10, 20
    and 30 stacked): cond [B, n, 96], no padding (the model pads the context to 512 on the left)."""
    import comfy.sd
    import comfy.text_encoders.flux as flux
    from comfy.supported_models_base import ClipTarget

    from .tiny_dit import init_weights

    config = {**TINY_MISTRAL3, "vocab_size": TEKKEN_NUM_SPECIAL + len(_tekken_pieces(TEKKEN_WORDS))}
    target = ClipTarget(flux.Flux2Tokenizer, flux.flux2_te())
    clip = comfy.sd.CLIP(target=target, tokenizer_data=tekken_tokenizer_data(),
                         model_options={"mistral3_24b_model_config": config, "dtype": torch.float32})
    init_weights(clip.cond_stage_model, seed)
    return clip


def build_flux2_dev_model(seed: int = 0, dtype: torch.dtype = torch.float32,
                          manual_cast_dtype: torch.dtype | None = None):
    """The tiny Flux.2 dev diffusion model: Flux.2 with a guidance embedding, on the tiny Mistral's context."""
    return build_flux2_model(seed, dtype, guidance_embed=True, manual_cast_dtype=manual_cast_dtype,
                             context_in_dim=DEV_CONTEXT)


def build_tiny_flux2_dev(seed: int = 0, dtype: torch.dtype = torch.float32,
                         manual_cast_dtype: torch.dtype | None = None) -> TinyModels:
    """Tiny Flux.2 dev (model_base.Flux2 with a guidance embedding: FluxGuidance applies, cfg 1), its tiny
    Mistral 3 Small text encoder on the tiny tekken vocabulary, the Flux.2 VAE. Seeds as build_tiny_flux2."""
    return TinyModels(build_flux2_dev_model(seed, dtype, manual_cast_dtype), build_dev_clip(seed + 1),
                      build_flux2_vae(seed + 2))
