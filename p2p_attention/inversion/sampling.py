"""Sampling time: what an inversion installs on the patched model, and the OUTER_SAMPLE check that
refuses a schedule, sampler, noise or batch the inversion was not made for."""

from __future__ import annotations

import logging

import torch

from ..batch import check_items
from ..errors import P2PError
from ..steps import sampler_function_name
from .methods import strategy
from .result import _EULER_FUNCTIONS, WRAPPER_KEY, Inversion


def make_outer_sample_wrapper(inversion: Inversion, n_items: int, node: str):
    import comfy.sampler_helpers

    method = strategy(inversion.method, node)
    inv_sigmas = inversion.sigmas.double()
    warned = set()

    def check(noise, latent_image, sampler, sigmas, guider):
        how = (
            f"Sample with KSamplerAdvanced (add_noise disabled, sampler '{inversion.sampler}', scheduler "
            f"'{inversion.scheduler}', steps {inversion.steps}, start_at_step 0, end_at_step >= {inversion.n_steps}) "
            f"or SamplerCustom (add_noise off, sampler '{inversion.sampler}', BasicScheduler "
            f"'{inversion.scheduler}' with {inversion.steps} steps, denoise 1.0)."
        )
        got = sigmas.detach().double().cpu().reshape(-1)
        if got.shape != inv_sigmas.shape or not torch.allclose(got, inv_sigmas, rtol=1e-4, atol=1e-5):
            raise ValueError(
                f"{node}: the sampler's schedule ({got.numel() - 1} steps, sigma {float(got[0]) if got.numel() else 0:.4g}"
                f" -> {float(got[-1]) if got.numel() else 0:.4g}) is not the one the image was inverted with "
                f"({inversion.n_steps} steps, {float(inv_sigmas[0]):.4g} -> {float(inv_sigmas[-1]):.4g}); steps, "
                f"scheduler and denoise must match. {how}"
            )
        name = sampler_function_name(sampler)
        if name not in _EULER_FUNCTIONS:
            raise ValueError(
                f"{node}: the sampler ({name.replace('sample_', '')}) is not the one the image was inverted "
                f"with; the inversion reverses DDIM steps. {how}"
            )
        if torch.count_nonzero(noise) > 0:
            raise ValueError(
                f"{node}: the sampler adds noise to the inverted latent (KSampler always does). {how}"
            )
        try:
            check_items(latent_image.shape[0], n_items - 1)
        except P2PError as e:
            raise P2PError(f"{node}: {e}") from None
        if tuple(latent_image.shape[1:]) != tuple(inversion.latent.shape[1:]):
            raise ValueError(
                f"{node}: the latent is {tuple(latent_image.shape[1:])} but the inverted image is "
                f"{tuple(inversion.latent.shape[1:])}. Feed P2P Invert's LATENT output to the sampler."
            )
        if inversion.model_id and id(guider.model_patcher.model) != inversion.model_id and "model" not in warned:
            warned.add("model")
            logging.warning("%s: the image was inverted with a different model; the reconstruction will drift.", node)
        method.check_sampling(inversion, guider, warned, node)

    def outer_sample(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        guider = executor.class_obj
        check(noise, latent_image, sampler, sigmas, guider)
        conds = getattr(guider, "conds", None)
        negative = method.negative(inversion)
        if negative is not None and isinstance(conds, dict) and "negative" in conds:
            conds["negative"] = comfy.sampler_helpers.convert_cond(negative)
        return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)

    return outer_sample


def install_inversion(patched_model, inversion: Inversion, n_items: int = 1, node: str = "P2P Apply"):
    """Register what `inversion.method` needs at sampling time on an ALREADY CLONED ModelPatcher.

    n_items: the latent batch the sampler will get (1 + number of edits; 1 for a plain
    reconstruction). Returns the same patcher.
    """
    import comfy.patcher_extension

    if not isinstance(inversion, Inversion):
        raise ValueError(f"{node}: the inversion input must come from P2P Invert.")
    outer = comfy.patcher_extension.WrappersMP.OUTER_SAMPLE
    if patched_model.get_wrappers(outer, WRAPPER_KEY):
        raise ValueError(f"{node}: this MODEL already has an inversion installed; connect the original MODEL.")
    strategy(inversion.method, node).install(patched_model, inversion, node)
    patched_model.add_wrapper_with_key(outer, WRAPPER_KEY, make_outer_sample_wrapper(inversion, int(n_items), node))
    return patched_model
