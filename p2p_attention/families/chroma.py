"""Chroma and Chroma Radiance: Flux.1's double-stream then single-stream blocks (no modulation layers:
an Approximator makes every block's modulation), [txt | img] joint calls through optimized_attention,
the blocks name themselves (block_type double/single). The text context is T5 alone, unpadded (ComfyUI's
PixArt tokenizer): prompts of unequal length are zero-padded and the padding MASKED
(conditioning.encode_prompt_set), so dit_runtime masks it in every call. Real CFG (not guidance-distilled): the
inversion methods on the negative work. Radiance runs the same blocks on 16x16 pixel patches (no VAE)."""

from .base import DiTFamily

# Self-map injection: the later single-stream blocks, as on Flux.1 (Chroma keeps its 19 + 38 blocks).
CHROMA = DiTFamily(name="chroma", label="Chroma", configs=("Chroma", "ChromaRadiance"),
                   block_lists=(("double", "double_blocks"), ("single", "single_blocks")), context_layer="txt_in",
                   map_blocks=("single", 20 / 38), distilled=False)
