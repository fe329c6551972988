"""Install a compiled edit on a ModelPatcher clone through ComfyUI's patch API only.

Every BasicTransformerBlock gets an attn1 and an attn2 replace patch (wrapping any replace
patch another pack registered before us), and an OUTER_SAMPLE wrapper validates the batch
before sampling starts, so bad input fails with a clear message instead of deep in torch.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import torch

from . import attention
from .edits import CompiledEdit, EditPlan, compile_plan
from .schedules import step_index
from .store import AttentionStore, block_downsample, choose_factor

WRAPPER_KEY = "p2p_attention"
COND_UID_KEY = "p2p_prompts_uid"  # set by P2P Prompt Pair on its conditioning
# Self-attention injection sites, as a downsample factor of the latent (0 = auto: by image kind).
SELF_MIN_DOWNSAMPLE_AUTO = 0
DEFAULT_SELF_MIN_DOWNSAMPLE = 4  # official SD notebook: self maps <= 16x16 at 512 px (SD1), 32x32 at 1024 px (SDXL)
REAL_IMAGE_SELF_MIN_DOWNSAMPLE = 2  # official null-text (real image) notebook: <= 32x32 at 512 px
DEFAULT_MAP_DOWNSAMPLE = 4  # attention store and local blend: the official 16x16 maps at 512 px
_NOISY_SAMPLERS = ("ancestral", "sde", "lcm", "ddpm", "er_sde", "seeds")

_BLOCK_RE = re.compile(r"^(input_blocks|output_blocks)\.(\d+)\.\d+\.transformer_blocks\.(\d+)$")
_MIDDLE_RE = re.compile(r"^middle_block\.\d+\.transformer_blocks\.(\d+)$")


def transformer_block_keys(diffusion_model: torch.nn.Module) -> list[tuple[str, int, int]]:
    """(block_name, number, transformer_index) of every UNet transformer block with cross-attention."""
    keys = []
    for name, module in diffusion_model.named_modules():
        if type(module).__name__ != "BasicTransformerBlock" or getattr(module, "attn2", None) is None:
            continue
        m = _BLOCK_RE.match(name)
        if m:
            keys.append(("input" if m.group(1) == "input_blocks" else "output", int(m.group(2)), int(m.group(3))))
            continue
        m = _MIDDLE_RE.match(name)
        if m:
            keys.append(("middle", 0, int(m.group(1))))
    return keys


def spatial_downsample(n_tokens: int, height: int, width: int) -> int:
    """How many times smaller than the latent this attention layer's feature map is."""
    f = 1
    while f <= max(height, width):
        if math.ceil(height / f) * math.ceil(width / f) == n_tokens:
            return f
        f *= 2
    return max(1, round(math.sqrt(height * width / max(n_tokens, 1))))


def _step(sigma: torch.Tensor, sample_sigmas, node: str) -> tuple[int, int]:
    if sample_sigmas is None:
        raise RuntimeError(
            f"{node}: the patched MODEL must be sampled by ComfyUI's sampler nodes "
            "(KSampler, KSamplerAdvanced, SamplerCustom, SamplerCustomAdvanced)."
        )
    return step_index(sigma, sample_sigmas), len(sample_sigmas) - 1


def current_step(extra_options: dict, node: str = "P2P Apply") -> tuple[int, int]:
    """(step index, number of steps) inside attention, from the sampler's sigmas (any sampler/schedule)."""
    return _step(extra_options["sigmas"], extra_options.get("sample_sigmas"), node)


def step_of(sigma: torch.Tensor, model_options: dict, node: str = "P2P Apply") -> tuple[int, int]:
    """(step index, number of steps) in sampler hooks (post-CFG functions, wrappers)."""
    return _step(sigma, model_options.get("transformer_options", {}).get("sample_sigmas"), node)


@dataclass
class Layout:
    """Where source and edit items sit in an attention batch: one (src, edits) per cond chunk."""

    groups: list[tuple[int, list[int]]]

    @property
    def edit_index(self) -> list[int]:
        return [e for _, es in self.groups for e in es]


