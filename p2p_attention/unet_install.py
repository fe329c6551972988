"""Installation of an edit on a UNet ModelPatcher clone, through the patcher API only: an attn1 and an
attn2 replace patch on every transformer block (wrapping a replace patch another pack registered
before), and the attention store fed from the blocks of one resolution (map_downsample)."""

from __future__ import annotations

from .checks import WRAPPER_KEY
from .store import AttentionStore
from .unet_blocks import block_downsample, choose_factor, transformer_block_keys
from .unet_runtime import (
    DEFAULT_SELF_MIN_DOWNSAMPLE,
    MapRecorder,
    P2PAttentionPatch,
    P2PRuntime,
    make_apply_model_wrapper,
)

# Self-attention injection sites, as a downsample factor of the latent (0 = auto: by image kind).
SELF_MIN_DOWNSAMPLE_AUTO = 0
REAL_IMAGE_SELF_MIN_DOWNSAMPLE = 2  # official null-text (real image) notebook: <= 32x32 at 512 px
DEFAULT_MAP_DOWNSAMPLE = 4  # attention store and local blend: the official 16x16 maps at 512 px


def install_unet_edit(patched, plan, compiled, reference: bool, self_attn_min_downsample: int, map_downsample: int,
                      real_image: bool) -> P2PRuntime:
    """attn1/attn2 replace patches on every transformer block of `patched` (a clone); its runtime.
    self_attn_min_downsample 0 (auto) is 2 for a real image (an inversion), else 4, as the official notebooks."""
    diffusion_model = patched.get_model_object("diffusion_model")
    keys = transformer_block_keys(diffusion_model)
    if self_attn_min_downsample == SELF_MIN_DOWNSAMPLE_AUTO:
        self_attn_min_downsample = REAL_IMAGE_SELF_MIN_DOWNSAMPLE if real_image else DEFAULT_SELF_MIN_DOWNSAMPLE
    factors = block_downsample(diffusion_model)
    factor = choose_factor(set(factors.values()), map_downsample)
    store = AttentionStore(plan.prompts)
    recorder = MapRecorder(store, {k for k, f in factors.items() if f == factor}, factor)
    runtime = P2PRuntime(plan=plan, compiled=compiled, reference=reference, self_attn_min_downsample=self_attn_min_downsample,
                         store=store, recorder=recorder,
                         blocks=frozenset((kind, *key) for kind in ("attn1", "attn2") for key in keys))
    existing = patched.model_options.get("transformer_options", {}).get("patches_replace", {})
    for kind, setter in (("attn1", patched.set_model_attn1_replace), ("attn2", patched.set_model_attn2_replace)):
        registered = existing.get(kind, {})
        for name, number, index in keys:
            prior = registered.get((name, number, index), registered.get((name, number)))
            if isinstance(prior, P2PAttentionPatch):  # P2P applied twice: the newer edit replaces the older
                prior = prior.prior
            setter(P2PAttentionPatch(runtime, kind, prior), name, number, index)
    import comfy.patcher_extension

    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY,
                                 make_apply_model_wrapper(runtime))
    return runtime
