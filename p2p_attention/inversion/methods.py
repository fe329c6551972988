"""One strategy object per inversion method: what it checks, patches and computes at inversion
time, and what it installs at sampling time. The run loop and the installer never ask which
method they hold."""

from __future__ import annotations

import contextlib
import math

import torch

from ..errors import P2PError, warn
from ..steps import StepClock
from .direct import DeviceCache, DirectCorrection
from .result import Inversion
from .settings import _OFFICIAL_STEPS, NULL_TEXT_EPSILON, NULL_TEXT_EPSILON_SLOPE, NULL_TEXT_LR
from .uncond_context import set_uncond_context
from .weight_refs import WeightsAsReferences, identity_weight


@contextlib.contextmanager
def _differentiable_paths():
    """ComfyUI's own switch for model code that must be differentiated (its training node sets it): without
    it ComfyUI 0.33.0 runs fused kernels with no backward (NextDiT's rms_rope: Z-Image, Lumina 2)."""
    import comfy.model_management as mm

    if not hasattr(mm, "in_training"):  # ComfyUI 0.3.75: no fused path, nothing to switch
        yield
        return
    before, mm.in_training = mm.in_training, True
    try:
        yield
    finally:
        mm.in_training = before


class InversionMethod:
    """DDIM inversion with the source prompt; subclasses add what their method needs."""

    name = "ddim"
    passes = 1  # progress passes over the steps (null-text: inversion, then optimisation)
    needs_uncond = False  # works on the unconditional branch (none on guidance-distilled Flux.1)

    def check(self, guidance: float, inner_iterations: int) -> None:
        """Refuse or warn about settings, before any model call."""

    def check_model(self, family) -> None:
        """Refuse what the model family cannot do (family: adapters.model_family, None for a UNet)."""
        if family is not None and family.distilled and self.needs_uncond:
            raise P2PError(
                f"method {self.name} works on the unconditional (negative) branch, which {family.label} does not "
                "have: it is guidance-distilled and samples at cfg 1.", fix="flux_inversion")

    def invert_step(self, run, x, s, s_low):
        """One inversion step from sigma s_low (less noise) up to s: the latent at s."""
        return run.plain_step(x, s, s_low)

    def inversion_negative(self, positive, negative):
        """The conditioning the inversion's guider uses as unconditional (the sampler's negative)."""
        return negative

    def prepare(self, run, patched, negative) -> None:
        """Patch the inversion's model clone; read what the method needs from the negative."""

    def optimise(self, run, sigmas) -> None:
        """After DDIM inversion: anything the method computes along the trajectory."""

    def result(self, run, positive, negative) -> dict:
        """Method-specific fields of the Inversion."""
        return {}

    def install(self, patched, inversion: Inversion) -> None:
        """Sampling time: hooks on the (already cloned) patched model."""

    def negative(self, inversion: Inversion):
        """Sampling time: the conditioning that replaces the sampler's negative, or None."""
        return None

    def check_sampling(self, inversion: Inversion, guider, warned: set) -> None:
        """Sampling time: warnings about settings the method is sensitive to."""


class DDIMInversion(InversionMethod):
    pass


class NegativePromptInversion(InversionMethod):
    """Miyake et al.: the source prompt as the unconditional prompt of every batch item."""

    name = "negative_prompt"
    needs_uncond = True

    def result(self, run, positive, negative) -> dict:
        return {"source_conditioning": cpu_conditioning(positive)}

    def negative(self, inversion):
        return inversion.source_conditioning


class DirectInversion(InversionMethod):
    """Ju et al. ("PnP Inversion"): the source item put back onto the trajectory at every step."""

    name = "direct"

    def install(self, patched, inversion):
        patched.set_model_sampler_post_cfg_function(DirectCorrection(inversion))


