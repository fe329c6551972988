"""What makes an MM-DiT family: one DiTFamily value per family (a module of this package each), read by
the one MM-DiT adapter (dit_install.py, dit_runtime.py). Everything else (the edit maths, the store,
local blend, the nodes) is shared."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DiTFamily:
    name: str  # the engine's name ("flux")
    label: str  # the user's name ("Flux.1"), in messages and the README
    configs: tuple[str, ...]  # ComfyUI model config classes (what its model detection chose)
    # (block_type, the diffusion model's ModuleList): every attention block, in call order. block_type is
    # what the family's blocks put in transformer_options (or what tag_blocks puts there).
    block_lists: tuple[tuple[str, str], ...]
    # The layer whose in_features is the text context's width (checks: another model's text encoder).
    context_layer: str
    # The blocks do not name themselves in transformer_options: a "dit" block replace patch per block
    # tags each call (SD3).
    tag_blocks: bool = False
    # Self-map injection (mmdit_structure self_maps) by default: (block_type, from fraction) = that
    # list's later blocks; None: every block.
    map_blocks: tuple[str, float] | None = None
    # Guidance-distilled (no unconditional branch, cfg 1): inversion methods that work on the negative
    # are refused.
    distilled: bool = False
    # The diffusion model's attribute naming the multiple it pads both streams to inside the model, with
    # learned pad tokens after the caption and after the image tokens (Z-Image: pad_tokens_multiple); None
    # (or the attribute None): the joint call is exactly [context | image tokens].
    token_multiple: str | None = None
    # The blocks do not name themselves and take no block replace patch: the override numbers the model
    # call's joint calls in call order as the first block list's (Z-Image on ComfyUI 0.3.75; an index
    # ComfyUI sets is used where it sets one).
    count_blocks: bool = False
    # The diffusion model's ModuleList of text-only attention layers, run on the caption alone before any
    # other attention of a model call (Lumina 2's context_refiner): the prompts' MASKED padding is masked
    # there too (dit_runtime), so a padded prompt's caption is refined as alone. None: no such layers.
    text_blocks: str | None = None
    # The family's prompts start with a system prompt ended by this marker (Lumina 2: "<Prompt Start>", as
    # ComfyUI's Lumina 2 text-encode node writes them): P2P Apply warns about a source without one.
    system_prompt_marker: str | None = None
    # The fix key of a sampler positive that is not the Prompt Pair's, where the family's usual text
    # encoding needs its own words (nodes/messages.py); None: the general one.
    positive_fix: str | None = None

    def supports(self, dm) -> bool:
        """The diffusion model has this family's block lists (a config name alone could be reused)."""
        return all(hasattr(dm, attr) for _, attr in self.block_lists)

    def pad_multiple(self, dm) -> int:
        """The multiple the model pads its caption and image token counts to (1: none)."""
        return int(getattr(dm, self.token_multiple, None) or 1) if self.token_multiple else 1

    def text_calls(self, dm) -> int:
        """How many text-only attention calls a model call starts with (text_blocks)."""
        return len(getattr(dm, self.text_blocks, ())) if self.text_blocks else 0

    def blocks(self, dm) -> list[tuple[str, int]]:
        """Every attention block as (block_type, index), in order."""
        return [(kind, i) for kind, attr in self.block_lists for i in range(len(getattr(dm, attr)))]

    def default_self_blocks(self, blocks: list[tuple[str, int]], every: bool = False) -> set[tuple[str, int]]:
        """every: the injections that substitute q/k/v rows (values outside the edit, image q/k) act in
        every block (measured: docs/mmdit_controls.md; Shin et al. inject q/k in every block); self-map
        injection in map_blocks."""
        if every or self.map_blocks is None:
            return set(blocks)
        kind, start = self.map_blocks
        chosen = [b for b in blocks if b[0] == kind]
        first = round(start * len(chosen))
        return {b for b in chosen if b[1] >= first}
