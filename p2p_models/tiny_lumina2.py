"""Tiny Lumina 2 (NextDiT, config Lumina2) built from ComfyUI's own classes.

ComfyUI's supported_models.Lumina2 config and model_base.Lumina2 class with a tiny unet_config in
Lumina 2's layout (what model_detection gives a Lumina-Image-2.0 checkpoint: q/k RMS norm, no
z_image_modulation, time_scale 1, no pad tokens: the joint call is exactly [caption | image]), ComfyUI's
lumina2 text encoder classes (LuminaTokenizer / Gemma2BTokenizer: SentencePiece with BOS 2, pad 0, no
padding; Gemma2_2BModel) with a tiny Gemma 2 and the 16-channel tiny VAE of tiny_dit (Lumina 2 uses the
Flux VAE). The SentencePiece model is trained here, deterministically, on a small text, with Gemma's
normalisation (no dummy prefix, whitespace kept, byte fallback, ids pad 0 / eos 1 / bos 2 / unk 3), and
handed to ComfyUI's tokenizer as the text-encoder file carries it: tokenizer_data["spiece_model"].
Weights are seeded random. Works on ComfyUI 0.3.75 and 0.33.0.
"""

from __future__ import annotations

import functools
import io

import torch

from .tiny_dit import TinyModels, _diffusion_model, build_dit_vae, init_weights

# ComfyUI's Lumina 2 system prompts (comfy_extras/nodes_lumina2.py CLIPTextEncodeLumina2) are in the
# training text, so the tiny vocabulary tokenizes them as a real one does: in pieces, words whole.
_TEXT = """You are an assistant designed to generate superior images with the superior degree of image-text
alignment based on textual prompts or user prompts. <Prompt Start> a red circle on the left
You are an assistant designed to generate high-quality images with the highest degree of image-text
alignment based on textual prompts. <Prompt Start> a green square on the right
a blue triangle in the middle, a big yellow star at the top; two small cats are sleeping on a sofa.
A photo of a dog riding a bicycle through the park, with a chocolate cake and a fluffy cat.
Une café au lait, très chaud! The quick brown fox jumps over the lazy dog near the far left corner.
"""
VOCAB_SIZE = 400


@functools.cache
def spiece_model() -> bytes:
    """The tiny SentencePiece model (serialized proto), trained once per process, deterministic."""
    import sentencepiece as spm

    out = io.BytesIO()
    lines = [line for line in _TEXT.splitlines() if line.strip()] * 4
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=out, vocab_size=VOCAB_SIZE, model_type="bpe",
        character_coverage=1.0, byte_fallback=True, add_dummy_prefix=False, remove_extra_whitespaces=False,
        normalization_rule_name="identity", split_digits=True, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"], num_threads=1, seed_sentencepiece_size=1000,
        shuffle_input_sentence=False, minloglevel=2)
    return out.getvalue()


# Gemma 2: a tiny width over the tiny vocabulary; head_dim is fixed at 256 by Gemma2_2B_Config (not a
# field). ComfyUI reads the second-to-last hidden layer.
TINY_GEMMA2 = {"vocab_size": VOCAB_SIZE, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
               "num_attention_heads": 2, "num_key_value_heads": 1}

TINY_LUMINA2_DIT = {
    "image_model": "lumina2",
    "patch_size": 2,
    "in_channels": 16,
    "dim": 64,
    "cap_feat_dim": TINY_GEMMA2["hidden_size"],
    "n_layers": 2,
    "n_refiner_layers": 1,
    "n_heads": 2,
    "n_kv_heads": 1,  # grouped-query attention, as Lumina 2 (24 heads, 8 kv heads)
    "qk_norm": True,
    "axes_dims": [8, 12, 12],  # RoPE axes (caption index, h, w): sum = head dim 32
    "axes_lens": [300, 512, 512],
    "rope_theta": 10000.0,
    "ffn_dim_multiplier": 4.0,
}


def build_lumina2_model(seed: int = 0, dtype: torch.dtype = torch.float32,
                        manual_cast_dtype: torch.dtype | None = None):
    import comfy.supported_models as sm

    return _diffusion_model(sm.Lumina2, dict(TINY_LUMINA2_DIT), seed, dtype, manual_cast_dtype)


def build_lumina2_clip(seed: int = 1):
    """LuminaTokenizer (the tiny SentencePiece model as tokenizer_data["spiece_model"]) and the Lumina 2
    Gemma 2 text encoder: cond [B, tokens, 32], unpadded (each prompt its own length)."""
    import comfy.sd
    import comfy.supported_models as sm

    target = sm.Lumina2(dict(TINY_LUMINA2_DIT)).clip_target(state_dict={})
    clip = comfy.sd.CLIP(target=target, tokenizer_data={"spiece_model": torch.frombuffer(bytearray(spiece_model()),
                                                                                          dtype=torch.uint8)},
                         model_options={"gemma2_2b_model_config": dict(TINY_GEMMA2), "dtype": torch.float32})
    init_weights(clip.cond_stage_model, seed)
    return clip


def build_tiny_lumina2(seed: int = 0, dtype: torch.dtype = torch.float32,
                       manual_cast_dtype: torch.dtype | None = None) -> TinyModels:
    """Tiny Lumina 2 (model_base.Lumina2, FLOW sampling, shift 6: ModelSamplingAuraFlow applies). Seeds as
    build_all: model seed, CLIP seed + 1, VAE seed + 2."""
    return TinyModels(build_lumina2_model(seed, dtype, manual_cast_dtype), build_lumina2_clip(seed + 1),
                      build_dit_vae(seed + 2))
