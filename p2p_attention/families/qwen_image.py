"""Qwen-Image (and its fine-tunes): double-stream blocks only (transformer_blocks), [txt | img] joint calls
through optimized_attention_masked (q/k/v as [B, H, L, D]); the blocks name themselves (block_type
"double", block_index) in both ComfyUIs. The text is Qwen2.5-VL's last hidden states with the chat
template's system part trimmed after encoding (text_streams.context_prompt keeps the tail the context
holds); prompts of unequal length are padded and the padding masked (conditioning.encode_prompt_set,
dit_runtime). No published block choice for self-map injection: every block (Shin et al. edit all).
Not guidance-distilled: sampled with cfg and a negative prompt (ComfyUI's example: cfg 4, 2.5 in the
templates of ComfyUI 0.3.75; shift 3.1)."""

from .base import DiTFamily

QWEN_IMAGE = DiTFamily(name="qwen_image", label="Qwen-Image", configs=("QwenImage",),
                       block_lists=(("double", "transformer_blocks"),), context_layer="txt_in")
