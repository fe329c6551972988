"""Inversion time: DDIM inversion of one latent inside ComfyUI's own CFGGuider, then whatever the
method computes along the trajectory (methods.py)."""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import torch

from ..adapters import model_family
from ..checks import check_no_cache_speedup
from ..conditioning import inversion_positive
from ..errors import P2PError, warn
from .methods import strategy
from .result import Inversion
from .settings import _COUNT_KEY, sampling_for


class _InversionRun:
    """Runs inside CFGGuider.sample as its Sampler: the guider prepared model, conds and options."""

    def __init__(self, method, guidance, inner_iterations, early_stop, progress, check_interrupt):
        self.method = method  # an InversionMethod
        self.last_velocity = None  # fixed_point: the last step's velocity (its next warm start)
        self.guidance = float(guidance)
        self.inner_iterations = int(inner_iterations)
        self.early_stop = early_stop
        self.progress = progress
        self.check_interrupt = check_interrupt
        self.uncond_embedding = None  # what the attn2 patch puts into the unconditional rows
        self.evals = [0]
        self.backwards = 0
        self.trajectory: list[torch.Tensor] = []
        self.null_embeddings: list[torch.Tensor] = []
        self.used: list[int] = []
        self.losses: list[float] = []
        self.nan_steps: list[int] = []
        self.init_embedding = None
        self._done = 0
        self._total = 1

    # -- model calls -------------------------------------------------------------------------
    def denoise(self, x, sigma, branch: str):
        import comfy.samplers

        conds = self.guider.conds
        pair = [conds.get("positive"), None] if branch == "cond" else [None, conds.get("negative")]
        sig = sigma.reshape(1).expand(x.shape[0]).to(x)
        out = comfy.samplers.calc_cond_batch(self.guider.inner_model, pair, x, sig, self.model_options)
        return out[0] if branch == "cond" else out[1]

    def guided(self, x, sigma, cond_pred, uncond_pred):
        """The CFG result exactly as sampling_function computes it (pre/post-CFG hooks included)."""
        import comfy.samplers

        conds = self.guider.conds
        out = [cond_pred, uncond_pred]
        sig = sigma.reshape(1).expand(x.shape[0]).to(x)
        for fn in self.model_options.get("sampler_pre_cfg_function", []):
            args = {"conds": [conds.get("positive"), conds.get("negative")], "conds_out": out,
                    "cond_scale": self.guidance, "timestep": sig, "input": x, "sigma": sig,
                    "model": self.guider.inner_model, "model_options": self.model_options}
            out = fn(args)
        return comfy.samplers.cfg_function(
            self.guider.inner_model, out[0], out[1], self.guidance, x, sig, model_options=self.model_options,
            cond=conds.get("positive"), uncond=conds.get("negative"),
        )

    def tick(self):
        self._done += 1
        if self.progress is not None:
            self.progress(self._done, self._total)

    def interrupt(self):
        if self.check_interrupt is not None:
            self.check_interrupt()

    # -- the Sampler entry point ---------------------------------------------------------------
    def sample(self, guider, sigmas, extra_args, latent_image):
        self.guider = guider
        self.model_options = extra_args["model_options"]
        self.model_sampling = guider.inner_model.model_sampling
        n = len(sigmas) - 1
        self._total = self.method.passes * n
        x = latent_image.detach().clone().float()
        sigmas = sigmas.detach().clone().float()
        with torch.no_grad():
            self._ddim_invert(x, sigmas)
        self.method.optimise(self, sigmas)
        return self.trajectory[0]

    def _c_in(self, sigma, like):
        one = torch.ones((1,) * like.ndim, device=like.device, dtype=like.dtype)
        return self.model_sampling.calculate_input(sigma.reshape(1).to(like), one)

    def eval_velocity(self, x, sigma):
        """(x - D(x, sigma)) / sigma for a latent x at level sigma, D the sampler's guided prediction at
        the inversion's guidance (the positive alone at guidance 1): eps on k-diffusion models, the flow
        velocity (noise - x0) on flow models; the direction of ComfyUI's Euler / DDIM step."""
        cond = self.denoise(x, sigma, "cond")
        if math.isclose(self.guidance, 1.0):
            return (x - cond) / sigma
        return (x - self.guided(x, sigma, cond, self.denoise(x, sigma, "uncond"))) / sigma

    def plain_step(self, x, s, s_low):
        """DDIM / ODE inversion's step from s_low up to s: the model at the higher sigma with the current
        latent (the official eps(x_{t-1}, t)), its input rescaled to its true level (c_in; 1 on flow)."""
        x_in = x * (self._c_in(s_low, x) / self._c_in(s, x))
        eps = (x_in - self.denoise(x_in, s, "cond")) / s
        return x + (s - s_low) * eps

    def _ddim_invert(self, x, sigmas):
        n = len(sigmas) - 1
        traj = [x]
        for k in reversed(range(n)):  # from sigmas[k+1] (less noise) up to sigmas[k]
            self.interrupt()
            x = self.method.invert_step(self, x, sigmas[k], sigmas[k + 1])
            if not torch.isfinite(x).all():
                raise P2PError(
                    f"the inversion produced NaN/inf at step {n - k} of {n}. The model may not "
                    "support this precision: run it in fp32 (e.g. --force-fp32) or check the latent."
                )
            traj.append(x)
            self.tick()
        traj.reverse()
        self.trajectory = traj