def batch_layout(total: int, cond_or_uncond: list[int], n_edits: int, node: str = "P2P Apply") -> Layout:
    chunks = len(cond_or_uncond)
    per = total // chunks
    if per * chunks != total or per != 1 + n_edits:
        raise ValueError(
            f"{node}: the latent batch has {per} item(s) but the prompts need {1 + n_edits} "
            f"(the source and {n_edits} edit(s)). Use P2P Latent Batch (or a latent with batch {1 + n_edits})."
        )
    groups = [(c * per, list(range(c * per + 1, (c + 1) * per))) for c, kind in enumerate(cond_or_uncond) if kind == 0]
    return Layout(groups=groups)


@dataclass
class P2PRuntime:
    """State shared by every attention patch of one P2P Apply: the plan and its tensors."""

    plan: EditPlan
    compiled: CompiledEdit
    reference: bool = False  # materialise maps (tests and benchmarks)
    self_min_downsample: int = DEFAULT_SELF_MIN_DOWNSAMPLE
    store: AttentionStore | None = None  # fed at cross-attention, before editing

    _last: tuple | None = None  # (sigmas tensor of the current UNet call, its step)

    def _step(self, extra: dict) -> tuple[int, int]:
        # Every layer of one UNet call sees the same sigmas tensor: find the step once per call
        # (the reference held here keeps its id from being reused by a later tensor).
        sigmas = extra["sigmas"]
        if self._last is None or self._last[0] is not sigmas:
            self._last = (sigmas, current_step(extra))
        return self._last[1]

    def attend(self, kind: str, q, k, v, extra: dict, prior):
        heads = extra["n_heads"]
        precision = extra.get("attn_precision")
        layout = batch_layout(q.shape[0], extra["cond_or_uncond"], self.compiled.n_edits)
        step, n_steps = self._step(extra)
        if kind == "attn2":
            coeffs = self.compiled.cross_coefficients(step, n_steps, k.shape[1], q.device, q.dtype)
            if self.store is not None:
                self.store(q, k, extra, layout, coeffs)
            active = coeffs is not None
        else:
            h, w = extra["original_shape"][-2:]
            active = (
                self.compiled.self_active(step, n_steps)
                and spatial_downsample(q.shape[1], h, w) >= self.self_min_downsample
            )
        base = prior(q, k, v, extra) if prior is not None else None
        if not active or not layout.groups:
            return base if base is not None else attention.plain(q, k, v, heads, precision, extra)

        edits = set(layout.edit_index)
        if base is None:
            rest = [i for i in range(q.shape[0]) if i not in edits]
            out = torch.empty_like(q[..., : v.shape[-1]])
            out[rest] = attention.plain(q[rest], k[rest], v[rest], heads, precision, extra)
        else:
            out = base.clone()
        for src, es in layout.groups:
            q_s, k_s = q[src : src + 1], k[src : src + 1]
            if kind == "attn2":
                edited = attention.cross_edit(q_s, k_s, q[es], k[es], v[es], heads, coeffs, self.reference,
                                              precision, extra)
            else:
                edited = attention.self_inject(q_s, k_s, v[es], heads, self.reference, precision, extra)
            if base is None:
                out[es] = edited
            else:
                # Another pack's patch ran first: keep what it adds, swap its plain attention for ours.
                out[es] = base[es] + edited - attention.plain(q[es], k[es], v[es], heads, precision, extra)
        return out


class P2PAttentionPatch:
    """An attn1/attn2 replace patch; shared state lives in the runtime (clone() deep-copies patches)."""

    def __init__(self, runtime: P2PRuntime, kind: str, prior=None):
        self.runtime, self.kind, self.prior = runtime, kind, prior

    def __call__(self, q, k, v, extra_options):
        return self.runtime.attend(self.kind, q, k, v, extra_options, self.prior)

    def __deepcopy__(self, memo):
        return self


def _sampler_name(sampler) -> str:
    fn = getattr(sampler, "sampler_function", None)
    return getattr(fn, "__name__", type(sampler).__name__)


_warned: set[str] = set()


