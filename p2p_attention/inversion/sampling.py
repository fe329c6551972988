"""Sampling time: what an inversion installs on the patched model, and the OUTER_SAMPLE check that
refuses a schedule, sampler, noise or batch the inversion was not made for."""

from __future__ import annotations

import torch

from ..batch import check_items
from ..checks import checked_outer_sample
from ..errors import Explain, P2PError, as_is, warn
from ..steps import sampler_function_name
from .methods import strategy
from .result import Inversion
from .settings import _EULER_FUNCTIONS, FLOW_SAMPLER, FLOW_SCHEDULER, INVERSION_KEY


def _flow_start(guider, latent_image):
    """The noise that makes a flow model's sampler start at the inverted latent itself. ComfyUI starts
    flow sampling at sigma_0 * noise + (1 - sigma_0) * latent, which is 0 for the zero noise of a
    sampler without added noise at sigma_0 = 1; with the (processed) latent as the noise the start is
    the latent at every sigma_0."""
    model = guider.model_patcher.model
    scale = getattr(model.model_sampling, "noise_scale", 1.0)
    return model.process_latent_in(latent_image) / scale


def make_outer_sample_wrapper(inversion: Inversion, n_items: int, explain: Explain):
    import comfy.sampler_helpers

    method = strategy(inversion.method)
    inv_sigmas = inversion.sigmas.double()
    warned = set()
    flow = inversion.sampler == FLOW_SAMPLER and inversion.scheduler == FLOW_SCHEDULER

    def check(executor, noise, latent_image, sampler, sigmas):
        guider = executor.class_obj
        how = (
            f"The inversion needs sampler '{inversion.sampler}', scheduler '{inversion.scheduler}', "
            f"{inversion.steps} steps, the whole schedule (denoise 1.0) and no added noise."
        )
        got = sigmas.detach().double().cpu().reshape(-1)
        close = got.shape == inv_sigmas.shape and torch.allclose(got, inv_sigmas, rtol=1e-4, atol=1e-5)
        if not close and flow and got.shape == inv_sigmas.shape and torch.allclose(got[[0, -1]], inv_sigmas[[0, -1]]):
            raise P2PError(  # same steps and ends, another curve: the flow shift of the model's sampling
                "the model's flow schedule differs from the one the image was inverted with (the same steps and "
                "denoise, another shift): sample with the model and shift the image was inverted with. " + how,
                fix="inversion_sampling",
            )
        if not close:
            raise P2PError(
                f"the sampler's schedule ({got.numel() - 1} steps, sigma {float(got[0]) if got.numel() else 0:.4g}"
                f" -> {float(got[-1]) if got.numel() else 0:.4g}) is not the one the image was inverted with "
                f"({inversion.n_steps} steps, {float(inv_sigmas[0]):.4g} -> {float(inv_sigmas[-1]):.4g}); steps, "
                f"scheduler and denoise must match. {how}", fix="inversion_sampling",
            )
        name = sampler_function_name(sampler)
        if name not in _EULER_FUNCTIONS:
            raise P2PError(
                f"the sampler ({name.replace('sample_', '')}) is not the one the image was inverted with; the "
                f"inversion reverses Euler / DDIM steps. {how}", fix="inversion_sampling",
            )
        if torch.count_nonzero(noise) > 0:
            raise P2PError(f"the sampler adds noise to the inverted latent. {how}", fix="inversion_sampling")
        check_items(latent_image.shape[0], n_items - 1)
        if tuple(latent_image.shape[1:]) != tuple(inversion.latent.shape[1:]):
            raise P2PError(
                f"the latent is {tuple(latent_image.shape[1:])} but the inverted image is "
                f"{tuple(inversion.latent.shape[1:])}.", fix="inverted_latent",
            )
        if inversion.model_id and id(guider.model_patcher.model) != inversion.model_id and "model" not in warned:
            warned.add("model")
            warn("the image was inverted with a different model; the reconstruction will drift.")
        method.check_sampling(inversion, guider, warned)

    def sample(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        guider = executor.class_obj
        if flow:
            noise = _flow_start(guider, latent_image)
        conds = getattr(guider, "conds", None)
        negative = method.negative(inversion)
        if negative is not None and isinstance(conds, dict) and "negative" in conds:
            conds["negative"] = comfy.sampler_helpers.convert_cond(negative)
        return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)

    return checked_outer_sample(check, explain, sample)


def install_inversion(patched_model, inversion: Inversion, n_items: int = 1, explain: Explain = as_is):
    """Register what `inversion.method` needs at sampling time on an ALREADY CLONED ModelPatcher.

    n_items: the latent batch the sampler will get (1 + number of edits; 1 for a plain
    reconstruction). Returns the same patcher.
    """
    import comfy.patcher_extension

    if not isinstance(inversion, Inversion):
        raise P2PError("the inversion input is not an inversion.", fix="inversion_input")
    outer = comfy.patcher_extension.WrappersMP.OUTER_SAMPLE
    if patched_model.get_wrappers(outer, INVERSION_KEY):
        raise P2PError("this MODEL already has an inversion installed.", fix="original_model")
    strategy(inversion.method).install(patched_model, inversion)
    patched_model.add_wrapper_with_key(outer, INVERSION_KEY, make_outer_sample_wrapper(inversion, int(n_items), explain))
    return patched_model
