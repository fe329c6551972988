"""Flux.2 (ComfyUI config Flux2; comfy/ldm/flux/model.py with Flux.2's parameters): double-stream then
single-stream blocks that name themselves (block_type double/single), [txt | img] joint calls through
optimized_attention, 128-channel latents at patch 1, the text's position on a fourth RoPE axis, no
pooled vector. Two variants, told apart by the guidance embedding the model was detected with:

- klein (Qwen3 text encoder, chat template, padded to 512): no guidance embedding; sampled with real
  cfg (base) or at cfg 1 (step-distilled): not guidance-distilled;
- dev (Mistral 3 Small text encoder): guidance-embedded, cfg 1: guidance-distilled (the inversions on the
  negative branch are refused). Its tokenizer puts a start token and a system prompt before the prompt
  (located by chat_tokens.build_templated, as klein's template) and never pads; model_base.Flux2.extra_conds
  zero-pads the context on the LEFT to 512 tokens. The Prompt Pair adds that padding itself
  (conditioning.encode_prompt_set, text_streams.LEFT_PADDED_CONTEXT) as PAD positions, so prompts of
  unequal length sit at their own offsets and the token mappers pair template, words and padding.
"""

from dataclasses import dataclass

from .base import DiTFamily


@dataclass(frozen=True)
class Flux2Family(DiTFamily):
    guidance_embed: bool = False  # the variant: dev has a guidance embedding, klein has none

    def supports(self, dm) -> bool:
        params = getattr(dm, "params", None)
        return super().supports(dm) and bool(getattr(params, "guidance_embed", False)) == self.guidance_embed


_COMMON = dict(configs=("Flux2",), block_lists=(("double", "double_blocks"), ("single", "single_blocks")),
               context_layer="txt_in",
               # Self-map injection: the later single-stream blocks, as on Flux.1 (the same fraction).
               map_blocks=("single", 20 / 38))
FLUX2_KLEIN = Flux2Family(name="flux2", label="Flux.2 klein", **_COMMON)
FLUX2_DEV = Flux2Family(name="flux2", label="Flux.2 dev", distilled=True, guidance_embed=True, **_COMMON)
