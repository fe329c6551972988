"""Real-image inversion for Prompt-to-Prompt editing, in ComfyUI's own sampling coordinates.

Everything runs on ComfyUI's pieces: sigmas from its "ddim_uniform" scheduler, the model called
through a CFGGuider (so every model sampling ComfyUI knows works: eps, v-prediction, ...), and
a result that a stock sampler continues: KSamplerAdvanced (add_noise disabled) or SamplerCustom
(add_noise off) with sampler "ddim" (or "euler"), scheduler "ddim_uniform" and the same steps.

Coordinates. ComfyUI samples x in k-diffusion space: x = x0 + sigma * eps, and its "ddim" sampler
is Euler, x' = x + (s' - s) * (x - D(x, s)) / s, which is deterministic DDIM (eta 0).

* DDIM inversion runs that step backwards with the source prompt at guidance 1, evaluating the
  model at the higher sigma with the current latent (as the official code does). The UNet input is
  rescaled so the network sees the latent at its true noise level, exactly like the official
  eps(x_{t-1}, t) in DDPM space.
* Null-text (Mokady et al.): for each sampling step, Adam optimises the unconditional text
  embedding so that the guided step lands on the inversion ("pivot") trajectory. Official
  settings: lr 1e-2 * (1 - i/100), at most 10 inner iterations, Adam step then early stop when
  that iteration's loss < 1e-5 + i * 2e-5 (MSE in DDPM space), each step starting from the
  previous embedding, always fp32. For N != 50 steps, i/100 becomes i/(2N) and the threshold's
  slope 2e-5 * 50/N (identical at 50). While sampling, the unconditional rows of the text
  context get the step's embedding and the sampler's negative is replaced by the one the
  embeddings were optimised with (same pooled output on SDXL). The model is differentiated through ComfyUI's public patcher API only: a clone with
  identity weight wrappers (inference-mode weights become copies autograd can use) and an
  attn2 patch that puts the embedding into the unconditional rows of the text context.
* Negative-prompt inversion (Miyake et al.): DDIM inversion, then sample with the source
  prompt as the unconditional prompt of every batch item (it replaces the sampler's negative).
* Direct inversion (Ju et al., "PnP Inversion"): DDIM inversion; while editing, the source item
  (batch item 0) is put back onto the inversion trajectory after every step, so it reconstructs
  exactly and the edits attend to a faithful source. PnP adds per-step offsets
  x*_{i+1} - x_src_{i+1} to the source latent; a post-CFG function here sets the source's
  denoised value so that ComfyUI's DDIM step lands on x*_{i+1}, which is the same latent at every
  step and does not depend on the guidance scale.

`install_inversion` registers what a method needs at sampling time on an already cloned
ModelPatcher (attention patch, post-CFG function, and an OUTER_SAMPLE wrapper that refuses a
schedule, sampler, noise or batch the inversion was not made for).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from .patch import current_step
from .schedules import step_index

METHODS = ("ddim", "null_text", "negative_prompt", "direct")
SAMPLER = "ddim"
SCHEDULER = "ddim_uniform"
WRAPPER_KEY = "p2p_inversion"
_COUNT_KEY = "p2p_inversion_count"
_EULER_FUNCTIONS = ("sample_euler",)  # "ddim" and "euler" (s_churn 0): the step the inversion inverts

# Official null-text settings (Mokady et al. 2023), written for 50 steps.
NULL_TEXT_LR = 1e-2
NULL_TEXT_EPSILON = 1e-5
NULL_TEXT_EPSILON_SLOPE = 2e-5
_OFFICIAL_STEPS = 50


@dataclass
class Inversion:
    """The P2P_INVERSION value: what a method needs at sampling time, plus its cost.

    trajectory[k] is the latent at sigmas[k] in the model's sampling space (process_latent_in
    applied): trajectory[0] the inverted noise, trajectory[-1] the source latent.
    `latent` is trajectory[0] in ComfyUI's LATENT convention (what a sampler with add_noise off
    takes). All tensors live on the CPU.
    """

    method: str
    sigmas: torch.Tensor
    steps: int
    guidance: float
    latent: torch.Tensor
    trajectory: list
    sampler: str = SAMPLER
    scheduler: str = SCHEDULER
    null_embeddings: list | None = None  # per step [1, L, D] fp32: the unconditional text context
    negative_conditioning: list | None = None  # null_text: the negative the embeddings were optimised with
    source_conditioning: list | None = None  # negative_prompt: the source prompt, used as unconditional
    unet_evals: int = 0  # single-image UNet forward passes (a CFG step on one image counts 2)
    unet_backwards: int = 0  # backward passes through the UNet (null_text)
    inner_iterations: int = 0  # the setting
    inner_iterations_used: list = field(default_factory=list)  # per step (null_text)
    final_losses: list = field(default_factory=list)  # per step (null_text)
    nan_steps: list = field(default_factory=list)  # steps where the optimisation hit a NaN and fell back
    seconds: float = 0.0
    model_id: int = 0

    @property
    def n_steps(self) -> int:
        """Sampling steps the schedule really has (ddim_uniform may give one more than asked)."""
        return len(self.sigmas) - 1

    @property
    def source_latent(self) -> torch.Tensor:
        return self.trajectory[-1]

    def summary(self) -> str:
        text = (
            f"{self.method} inversion: {self.n_steps} steps ({self.sampler}/{self.scheduler}), "
            f"guidance {self.guidance:g}, {self.unet_evals} UNet evaluations"
        )
        if self.method == "null_text":
            text += (
                f", {self.unet_backwards} backward passes, inner iterations per step "
                f"{min(self.inner_iterations_used, default=0)}-{max(self.inner_iterations_used, default=0)} "
                f"(limit {self.inner_iterations})"
            )
            if self.nan_steps:
                text += f", NaN fallback at steps {self.nan_steps}"
        return text

    def __repr__(self) -> str:  # never dump tensors into logs
        return f"Inversion({self.summary()})"


# ----------------------------------------------------------------------------------------------
# Patches (shared by inversion time and sampling time)


class UncondContextPatch:
    """attn2_patch: the unconditional chunk's text context comes from `provider(extra_options)`.

    Rows of the unconditional chunk (found with extra_options["cond_or_uncond"]) are replaced by
    the provided [1, Le, D] context, repeated to the batch's token length (ComfyUI repeats
    prompts of different lengths to their least common multiple).
    """

    def __init__(self, provider: Callable[[dict], torch.Tensor | None], node: str):
        self.provider = provider
        self.node = node

    def __deepcopy__(self, memo):  # ModelPatcher.clone() deep-copies model_options
        return self

    def __call__(self, n, context, value, extra_options):
        kinds = extra_options.get("cond_or_uncond") or []
        if 1 not in kinds or context is None:
            return n, context, value
        emb = self.provider(extra_options)
        if emb is None:
            return n, context, value
        chunks = len(kinds)
        per = context.shape[0] // chunks
        length, dim = context.shape[1], context.shape[2]
        if emb.shape[-1] != dim or length % emb.shape[1] != 0:
            raise ValueError(
                f"{self.node}: the inversion's unconditional embedding ({tuple(emb.shape[1:])}) does not fit "
                f"this model's text context ({length} tokens x {dim}). Invert with the same model and CLIP."
            )
        emb = emb.to(device=context.device, dtype=context.dtype)
        if emb.shape[1] != length:
            emb = emb.repeat(1, length // emb.shape[1], 1)
        new_context = _replace_uncond_rows(context, emb, kinds, per)
        if value is context:
            return n, new_context, new_context
        if value is not None and value.shape == context.shape:
            value = _replace_uncond_rows(value, emb, kinds, per)
        return n, new_context, value


def _replace_uncond_rows(t: torch.Tensor, emb: torch.Tensor, kinds: list, per: int) -> torch.Tensor:
    parts = [
        emb.expand(per, -1, -1) if kind == 1 else t[c * per : (c + 1) * per] for c, kind in enumerate(kinds)
    ]
    return torch.cat(parts)


def _identity_weight(weight):
    # Registered for every UNet weight and bias: ComfyUI then casts a *copy* of the weight (its
    # inference-mode parameters cannot be saved for backward); detach keeps autograd off weights.
    return weight.detach()


# ----------------------------------------------------------------------------------------------
# Inversion


def _clone_conditioning(cond, node: str, what: str):
    if not isinstance(cond, list) or not cond:
        raise ValueError(f"{node}: the {what} conditioning is empty. Connect a CLIPTextEncode output.")
    out = []
    for entry in cond:
        tensor, extra = entry[0], dict(entry[1])
        for k, v in list(extra.items()):
            if isinstance(v, torch.Tensor):
                extra[k] = v.detach().clone()
        out.append([tensor.detach().clone() if tensor is not None else None, extra])
    return out


def _first_rows(cond, node: str):
    """A Prompt Pair's conditioning (a row per batch item) -> its source row (row 0)."""
    out = []
    for tensor, extra in cond:
        if tensor is not None and tensor.shape[0] > 1:
            logging.info("%s: the positive conditioning has %d rows; inverting with row 0 (the source).", node,
                         tensor.shape[0])
            tensor = tensor[:1]
            extra = {k: (v[:1] if k == "pooled_output" and isinstance(v, torch.Tensor) else v) for k, v in extra.items()}
        out.append([tensor, extra])
    return out


