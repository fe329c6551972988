"""Install an edit on a ModelPatcher clone through ComfyUI's patch API only.

On a UNet every BasicTransformerBlock gets an attn1 and an attn2 replace patch (wrapping any
replace patch another pack registered before us); on an MM-DiT an attention override does the
same job (dit_install.py). An OUTER_SAMPLE wrapper validates the batch before sampling starts (so
bad input fails with a clear message instead of deep in torch), and an inversion and a local
blend add their sampler hooks.
"""

from __future__ import annotations

from .batch import check_items
from .blend import make_post_cfg
from .checks import (
    WRAPPER_KEY,
    check_family_options,
    check_model_inputs,
    check_not_patched,
    check_structure,
    checked_outer_sample,
    context_width,
    current_run,
    latent_channels,
    source_at_every_step,
    windows_without_steps,
)
from .conditioning import COND_UID_KEY
from .dit_blocks import attention_blocks, dit_family, parse_self_blocks, patch_size
from .dit_install import install_dit_edit
from .dit_runtime import DiTRuntime
from .edits import EditPlan, unchanged_edits
from .errors import Explain, P2PError, as_is, warn
from .inversion import install_inversion
from .joint_injection import MAPS, STRUCTURES, VALUES, RegionSpec
from .runtime import DEFAULT_SELF_MIN_DOWNSAMPLE, P2PAttentionPatch, P2PRuntime
from .steps import sampler_function_name
from .store import AttentionStore
from .unet_blocks import block_downsample, choose_factor, transformer_block_keys

# Self-attention injection sites, as a downsample factor of the latent (0 = auto: by image kind).
SELF_MIN_DOWNSAMPLE_AUTO = 0
REAL_IMAGE_SELF_MIN_DOWNSAMPLE = 2  # official null-text (real image) notebook: <= 32x32 at 512 px
DEFAULT_MAP_DOWNSAMPLE = 4  # attention store and local blend: the official 16x16 maps at 512 px
_NOISY_SAMPLERS = ("ancestral", "sde", "lcm", "ddpm", "er_sde", "seeds")