def make_outer_sample_wrapper(runtime: P2PRuntime, node: str = "P2P Apply"):
    n_items = 1 + runtime.compiled.n_edits
    uid = runtime.plan.prompts.uid

    def outer_sample(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        if latent_image.shape[0] != n_items:
            raise ValueError(
                f"{node}: the latent batch has {latent_image.shape[0]} item(s) but the prompts need {n_items} "
                f"(the source and {n_items - 1} edit(s)). Use P2P Latent Batch to make it."
            )
        positive = executor.class_obj.conds.get("positive", [])
        uids = {c.get(COND_UID_KEY) for c in positive if isinstance(c, dict)}
        if uid not in uids:
            raise ValueError(
                f"{node}: the sampler's positive conditioning does not come from the P2P Prompt Pair this "
                "edit was built from. Connect that Prompt Pair's CONDITIONING to the sampler's positive input."
            )
        if runtime.store is not None:
            runtime.store.reset()
        name = _sampler_name(sampler)
        if any(tag in name for tag in _NOISY_SAMPLERS) and name not in _warned:
            _warned.add(name)
            logging.warning(
                "P2P Apply: sampler '%s' adds fresh random noise to every batch item at each step, so the "
                "edits drift away from the source. Use a deterministic sampler (ddim, euler, dpmpp_2m, "
                "uni_pc, heun) to keep the layout.",
                name,
            )
        return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)

    return outer_sample


def apply_edit(
    model_patcher,
    plan: EditPlan,
    reference: bool = False,
    self_min_downsample: int = SELF_MIN_DOWNSAMPLE_AUTO,
    map_downsample: int = DEFAULT_MAP_DOWNSAMPLE,
    inversion=None,
    node: str = "P2P Apply",
):
    """A patched clone of `model_patcher` (the input is never mutated) and its runtime.
    self_min_downsample 0 (auto): 2 with an inversion (real image), else 4, as the official notebooks."""
    import comfy.patcher_extension

    diffusion_model = model_patcher.get_model_object("diffusion_model")
    keys = transformer_block_keys(diffusion_model)
    if not keys:
        raise ValueError(
            f"{node}: this MODEL has no UNet cross-attention blocks (DiT models such as Flux, SD3 or "
            "Wan are not supported). Use an SD1.x, SD2.x or SDXL checkpoint."
        )
    if self_min_downsample == SELF_MIN_DOWNSAMPLE_AUTO:
        real = inversion is not None
        self_min_downsample = REAL_IMAGE_SELF_MIN_DOWNSAMPLE if real else DEFAULT_SELF_MIN_DOWNSAMPLE
    factors = block_downsample(diffusion_model)
    factor = choose_factor(set(factors.values()), map_downsample)
    store = AttentionStore({k for k, f in factors.items() if f == factor}, factor, plan.prompts)
    runtime = P2PRuntime(
        plan=plan, compiled=compile_plan(plan, node), reference=reference,
        self_min_downsample=self_min_downsample, store=store,
    )
    patched = model_patcher.clone()
    existing = patched.model_options.get("transformer_options", {}).get("patches_replace", {})
    for kind, setter in (("attn1", patched.set_model_attn1_replace), ("attn2", patched.set_model_attn2_replace)):
        registered = existing.get(kind, {})
        for name, number, index in keys:
            prior = registered.get((name, number, index), registered.get((name, number)))
            if isinstance(prior, P2PAttentionPatch):  # P2P applied twice: the newer edit replaces the older
                prior = prior.prior
            setter(P2PAttentionPatch(runtime, kind, prior), name, number, index)
    patched.add_wrapper_with_key(
        comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, make_outer_sample_wrapper(runtime, node)
    )
    if inversion is not None:
        # Before local blend: direct inversion corrects the source's prediction, and the blend
        # must copy the corrected source outside its mask.
        from .inversion import install_inversion

        install_inversion(patched, inversion, n_items=1 + runtime.compiled.n_edits, node=node)
    if plan.blend is not None:
        from .blend import make_post_cfg

        patched.set_model_sampler_post_cfg_function(make_post_cfg(plan.blend, store, plan.prompts))
    return patched, runtime