def _cpu_conditioning(cond):
    out = []
    for tensor, extra in cond:
        extra = {k: (v.detach().to("cpu") if isinstance(v, torch.Tensor) else v) for k, v in extra.items()}
        out.append([tensor.detach().to("cpu") if tensor is not None else None, extra])
    return out


class _InversionRun:
    """Runs inside CFGGuider.sample as its Sampler: the guider prepared model, conds and options."""

    def __init__(self, method, guidance, inner_iterations, early_stop, progress, check_interrupt, node):
        self.method = method
        self.guidance = float(guidance)
        self.inner_iterations = int(inner_iterations)
        self.early_stop = early_stop
        self.progress = progress
        self.check_interrupt = check_interrupt
        self.node = node
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
    def _denoise(self, x, sigma, branch: str):
        import comfy.samplers

        conds = self.guider.conds
        pair = [conds.get("positive"), None] if branch == "cond" else [None, conds.get("negative")]
        sig = sigma.reshape(1).expand(x.shape[0]).to(x)
        out = comfy.samplers.calc_cond_batch(self.guider.inner_model, pair, x, sig, self.model_options)
        return out[0] if branch == "cond" else out[1]

    def _guided(self, x, sigma, cond_pred, uncond_pred):
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

    def _tick(self):
        self._done += 1
        if self.progress is not None:
            self.progress(self._done, self._total)

    def _interrupt(self):
        if self.check_interrupt is not None:
            self.check_interrupt()

    # -- the Sampler entry point ---------------------------------------------------------------
    def sample(self, guider, sigmas, extra_args, latent_image):
        self.guider = guider
        self.model_options = extra_args["model_options"]
        self.model_sampling = guider.inner_model.model_sampling
        n = len(sigmas) - 1
        self._total = 2 * n if self.method == "null_text" else n
        x = latent_image.detach().clone().float()
        sigmas = sigmas.detach().clone().float()
        with torch.no_grad():
            self._ddim_invert(x, sigmas)
        if self.method == "null_text":
            self._null_text(sigmas)
        return self.trajectory[0]

    def _c_in(self, sigma, like):
        one = torch.ones((1,) * like.ndim, device=like.device, dtype=like.dtype)
        return self.model_sampling.calculate_input(sigma.reshape(1).to(like), one)

    def _ddim_invert(self, x, sigmas):
        n = len(sigmas) - 1
        traj = [x]
        for k in reversed(range(n)):  # from sigmas[k+1] (less noise) up to sigmas[k]
            self._interrupt()
            s, s_low = sigmas[k], sigmas[k + 1]
            # The model at the higher sigma sees the latent at its true level (official eps(x_{t-1}, t)).
            x_in = x * (self._c_in(s_low, x) / self._c_in(s, x))
            eps = (x_in - self._denoise(x_in, s, "cond")) / s
            x = x + (s - s_low) * eps
            if not torch.isfinite(x).all():
                raise FloatingPointError(
                    f"{self.node}: DDIM inversion produced NaN/inf at step {n - k} of {n}. The model may not "
                    "support this precision: run it in fp32 (e.g. --force-fp32) or check the latent."
                )
            traj.append(x)
            self._tick()
        traj.reverse()
        self.trajectory = traj

    def _null_text(self, sigmas):
        n = len(sigmas) - 1
        x = self.trajectory[0]
        emb = self.init_embedding.detach().to(device=x.device, dtype=torch.float32).clone()
        ms = self.model_sampling
        warned = False
        for i in range(n):
            s, s_next = sigmas[i], sigmas[i + 1]
            target = ms.calculate_input(s_next.reshape(1).to(x), self.trajectory[i + 1])
            lr = NULL_TEXT_LR * (1.0 - i / (2.0 * n))  # official 1 - i/100 at 50 steps
            threshold = NULL_TEXT_EPSILON + i * NULL_TEXT_EPSILON_SLOPE * _OFFICIAL_STEPS / n
            emb = emb.detach().clone().requires_grad_(True)
            optimizer = torch.optim.Adam([emb], lr=lr)
            with torch.no_grad():
                cond_pred = self._denoise(x, s, "cond")
            used = 0
            for _ in range(self.inner_iterations):
                self._interrupt()
                used += 1
                self.uncond_embedding = emb
                with torch.enable_grad():
                    uncond_pred = self._denoise(x, s, "uncond")
                    guided = self._guided(x, s, cond_pred, uncond_pred)
                    candidate = x + (s_next - s) * (x - guided) / s
                    loss = torch.nn.functional.mse_loss(ms.calculate_input(s_next.reshape(1).to(x), candidate), target)
                    (grad,) = torch.autograd.grad(loss, [emb])
                self.backwards += 1
                loss_value = float(loss.detach())
                if not (math.isfinite(loss_value) and torch.isfinite(grad).all()):
                    self.nan_steps.append(i)
                    if not warned:
                        logging.warning(
                            "%s: null-text optimisation hit NaN/inf at step %d; keeping the last good embedding "
                            "for this step.", self.node, i,
                        )
                        warned = True
                    break
                good = emb.detach().clone()
                emb.grad = grad
                optimizer.step()
                if not torch.isfinite(emb).all():
                    with torch.no_grad():
                        emb.copy_(good)
                    self.nan_steps.append(i)
                    break
                if self.early_stop and loss_value < threshold:  # official: checked after the update
                    break
            emb = emb.detach()
            self.uncond_embedding = emb
            with torch.no_grad():  # the step with the final embedding (official: one more guided pass)
                guided = self._guided(x, s, cond_pred, self._denoise(x, s, "uncond"))
                x_next = x + (s_next - s) * (x - guided) / s
                loss_value = float(
                    torch.nn.functional.mse_loss(ms.calculate_input(s_next.reshape(1).to(x), x_next), target)
                )
            if not torch.isfinite(x_next).all():
                raise FloatingPointError(
                    f"{self.node}: null-text optimisation produced NaN/inf at step {i + 1} of {n} even with the "
                    "fallback embedding. Check the model and latent (fp16 VAE latents can overflow)."
                )
            self.null_embeddings.append(emb.cpu().clone())
            self.used.append(used)
            self.losses.append(loss_value)
            x = x_next
            self._tick()


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
    """The sigmas KSampler uses for sampler "ddim", scheduler "ddim_uniform" and `steps`."""
    import comfy.samplers

    return comfy.samplers.calculate_sigmas(model_patcher.get_model_object("model_sampling"), SCHEDULER, steps).float()


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
    node: str = "P2P Invert",
) -> Inversion:
    """Invert `latent` (a LATENT dict or its samples, batch 1) under the source prompt `positive`.

    The input ModelPatcher is never modified: all patches go on a clone.
    """
    import time

    import comfy.patcher_extension
    import comfy.samplers

    if method not in METHODS:
        raise ValueError(f"{node}: unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    samples = latent["samples"] if isinstance(latent, dict) else latent
    if not isinstance(samples, torch.Tensor) or samples.ndim < 4:
        raise ValueError(f"{node}: the latent input is not a LATENT (connect VAEEncode's output).")
    if getattr(samples, "is_nested", False) or samples.shape[0] != 1:
        raise ValueError(
            f"{node}: the latent has batch {samples.shape[0]}; invert one image at a time (VAEEncode of a "
            "single image, or pick one with 'Latent From Batch')."
        )
    if steps < 1:
        raise ValueError(f"{node}: steps must be at least 1.")
    if method == "null_text" and math.isclose(guidance, 1.0):
        logging.warning("%s: null-text at guidance 1 has nothing to optimise (the unconditional branch is not "
                        "used); it equals DDIM inversion.", node)
    if method == "null_text" and inner_iterations < 0:
        raise ValueError(f"{node}: inner_iterations must be >= 0.")
    if isinstance(latent, dict) and latent.get("noise_mask") is not None:
        logging.warning("%s: the latent's noise mask is ignored by the inversion.", node)

    started = time.perf_counter()
    run = _InversionRun(method, guidance, inner_iterations, early_stop, progress, check_interrupt, node)
    sigmas = inversion_sigmas(model_patcher, steps)
    if len(sigmas) < 2:
        raise ValueError(f"{node}: the ddim_uniform schedule of {steps} steps is empty for this model.")
    with torch.inference_mode(False):
        pos = _first_rows(_clone_conditioning(positive, node, "positive (source prompt)"), node)
        neg = _clone_conditioning(negative, node, "negative")
        if method == "null_text":
            if len(neg) != 1 or neg[0][0] is None:
                raise ValueError(
                    f"{node}: null-text needs ONE negative conditioning entry (e.g. CLIPTextEncode of an empty "
                    f"prompt); got {len(neg)}."
                )
            run.init_embedding = neg[0][0][:1].float()
        x_latent = samples.detach().clone().float()
        sigmas_run = sigmas.clone()

        patched = model_patcher.clone()
        counter = run.evals

        def count_evals(executor, x, *args, **kwargs):
            counter[0] += int(x.shape[0])
            return executor(x, *args, **kwargs)

        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, _COUNT_KEY, count_evals)
        if method == "null_text":
            patched.set_model_compute_dtype(torch.float32)  # null-text fails in fp16: always fp32
            for name, module in patched.model.named_modules():
                if not name.startswith("diffusion_model.") or not hasattr(module, "weight_function"):
                    continue
                if getattr(module, "weight", None) is not None:
                    patched.add_weight_wrapper(f"{name}.weight", _identity_weight)
                if getattr(module, "bias", None) is not None:
                    patched.add_weight_wrapper(f"{name}.bias", _identity_weight)
            patched.set_model_attn2_patch(UncondContextPatch(lambda extra: run.uncond_embedding, node))

        guider = comfy.samplers.CFGGuider(patched)
        guider.set_conds(pos, neg)
        guider.set_cfg(guidance)
        out = guider.sample(
            torch.zeros_like(x_latent), x_latent, _RunSampler(run), sigmas_run, seed=0, disable_pbar=True
        )
        out = out.detach().float().cpu().clone()
    if not torch.isfinite(out).all():
        raise FloatingPointError(f"{node}: the inverted latent contains NaN/inf.")

    return Inversion(
        method=method,
        sigmas=sigmas.cpu(),
        steps=int(steps),
        guidance=float(guidance),
        latent=out,
        trajectory=[t.detach().float().cpu().clone() for t in run.trajectory],
        null_embeddings=run.null_embeddings if method == "null_text" else None,
        negative_conditioning=_cpu_conditioning(neg) if method == "null_text" else None,
        source_conditioning=_cpu_conditioning(pos) if method == "negative_prompt" else None,
        unet_evals=run.evals[0],
        unet_backwards=run.backwards,
        inner_iterations=int(inner_iterations) if method == "null_text" else 0,
        inner_iterations_used=run.used,
        final_losses=run.losses,
        nan_steps=run.nan_steps,
        seconds=time.perf_counter() - started,
        model_id=id(model_patcher.model),
    )