class FixedPointInversion(InversionMethod):
    """Each inversion step solved as the implicit equation it is: the latent x_hi at the higher sigma
    whose Euler / DDIM step lands exactly on the current latent, x_hi = x + (s - s_low) v(x_hi, s), by
    fixed-point iteration (AIDI, Pan et al. 2023; ReNoise, Garibi et al. 2024), warm-started with the
    previous step's velocity (FireFlow's velocity reuse, Deng et al. 2024), so the first guess costs
    no evaluation (the first step starts from the plain step, which counts as its first iteration).
    `inner_iterations` evaluations per step at most, so one iteration costs what plain inversion does;
    a step stops once an iteration moves x_hi by under FIXED_POINT_TOL of its RMS. The velocity
    is the sampler's guided one at the inversion's guidance (cond and uncond above guidance 1), so the
    sampler at that cfg retraces the trajectory. Plain DDIM / ODE inversion is one evaluation of the
    positive alone at the current latent."""

    name = "fixed_point"

    def check(self, guidance, inner_iterations):
        if inner_iterations < 1:
            raise P2PError("fixed_point needs inner_iterations >= 1 (model evaluations per step).")

    def check_sampling(self, inversion, guider, warned):
        _warn_cfg(inversion, guider, warned, "the fixed-point trajectory was solved")

    def invert_step(self, run, x, s, s_low):
        d = s - s_low
        iterations = run.inner_iterations
        if run.last_velocity is None:  # the first step starts from the plain step: its first evaluation
            v = run.eval_velocity(x, s)
            iterations -= 1
        else:
            v = run.last_velocity
        x_hi = x + d * v
        for _ in range(iterations):
            v = run.eval_velocity(x_hi, s)
            new = x + d * v
            moved = float((new - x_hi).square().mean().sqrt())
            x_hi = new
            if moved <= FIXED_POINT_TOL * float(x_hi.square().mean().sqrt()):
                break
        run.last_velocity = v
        return x_hi


FIXED_POINT_TOL = 1e-4


