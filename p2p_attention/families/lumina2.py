"""Lumina 2 (Lumina-Image-2.0, ComfyUI config Lumina2): the NextDiT of Z-Image (comfy/ldm/lumina/model.py)
at Lumina 2's settings: one stream over [caption | image] tokens, the caption first through text-only
context_refiner layers and the image through image-only noise_refiner layers, the joint calls the main
`layers`, through optimized_attention_masked with no mask in either ComfyUI (0.3.75, 0.33.0). No pad
tokens (pad_tokens_multiple unset): the joint call is exactly [caption | image].

The text encoder is Gemma 2 2B (ComfyUI's LuminaTokenizer: SentencePiece carried inside the text-encoder
file, BOS 2, no padding, each prompt its own length). Its words are placed by the tokens' bytes
(spiece_tokens.py); the system prompt ComfyUI's CLIP Text Encode (Lumina 2) writes before
"<Prompt Start>" is the template head (START tokens), shared by the edits. Prompts of unequal length are
zero-padded BEFORE their tokens and the padding MASKED (conditioning.encode_prompt_set, the left padding
of Flux.2 dev's but masked), masked by the override in the context_refiner's text-only calls (text_blocks)
and in every joint call: NextDiT numbers caption tokens from the first on its RoPE caption axis and puts
the image after the last, so leading padding keeps every relative position, and a padded prompt renders
as alone (measured 2.9e-7 of the latent's scale on the tiny model; padded after the words, 2.1e-2).

Only the joint calls are edited, as on Z-Image (the refiners see each item's own caption or latent).
Block naming as Z-Image: 0.33.0 sets block_type "double" and block_index, 0.3.75 names no block, so the
override numbers the joint calls of a model call in order (count_blocks). A flow model sampled with real
cfg (ComfyUI's example: ModelSamplingAuraFlow shift 6, cfg 4): not guidance-distilled.
"""

from ..spiece_tokens import SYSTEM_PROMPT_MARKER
from .base import DiTFamily

# A positive from ComfyUI's Lumina 2 text-encode node (or CLIPTextEncode) in place of the Prompt Pair's.
lumina2_positive_fix = "lumina2_positive"
LUMINA2 = DiTFamily(name="lumina2", label="Lumina 2", configs=("Lumina2",), block_lists=(("double", "layers"),),
                    context_layer="cap_embedder.1", token_multiple="pad_tokens_multiple", count_blocks=True,
                    text_blocks="context_refiner",
                    system_prompt_marker=SYSTEM_PROMPT_MARKER, positive_fix=lumina2_positive_fix)
