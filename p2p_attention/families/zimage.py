"""Z-Image (NextDiT, ComfyUI config ZImage; comfy/ldm/lumina/model.py): one stream over [caption | image]
tokens. The caption first goes through text-only context_refiner layers and the image through image-only
noise_refiner layers; the joint calls are the main `layers`, through optimized_attention_masked with no
mask in either ComfyUI (0.3.75, 0.33.0). Both streams are padded inside the model to a multiple of 32
with learned pad tokens (cap_pad_token after the caption, x_pad_token after the image tokens): the joint
call is [caption | caption pads | image | image pads].

Only the joint calls are edited. The refiners are left to the edit: the context refiner sees each
item's own caption (its words are the edit's), and the noise refiner, which has no text, sees the
item's own latent; structure reaches the image through the joint layers, where every control acts
(values outside the edit / image q,k in every layer, as on SD3).

Block naming: ComfyUI 0.33.0 sets block_type "double" and block_index on the main layers; 0.3.75 names
no block and its NextDiT takes no "dit" block replace patches, so the override numbers the joint calls
of each model call in order (count_blocks): the refiners' calls are never joint (their length is the
caption's or the image's alone), so the n-th joint call of a model call is layer n.

Lumina 2 (config Lumina2, the same NextDiT without pad tokens, a Gemma 2 text encoder) is its own family
(lumina2.py).
"""

from .base import DiTFamily

ZIMAGE = DiTFamily(name="zimage", label="Z-Image", configs=("ZImage",), block_lists=(("double", "layers"),),
                   context_layer="cap_embedder.1", token_multiple="pad_tokens_multiple", count_blocks=True)