def make_outer_sample_wrapper(runtime: P2PRuntime, explain: Explain, model_patcher=None):
    n_edits = runtime.compiled.n_edits
    uid = runtime.plan.prompts.uid
    warned: set = set()
    width = context_width(model_patcher) if model_patcher is not None else None
    channels = latent_channels(model_patcher) if model_patcher is not None else None

    def check(executor, noise, latent_image, sampler, sigmas) -> None:
        check_items(latent_image.shape[0], n_edits)
        conds = executor.class_obj.conds
        if model_patcher is not None:
            check_model_inputs(model_patcher, conds, latent_image, width, channels)
        positive = conds.get("positive", [])
        uids = {c.get(COND_UID_KEY) for c in positive if isinstance(c, dict)}
        if uid not in uids:
            raise P2PError("the sampler's positive conditioning does not come from the prompts this edit "
                           "was built from.", fix="sampler_positive")
        n_steps = len(sigmas) - 1
        empty = windows_without_steps(runtime.compiled, n_steps)
        if empty and ("empty", n_steps) not in warned:
            warned.add(("empty", n_steps))
            warn("%s select(s) no step of this %d-step sampling, so that control does nothing; widen the window "
                 "(or write 0 to turn it off).", ", ".join(empty), n_steps)
        if source_at_every_step(runtime.compiled, n_steps) and ("steps", n_steps) not in warned:
            warned.add(("steps", n_steps))
            warn("all %d sampling step(s) are inside the cross_replace window of every word, so the edits take "
                 "the source's attention at every step and will stay close to the source. Sample with more steps "
                 "(the default window 0.8 leaves the last steps to the edit from 5 steps on) or shorten "
                 "cross_replace.", n_steps)
        name = sampler_function_name(sampler)
        if any(tag in name for tag in _NOISY_SAMPLERS) and name not in warned:
            warned.add(name)
            warn("sampler '%s' adds fresh random noise to every batch item at each step, so the edits drift "
                 "away from the source. Use a deterministic sampler (ddim, euler, dpmpp_2m, uni_pc, heun) to "
                 "keep the layout.", name)

    def sample(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        if runtime.store is not None:
            runtime.store.reset(current_run())
        out = executor(noise, latent_image, sampler, sigmas, *args, **kwargs)
        if runtime.store is not None:
            runtime.store.vouch(out)
        return out

    return checked_outer_sample(check, explain, sample, explain_sampling=True)


def apply_edit(
    model_patcher,
    plan: EditPlan,
    reference: bool = False,
    self_min_downsample: int = SELF_MIN_DOWNSAMPLE_AUTO,
    map_downsample: int = DEFAULT_MAP_DOWNSAMPLE,
    inversion=None,
    explain: Explain = as_is,
    self_blocks: str = "auto",
    structure: str = VALUES,
    region: RegionSpec = RegionSpec(),
    own_changed: bool = True,
):
    """A patched clone of `model_patcher` (the input is never mutated) and its runtime.
    UNet models: self_min_downsample 0 (auto) is 2 with an inversion (real image), else 4, as the
    official notebooks; map_downsample sets the store's resolution. MM-DiT models (Flux.1, SD3):
    self_blocks chooses the blocks with self injection (dit_blocks.parse_self_blocks).
    `explain` turns an error raised while the patched model samples into what the user reads."""
    import comfy.patcher_extension

    check_not_patched(model_patcher)
    family = dit_family(model_patcher)
    check_family_options(family, self_blocks, self_min_downsample, map_downsample, SELF_MIN_DOWNSAMPLE_AUTO,
                         DEFAULT_MAP_DOWNSAMPLE)
    check_structure(family, structure, STRUCTURES, VALUES)
    compiled = plan.compiled(own_changed=own_changed and family is not None)  # make_plan compiled it once
    same = unchanged_edits(plan, compiled)
    if same and inversion is None:  # with an inversion, an identical edit is a reconstruction check
        warn("edit prompt(s) %s equal the source and no word is reweighted: they will give the source image "
             "back.", same)
    patched = model_patcher.clone()
    if family is None:
        runtime = _install_unet(patched, plan, compiled, reference, self_min_downsample, map_downsample,
                                inversion is not None)
    else:
        blocks = attention_blocks(model_patcher, family)
        store = AttentionStore(set(), patch_size(model_patcher), plan.prompts)
        runtime = DiTRuntime(plan=plan, compiled=compiled, self_blocks=parse_self_blocks(
            self_blocks, blocks, family, every=structure != MAPS),
                             reference=reference, store=store, structure=structure, region_spec=region)
        install_dit_edit(patched, runtime, family, blocks)
    patched.add_wrapper_with_key(
        comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, make_outer_sample_wrapper(runtime, explain, model_patcher)
    )
    if inversion is not None:
        # Before local blend: direct inversion corrects the source's prediction, and the blend
        # must copy the corrected source outside its mask.
        install_inversion(patched, inversion, n_items=1 + runtime.compiled.n_edits, explain=explain)
    if plan.blend is not None:
        patched.set_model_sampler_post_cfg_function(make_post_cfg(plan.blend, runtime.store, plan.prompts))
    return patched, runtime


def _install_unet(patched, plan, compiled, reference, self_min_downsample, map_downsample, real_image):
    """attn1/attn2 replace patches on every transformer block (wrapping another pack's)."""
    diffusion_model = patched.get_model_object("diffusion_model")
    keys = transformer_block_keys(diffusion_model)
    if self_min_downsample == SELF_MIN_DOWNSAMPLE_AUTO:
        self_min_downsample = REAL_IMAGE_SELF_MIN_DOWNSAMPLE if real_image else DEFAULT_SELF_MIN_DOWNSAMPLE
    factors = block_downsample(diffusion_model)
    factor = choose_factor(set(factors.values()), map_downsample)
    store = AttentionStore({k for k, f in factors.items() if f == factor}, factor, plan.prompts)
    runtime = P2PRuntime(plan=plan, compiled=compiled, reference=reference, self_min_downsample=self_min_downsample,
                         store=store)
    existing = patched.model_options.get("transformer_options", {}).get("patches_replace", {})
    for kind, setter in (("attn1", patched.set_model_attn1_replace), ("attn2", patched.set_model_attn2_replace)):
        registered = existing.get(kind, {})
        for name, number, index in keys:
            prior = registered.get((name, number, index), registered.get((name, number)))
            if isinstance(prior, P2PAttentionPatch):  # P2P applied twice: the newer edit replaces the older
                prior = prior.prior
            setter(P2PAttentionPatch(runtime, kind, prior), name, number, index)
    return runtime