class NullTextInversion(InversionMethod):
    """Mokady et al.: per-step unconditional embeddings optimised onto the trajectory (fp32), with
    the official settings: step 0 starts from the negative's embedding, every later step from the
    previous step's optimum.

    gradient: "references" (WeightsAsReferences: the backward pass keeps no copy of the weights)
    or "copies" (identity weight wrappers: ComfyUI copies every weight on every evaluation and
    autograd keeps the copies; the code path before, for comparison). Both give the same bits.
    """

    name = "null_text"
    passes = 2
    needs_uncond = True
    unconditional = "negative"  # what the optimised embeddings replace, in the error messages
    unconditional_fix = "one_negative"

    def __init__(self, gradient: str = "references"):
        if gradient not in ("references", "copies"):
            raise ValueError(f"gradient must be 'references' or 'copies', not {gradient!r}")
        self.gradient = gradient

    def check(self, guidance, inner_iterations):
        if math.isclose(guidance, 1.0):
            warn("null-text at guidance 1 has nothing to optimise (the unconditional branch is not used); it "
                 "equals DDIM inversion.")
        if inner_iterations < 0:
            raise P2PError("inner_iterations must be >= 0.")

    def prepare(self, run, patched, negative):
        if len(negative) != 1 or negative[0][0] is None:
            raise P2PError(f"null-text needs ONE {self.unconditional} conditioning entry; got {len(negative)}.",
                           fix=self.unconditional_fix)
        run.init_embedding = negative[0][0][:1].float()
        if not _computes_in_float32(patched):  # null-text fails in fp16: always fp32
            patched.set_model_compute_dtype(torch.float32)
        if self.gradient == "copies":
            for name, module in patched.model.named_modules():
                if not name.startswith("diffusion_model.") or not hasattr(module, "weight_function"):
                    continue
                if getattr(module, "weight", None) is not None:
                    patched.add_weight_wrapper(f"{name}.weight", identity_weight)
                if getattr(module, "bias", None) is not None:
                    patched.add_weight_wrapper(f"{name}.bias", identity_weight)
        set_uncond_context(patched, lambda extra: run.uncond_embedding)

    def differentiated(self):
        """The context of the unconditional evaluation that gets a backward pass."""
        stack = contextlib.ExitStack()
        stack.enter_context(_differentiable_paths())
        if self.gradient == "references":
            stack.enter_context(WeightsAsReferences())
        return stack

    def out_of_reach(self, previous: float, loss: float, threshold: float, updates_left: int) -> bool:
        """Before an update: give up on this step (official: never; the limit ends it)."""
        return False

    def optimise(self, run, sigmas):
        """Per step, Adam on the unconditional embedding until the guided step lands on the pivot.

        Official loop: evaluate, update, then stop if the evaluated loss was under the threshold;
        the step is then taken with the final (updated) embedding. `out_of_reach` may end a step
        before an update; it then keeps the evaluated embedding with the lowest loss, whose step
        is already computed.
        """
        n = len(sigmas) - 1
        x = run.trajectory[0]
        emb = run.init_embedding.detach().to(device=x.device, dtype=torch.float32).clone()
        ms = run.model_sampling
        warned = False
        for i in range(n):
            s, s_next = sigmas[i], sigmas[i + 1]
            target = ms.calculate_input(s_next.reshape(1).to(x), run.trajectory[i + 1])
            lr = NULL_TEXT_LR * (1.0 - i / (2.0 * n))  # official 1 - i/100 at 50 steps
            threshold = NULL_TEXT_EPSILON + i * NULL_TEXT_EPSILON_SLOPE * _OFFICIAL_STEPS / n
            emb = emb.detach().clone().requires_grad_(True)
            optimizer = torch.optim.Adam([emb], lr=lr)
            with torch.no_grad():
                cond_pred = run.denoise(x, s, "cond")
            used = 0
            best = None  # (loss, embedding, x_next) of the best evaluated embedding
            stopped = None  # set when out_of_reach ended the step: the kept (loss, embedding, x_next)
            for _ in range(run.inner_iterations):
                run.interrupt()
                run.uncond_embedding = emb
                with torch.enable_grad():
                    with self.differentiated():
                        uncond_pred = run.denoise(x, s, "uncond")
                        guided = run.guided(x, s, cond_pred, uncond_pred)
                        candidate = x + (s_next - s) * (x - guided) / s
                        loss = torch.nn.functional.mse_loss(
                            ms.calculate_input(s_next.reshape(1).to(x), candidate), target)
                loss_value = float(loss.detach())
                if best is not None and math.isfinite(loss_value) and self.out_of_reach(
                        best[0], loss_value, threshold, run.inner_iterations - used):
                    if loss_value < best[0]:
                        best = (loss_value, emb.detach().clone(), candidate.detach())
                    stopped = best
                    del loss, uncond_pred, guided, candidate  # no backward pass: free the graph now
                    break
                used += 1
                with torch.enable_grad():
                    (grad,) = torch.autograd.grad(loss, [emb])
                run.backwards += 1
                if not (math.isfinite(loss_value) and torch.isfinite(grad).all()):
                    run.nan_steps.append(i)
                    if not warned:
                        warn("null-text optimisation hit NaN/inf at step %d; keeping the last good embedding for "
                             "this step.", i)
                        warned = True
                    break
                if best is None or loss_value < best[0]:
                    best = (loss_value, emb.detach().clone(), candidate.detach())
                good = emb.detach().clone()
                emb.grad = grad
                optimizer.step()
                if not torch.isfinite(emb).all():
                    with torch.no_grad():
                        emb.copy_(good)
                    run.nan_steps.append(i)
                    break
                if run.early_stop and loss_value < threshold:  # official: checked after the update
                    break
            if stopped is not None:
                loss_value, emb, x_next = stopped
                run.uncond_embedding = emb
            else:
                emb = emb.detach()
                run.uncond_embedding = emb
                with torch.no_grad():  # the step with the final embedding (official: one more guided pass)
                    guided = run.guided(x, s, cond_pred, run.denoise(x, s, "uncond"))
                    x_next = x + (s_next - s) * (x - guided) / s
                    loss_value = float(
                        torch.nn.functional.mse_loss(ms.calculate_input(s_next.reshape(1).to(x), x_next), target)
                    )
            if not torch.isfinite(x_next).all():
                raise P2PError(
                    f"null-text optimisation produced NaN/inf at step {i + 1} of {n} even with the "
                    "fallback embedding. Check the model and latent (fp16 VAE latents can overflow)."
                )
            run.null_embeddings.append(emb.cpu().clone())
            run.used.append(used)
            run.losses.append(loss_value)
            x = x_next
            run.tick()

    def result(self, run, positive, negative) -> dict:
        used = run.used
        details = (
            f", {run.backwards} backward passes, inner iterations per step "
            f"{min(used, default=0)}-{max(used, default=0)} (limit {run.inner_iterations})"
        )
        if run.nan_steps:
            details += f", NaN fallback at steps {run.nan_steps}"
        return {"null_embeddings": run.null_embeddings, "negative_conditioning": cpu_conditioning(negative),
                "inner_iterations": run.inner_iterations, "details": details}

    def install(self, patched, inversion):
        embeddings = DeviceCache(inversion.null_embeddings)
        n_emb = len(inversion.null_embeddings)
        clock = StepClock()

        def provider(extra):
            return embeddings.get(min(clock(extra)[0], n_emb - 1), extra["sigmas"])

        set_uncond_context(patched, provider)

    def negative(self, inversion):
        return inversion.negative_conditioning

    def check_sampling(self, inversion, guider, warned):
        _warn_cfg(inversion, guider, warned, "null-text embeddings were optimised")


