"""Installation of an edit on an MM-DiT ModelPatcher clone, through the patcher API only: a keyed
APPLY_MODEL wrapper puts the joint-attention override into each model call's transformer_options
(around any override already there), and on SD3, whose blocks do not name themselves, a "dit"
block replace patch per joint block tags the call with its block (wrapping any patch there). The
runtime and its attention store are built here (unet_install.py is the UNet counterpart)."""

from __future__ import annotations

import itertools

from .checks import WRAPPER_KEY
from .dit_blocks import attention_blocks, patch_size, select_blocks, token_grid
from .dit_runtime import (
    COUNT_KEY,
    CTX_KEY,
    GRID_KEY,
    IMG_KEY,
    TEXT_CALLS_KEY,
    TXT_KEY,
    DiTRuntime,
    JointAttentionOverride,
)
from .families import DiTFamily
from .joint_injection import MAPS, VALUES, RegionSpec
from .store import AttentionStore
from .widget_text import parse_block_ranges

OVERRIDE_KEY = "optimized_attention_override"


def _padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def patched_blocks(transformer_options: dict, block_types: tuple[str, ...]) -> set[tuple[str, int]]:
    """The blocks a "dit" block replace patch of another pack owns in this call (ComfyUI names the first
    block list's patches double_block, the second's single_block); P2P's own BlockTag is not one."""
    names = dict(zip(("double_block", "single_block"), block_types))
    dit = (transformer_options.get("patches_replace") or {}).get("dit", {})
    return {(names[key[0]], key[1]) for key, fn in dit.items()
            if isinstance(key, tuple) and len(key) == 2 and key[0] in names and not isinstance(fn, BlockTag)}


def make_apply_model_wrapper(runtime: DiTRuntime, patch: int, multiple: int = 1, count_blocks: bool = False,
                             block_types: tuple[str, ...] = (), text_calls: int = 0):
    """multiple: the model pads caption and image tokens to it (families.DiTFamily.token_multiple);
    count_blocks: each call gets a counter that numbers its joint calls (DiTFamily.count_blocks);
    text_calls: each call starts with that many text-only attention calls (DiTFamily.text_blocks)."""
    def apply_model(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None,
                    **kwargs):
        to = dict(transformer_options or {})
        grid = token_grid(x.shape, patch)
        n_ctx = int(c_crossattn.shape[1])
        to[TXT_KEY], to[IMG_KEY], to[GRID_KEY] = _padded(n_ctx, multiple), _padded(grid[0] * grid[1], multiple), grid
        to[CTX_KEY] = n_ctx
        if count_blocks:
            to[COUNT_KEY] = itertools.count()
        if text_calls:
            to[TEXT_CALLS_KEY] = iter(range(text_calls))
        to[OVERRIDE_KEY] = JointAttentionOverride(runtime, to.get(OVERRIDE_KEY))
        runtime.ran = set()
        out = executor(x, t, c_concat, c_crossattn, control, to, **kwargs)
        runtime.check_blocks_ran(to, patched_blocks(to, block_types))
        return out

    return apply_model


class BlockTag:
    """A block replace patch (SD3's joint blocks): the block's calls carry block_type/block_index, as
    Flux's do."""

    def __init__(self, index: int, prior=None):
        self.index, self.prior = index, prior

    def __call__(self, args, extra):
        args = {**args, "transformer_options": {**args["transformer_options"], "block_type": "joint",
                                                "block_index": self.index}}
        return self.prior(args, extra) if self.prior is not None else extra["original_block"](args)

    def __deepcopy__(self, memo):
        return self


def install_dit_edit(patched, plan, compiled, family: DiTFamily, reference: bool = False, self_blocks: str = "auto",
                     structure: str = VALUES, region: RegionSpec = RegionSpec()) -> DiTRuntime:
    """The override (and block tags where the family's blocks do not name themselves) on `patched` (a clone); its runtime. self_blocks chooses the
    blocks with structure injection (widget text: 'auto', 'all', 'none', 'single 20-37, double 0-1')."""
    import comfy.patcher_extension

    blocks = attention_blocks(patched, family)
    chosen = select_blocks(parse_block_ranges(self_blocks), blocks, family, every=structure != MAPS)
    runtime = DiTRuntime(plan=plan, compiled=compiled, self_blocks=chosen, reference=reference,
                         store=AttentionStore(plan.prompts), structure=structure, region_spec=region,
                         count_type=family.block_lists[0][0], blocks=frozenset(blocks))

    dm = patched.get_model_object("diffusion_model")
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY,
                                 make_apply_model_wrapper(runtime, patch_size(patched), family.pad_multiple(dm),
                                                          family.count_blocks,
                                                          tuple(kind for kind, _ in family.block_lists),
                                                          family.text_calls(dm)))
    if not family.tag_blocks:
        return runtime
    registered = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    for _, i in blocks:
        prior = registered.get(("double_block", i))
        if isinstance(prior, BlockTag):  # applied twice: the newer edit keeps the older's prior
            prior = prior.prior
        patched.set_model_patch_replace(BlockTag(i, prior), "dit", "double_block", i)
    return runtime
