"""P2P Apply's engine: an edit installed on a ModelPatcher clone through ComfyUI's patch API only.

The model adapter that serves the MODEL (adapters.model_family) installs the attention side: on a
UNet unet_install.py (an attn1 and an attn2 replace patch per transformer block), on an MM-DiT
dit_install.py (a joint-attention override). Then the sampler hooks, here: an OUTER_SAMPLE wrapper
validates the batch before sampling starts (so bad input fails with a clear message instead of deep in
torch), and an inversion and a local blend add theirs.
"""

from __future__ import annotations

from .adapters import model_family
from .batch import check_items
from .blend import make_post_cfg
from .checks import (
    WRAPPER_KEY,
    check_family_options,
    check_model_inputs,
    check_no_cache_speedup,
    check_not_patched,
    check_structure,
    check_text_length,
    checked_outer_sample,
    context_width,
    current_run,
    latent_channels,
    source_at_every_step,
    windows_without_steps,
)
from .conditioning import COND_UID_KEY, encodes_alike
from .dit_install import install_dit_edit
from .edit_runtime import EditRuntime
from .edits import EditPlan, unchanged_edits
from .errors import Explain, P2PError, as_is, warn
from .inversion import install_inversion
from .joint_injection import STRUCTURES, VALUES, RegionSpec
from .steps import sampler_function_name
from .unet_install import DEFAULT_MAP_DOWNSAMPLE, SELF_MIN_DOWNSAMPLE_AUTO, install_unet_edit
from .widget_text import ATTENTION_PATHS, parse_choice

_NOISY_SAMPLERS = ("ancestral", "sde", "lcm", "ddpm", "er_sde", "seeds")


def make_outer_sample_wrapper(runtime: EditRuntime, explain: Explain, model_patcher=None, positive_fix=None):
    n_edits = runtime.compiled.n_edits
    uid = runtime.plan.prompts.uid
    warned: set = set()
    width = context_width(model_patcher) if model_patcher is not None else None
    channels = latent_channels(model_patcher) if model_patcher is not None else None

    def check(executor, noise, latent_image, sampler, sigmas) -> None:
        guider = executor.class_obj  # the MODEL sampled: speed-ups added after P2P Apply are on it
        check_no_cache_speedup(getattr(guider, "model_patcher", None), getattr(guider, "model_options", None))
        check_items(latent_image.shape[0], n_edits)
        conds = executor.class_obj.conds
        if model_patcher is not None:
            check_model_inputs(model_patcher, conds, latent_image, width, channels)
        positive = conds.get("positive", [])
        uids = {c.get(COND_UID_KEY) for c in positive if isinstance(c, dict)}
        if uid not in uids:
            raise P2PError("the sampler's positive conditioning does not come from the prompts this edit "
                           "was built from.", fix=positive_fix or "sampler_positive")
        check_text_length(conds, runtime.plan.prompts.length)
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
        runtime.skips_warned = False  # once per sampling run (EditRuntime.check_blocks_ran)
        if runtime.store is not None:
            runtime.store.reset(current_run())
        out = executor(noise, latent_image, sampler, sigmas, *args, **kwargs)
        if runtime.store is not None:
            runtime.store.vouch(out)
        return out

    return checked_outer_sample(check, explain, sample, explain_sampling=True)


def warn_other_source(prompts, positive_context) -> None:
    """An inversion made under another prompt than the edit's source: the source item does not come back as
    the image (and the edits drift with it), with nothing else showing why."""
    source = prompts.source_conditioning[0][0] if prompts.source_conditioning else None
    if encodes_alike(source, positive_context) is False:
        warn("the inversion was made under a positive prompt other than the source prompt %r (their text "
             "encodings differ), so the source will not reconstruct the image and the edits follow another prompt. "
             "Invert under the source prompt itself (the same text, or the Prompt Pair's conditioning or prompts "
             "as the inversion's positive).", prompts.source.text)


def apply_edit(
    model_patcher,
    plan: EditPlan,
    attention_path: str = "fast",
    self_attn_min_downsample: int = SELF_MIN_DOWNSAMPLE_AUTO,
    map_downsample: int = DEFAULT_MAP_DOWNSAMPLE,
    inversion=None,
    explain: Explain = as_is,
    self_blocks: str = "auto",
    mmdit_structure: str = VALUES,
    region: RegionSpec = RegionSpec(),
    own_changed: bool = True,
):
    """A patched clone of `model_patcher` (the input is never mutated) and its runtime. The settings
    carry P2P Apply's widget names, and keep them down to the runtimes; only attention_path becomes the
    runtimes' `reference` bool (attention_path == "reference").
    UNet models: self_attn_min_downsample 0 (auto) is 2 with an inversion (real image), else 4, as the
    official notebooks; map_downsample sets the store's resolution. MM-DiT models (Flux.1, SD3):
    self_blocks chooses the blocks with structure injection (dit_install.install_dit_edit).
    `explain` turns an error raised while the patched model samples into what the user reads."""
    import comfy.patcher_extension

    reference = parse_choice(attention_path, ATTENTION_PATHS, "attention_path") == "reference"
    check_not_patched(model_patcher)
    check_no_cache_speedup(model_patcher)
    family = model_family(model_patcher)
    check_family_options(family, self_blocks, self_attn_min_downsample, map_downsample, SELF_MIN_DOWNSAMPLE_AUTO,
                         DEFAULT_MAP_DOWNSAMPLE)
    check_structure(family, mmdit_structure, STRUCTURES, VALUES)
    marker = family.system_prompt_marker if family is not None else None
    if marker and marker not in plan.prompts.source.text:
        warn("the source prompt %r has no system prompt: %s is trained on prompts written '<system prompt> %s "
             "<prompt>' (ComfyUI's own %s text encoding writes them so). Write the source so; the edits take its "
             "system prompt.", plan.prompts.source.text, family.label, marker, family.label)
    compiled = plan.compiled(own_changed=own_changed and family is not None)  # make_plan compiled it once
    same = unchanged_edits(plan, compiled)
    if same and inversion is None:  # with an inversion, an identical edit is a reconstruction check
        warn("edit prompt(s) %s equal the source and no word is reweighted: they will give the source image "
             "back.", same)
    if inversion is not None and getattr(inversion, "prompts_uid", None) != plan.prompts.uid:
        # (an inversion given these prompts compared its positive with their source already)
        warn_other_source(plan.prompts, getattr(inversion, "positive_context", None))
    patched = model_patcher.clone()
    if family is None:
        runtime = install_unet_edit(patched, plan, compiled, reference, self_attn_min_downsample, map_downsample,
                                    real_image=inversion is not None)
    else:
        runtime = install_dit_edit(patched, plan, compiled, family, reference, self_blocks, mmdit_structure, region)
    wrapper = make_outer_sample_wrapper(runtime, explain, model_patcher, getattr(family, "positive_fix", None))
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, wrapper)
    if inversion is not None:
        # Before local blend: direct inversion corrects the source's prediction, and the blend
        # must copy the corrected source outside its mask.
        install_inversion(patched, inversion, n_items=1 + runtime.compiled.n_edits, explain=explain)
    if plan.blend is not None:
        patched.set_model_sampler_post_cfg_function(make_post_cfg(plan.blend, runtime.store, plan.prompts))
    return patched, runtime