def _warn_cfg(inversion, guider, warned: set, what: str) -> None:
    cfg = float(getattr(guider, "cfg", inversion.guidance))
    if "cfg" not in warned and not math.isclose(cfg, inversion.guidance, rel_tol=1e-3):
        warned.add("cfg")
        warn("%s for cfg %g but the sampler uses cfg %g; the source will not reconstruct exactly.", what,
             inversion.guidance, cfg)


def _computes_in_float32(patched) -> bool:
    """float32 weights and no other compute dtype: ComfyUI already computes in float32 (forcing it
    anyway would route every layer through the weight-cast path, which costs time, not bits)."""
    if getattr(patched.model, "manual_cast_dtype", None) not in (None, torch.float32):
        return False
    return all(p.dtype == torch.float32 for p in patched.get_model_object("diffusion_model").parameters())


def cpu_conditioning(cond):
    out = []
    for tensor, extra in cond:
        extra = {k: (v.detach().to("cpu") if isinstance(v, torch.Tensor) else v) for k, v in extra.items()}
        out.append([tensor.detach().to("cpu") if tensor is not None else None, extra])
    return out


class WarmNullTextInversion(NullTextInversion):
    """Null-text inversion warm-started from the source prompt: the source conditioning is the
    unconditional one, so step 0 starts from the source prompt's embedding (where negative-prompt
    inversion stays) and every later step from the previous step's optimum. Official objective,
    learning rate, stopping rule and iteration limit; the optimum lies near the source embedding,
    so the loss is under the official threshold after the first iteration where the official
    start from "" needs many."""

    name = "null_text_fast"
    unconditional = "source (positive)"
    unconditional_fix = "encode_text"

    def inversion_negative(self, positive, negative):
        return [[tensor, dict(extra)] for tensor, extra in positive]

    def out_of_reach(self, previous, loss, threshold, updates_left):
        """Where the threshold is out of reach (a model or schedule whose steps the embedding cannot
        fit that closely), the official loop spends the whole limit: stop when the last update did
        not help, or when even at its rate the remaining updates could not bring the loss under
        the threshold (a linear extrapolation; Adam's progress slows down, not up)."""
        gained = previous - loss
        return gained <= 0 or loss - threshold > gained * updates_left


STRATEGIES = {m.name: m for m in (DDIMInversion(), WarmNullTextInversion(), NullTextInversion(),
                                  NegativePromptInversion(), DirectInversion(), FixedPointInversion())}
METHODS = tuple(STRATEGIES)  # ("ddim", "null_text_fast", "null_text", "negative_prompt", "direct", "fixed_point")


def strategy(method: str) -> InversionMethod:
    if method not in STRATEGIES:
        raise P2PError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    return STRATEGIES[method]