class _RunSampler:
    """A comfy Sampler whose sample() runs the inversion with the guider's prepared state."""

    def __init__(self, run: _InversionRun):
        self.run = run

    def max_denoise(self, model_wrap, sigmas):
        return False

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        return self.run.sample(model_wrap, sigmas, extra_args, latent_image)


def inversion_sigmas(model_patcher, steps: int) -> torch.Tensor:
    """The sigmas KSampler uses for `steps` steps of the inversion's scheduler: ddim_uniform on UNet
    models, the model's own flow schedule ("simple", its shift included) on flow models."""
    import comfy.samplers

    _, scheduler = sampling_for(model_patcher)
    return comfy.samplers.calculate_sigmas(model_patcher.get_model_object("model_sampling"), scheduler, steps).float()


def _clone_conditioning(cond, what: str):
    if not isinstance(cond, list) or not cond:
        raise P2PError(f"the {what} conditioning is empty.", fix="encode_text")
    out = []
    for entry in cond:
        tensor, extra = entry[0], dict(entry[1])
        for k, v in list(extra.items()):
            if isinstance(v, torch.Tensor):
                extra[k] = v.detach().clone()
        out.append([tensor.detach().clone() if tensor is not None else None, extra])
    return out


def _first_rows(cond):
    """A Prompt Pair's conditioning (a row per batch item) -> its source row (row 0)."""
    out = []
    for tensor, extra in cond:
        if tensor is not None and tensor.shape[0] > 1:
            logging.info("Prompt-to-Prompt: the positive conditioning has %d rows; inverting with row 0 (the "
                         "source).", tensor.shape[0])
            tensor = tensor[:1]
            extra = {k: (v[:1] if k == "pooled_output" and isinstance(v, torch.Tensor) else v) for k, v in extra.items()}
        out.append([tensor, extra])
    return out


def invert(
    model_patcher,
    positive,
    negative,
    latent,
    method: str = "null_text",
    steps: int = 50,
    guidance: float = 7.5,
    inner_iterations: int = 10,
    early_stop: bool = True,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
    prompts=None,
) -> Inversion:
    """Invert `latent` (a LATENT dict or its samples, batch 1) under the source prompt: `positive`, or
    without it the source of `prompts` (a Prompt Pair's PromptSet; conditioning.inversion_positive).

    The input ModelPatcher is never modified: all patches go on a clone.
    """
    import comfy.patcher_extension
    import comfy.samplers

    check_no_cache_speedup(model_patcher)  # cached steps would leave holes in the trajectory
    positive = inversion_positive(positive, prompts)
    family = model_family(model_patcher)
    impl = strategy(method)
    impl.check_model(family)
    sampler_name, scheduler = sampling_for(model_patcher)
    samples = latent["samples"] if isinstance(latent, dict) else latent
    if not isinstance(samples, torch.Tensor) or samples.ndim < 4:
        raise P2PError("the latent input is not a LATENT.", fix="encode_image")
    if getattr(samples, "is_nested", False) or samples.shape[0] != 1:
        raise P2PError(f"the latent has batch {samples.shape[0]}; invert one image at a time.", fix="one_image")
    if steps < 1:
        raise P2PError("steps must be at least 1.")
    impl.check(float(guidance), int(inner_iterations))
    if isinstance(latent, dict) and latent.get("noise_mask") is not None:
        warn("the latent's noise mask is ignored by the inversion.")

    started = time.perf_counter()
    run = _InversionRun(impl, guidance, inner_iterations, early_stop, progress, check_interrupt)
    sigmas = inversion_sigmas(model_patcher, steps)
    if len(sigmas) < 2:
        raise P2PError(f"the {scheduler} schedule of {steps} steps is empty for this model.")
    with torch.inference_mode(False):
        pos = _first_rows(_clone_conditioning(positive, "positive (source prompt)"))
        neg = impl.inversion_negative(pos, _clone_conditioning(negative, "negative"))
        x_latent = samples.detach().clone().float()
        sigmas_run = sigmas.clone()

        patched = model_patcher.clone()
        counter = run.evals

        def count_evals(executor, x, *args, **kwargs):
            counter[0] += int(x.shape[0])
            return executor(x, *args, **kwargs)

        # APPLY_MODEL: every model's call (SD3's diffusion model runs no DIFFUSION_MODEL wrappers)
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, _COUNT_KEY, count_evals)
        impl.prepare(run, patched, neg)

        guider = comfy.samplers.CFGGuider(patched)
        guider.set_conds(pos, neg)
        guider.set_cfg(guidance)
        out = guider.sample(
            torch.zeros_like(x_latent), x_latent, _RunSampler(run), sigmas_run, seed=0, disable_pbar=True
        )
        out = out.detach().float().cpu().clone()
    if not torch.isfinite(out).all():
        raise P2PError("the inverted latent contains NaN/inf.")

    return Inversion(
        method=method,
        sigmas=sigmas.cpu(),
        steps=int(steps),
        guidance=float(guidance),
        latent=out,
        sampler=sampler_name,
        scheduler=scheduler,
        trajectory=[t.detach().float().cpu().clone() for t in run.trajectory],
        unet_evals=run.evals[0],
        unet_backwards=run.backwards,
        inner_iterations_used=run.used,
        final_losses=run.losses,
        nan_steps=run.nan_steps,
        seconds=time.perf_counter() - started,
        model_id=id(model_patcher.model),
        positive_context=pos[0][0].detach().cpu() if isinstance(pos[0][0], torch.Tensor) else None,
        prompts_uid=getattr(prompts, "uid", None),
        **impl.result(run, pos, neg),
    )