# ----------------------------------------------------------------------------------------------
# Sampling time


def _sampler_function_name(sampler) -> str:
    fn = getattr(sampler, "sampler_function", None)
    if fn is None:
        return type(sampler).__name__
    return getattr(fn, "__name__", type(fn).__name__)


class _DeviceCache:
    """CPU tensors moved once per (device, dtype)."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.cache = {}

    def get(self, i, like: torch.Tensor):
        key = (i, like.device, like.dtype)
        t = self.cache.get(key)
        if t is None:
            t = self.tensors[i].to(device=like.device, dtype=like.dtype)
            self.cache[key] = t
        return t


def _make_outer_sample_wrapper(inversion: Inversion, n_items: int, node: str):
    import comfy.sampler_helpers

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
        name = _sampler_function_name(sampler)
        if name not in _EULER_FUNCTIONS:
            raise ValueError(
                f"{node}: the sampler ({name.replace('sample_', '')}) is not the one the image was inverted "
                f"with; the inversion reverses DDIM steps. {how}"
            )
        if torch.count_nonzero(noise) > 0:
            raise ValueError(
                f"{node}: the sampler adds noise to the inverted latent (KSampler always does). {how}"
            )
        if latent_image.shape[0] != n_items:
            raise ValueError(
                f"{node}: the latent batch has {latent_image.shape[0]} item(s) but {n_items} are expected "
                f"(the source and {n_items - 1} edit(s)). Repeat P2P Invert's latent with P2P Latent Batch."
            )
        if tuple(latent_image.shape[1:]) != tuple(inversion.latent.shape[1:]):
            raise ValueError(
                f"{node}: the latent is {tuple(latent_image.shape[1:])} but the inverted image is "
                f"{tuple(inversion.latent.shape[1:])}. Feed P2P Invert's LATENT output to the sampler."
            )
        if inversion.model_id and id(guider.model_patcher.model) != inversion.model_id and "model" not in warned:
            warned.add("model")
            logging.warning("%s: the image was inverted with a different model; the reconstruction will drift.", node)
        if inversion.method == "null_text" and "cfg" not in warned and not math.isclose(
            float(getattr(guider, "cfg", inversion.guidance)), inversion.guidance, rel_tol=1e-3
        ):
            warned.add("cfg")
            logging.warning(
                "%s: null-text embeddings were optimised for cfg %g but the sampler uses cfg %g; the source "
                "will not reconstruct exactly.", node, inversion.guidance, float(guider.cfg),
            )

    def outer_sample(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        guider = executor.class_obj
        check(noise, latent_image, sampler, sigmas, guider)
        conds = getattr(guider, "conds", None)
        if isinstance(conds, dict) and "negative" in conds:
            if inversion.method == "negative_prompt":
                conds["negative"] = comfy.sampler_helpers.convert_cond(inversion.source_conditioning)
            elif inversion.method == "null_text":
                conds["negative"] = comfy.sampler_helpers.convert_cond(inversion.negative_conditioning)
        return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)

    return outer_sample


class _DirectCorrection:
    """post-CFG: the source item's denoised value that makes the DDIM step land on the trajectory."""

    def __init__(self, inversion: Inversion):
        self.sigmas = inversion.sigmas.double()
        self.trajectory = _DeviceCache(inversion.trajectory)

    def __deepcopy__(self, memo):
        return self

    def __call__(self, args):
        denoised, x = args["denoised"], args["input"]
        sigma = float(args["sigma"].reshape(-1)[0])
        k = step_index(sigma, self.sigmas, exact=True)
        if k is None:
            return denoised
        s, s_next = self.sigmas[k].item(), self.sigmas[k + 1].item()
        target = self.trajectory.get(k + 1, x)
        x0 = x[:1]
        forced = x0 - (target - x0) * (s / (s_next - s))
        out = denoised.clone()
        out[:1] = forced.to(out.dtype)
        return out


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
    if inversion.method == "null_text":
        embeddings = _DeviceCache(inversion.null_embeddings)
        n_emb = len(inversion.null_embeddings)
        last = [None, 0]  # every layer of one UNet call sees the same sigmas tensor: find the step once

        def provider(extra):
            sigmas = extra["sigmas"]
            if last[0] is not sigmas:
                last[0], last[1] = sigmas, current_step(extra, node)[0]
            return embeddings.get(min(last[1], n_emb - 1), sigmas)

        patched_model.set_model_attn2_patch(UncondContextPatch(provider, node))
    elif inversion.method == "direct":
        patched_model.set_model_sampler_post_cfg_function(_DirectCorrection(inversion))
    patched_model.add_wrapper_with_key(outer, WRAPPER_KEY, _make_outer_sample_wrapper(inversion, int(n_items), node))
    return patched_model
