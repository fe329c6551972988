"""The core, local-blend and inversion checks with the UNet in bfloat16 and float16, as a GPU runs it.

The UNet's dtype is set through ComfyUI's own machinery (model_build.build_unet: the model config's
set_inference_dtype, then comfy.ops picks the layers): weights and compute in the half dtype, no
manual cast, so the P2P patches get half q/k/v (a dtype mismatch in the patched path raises here).
ComfyUI's sampler stays float32, so what only the sampler computes (local blend outside its mask,
direct inversion's forced source) keeps float32 bounds; what the UNet computes gets the half
dtype's. P2P_TEST_DEVICE=cuda runs the same tests on a GPU (benchmarks/gpu_check.sh).
"""

import pytest
import torch
from bounds import K_RUN, dtype_name, fp_bound, last_step_bound, unet_evals
from conftest import TEST_DEVICE
from sampling import empty_latent, encode, sample

from p2p_attention.apply import apply_edit
from p2p_attention.blend import make_blend
from p2p_attention.conditioning import encode_prompt_set, latent_batch
from p2p_attention.edits import make_plan, with_blend
from p2p_attention.inversion import invert
from p2p_attention.unet_runtime import P2PAttentionPatch

DTYPES = [torch.bfloat16, torch.float16]
SRC = "a red cat sitting on a wooden chair"
SWAP = ["a blue hippopotamus sitting on a wooden chair", "a green dog sitting on a metal chair"]
CROSS, SELF, STEPS = "default: 0.9, chair: 0.2-0.7", "0.6", 6

pytestmark = pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)


class QDtypes:
    """Records the dtype of every query the UNet's attention computes (a forward hook on to_q)."""

    def __init__(self, model):
        self.seen, self.handles = set(), []
        for name, m in model.model.diffusion_model.named_modules():
            if name.endswith("attn2.to_q"):
                self.handles.append(m.register_forward_hook(lambda mod, i, out: self.seen.add(out.dtype)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def _sample(model, plan, cond, neg, lat, **kw):
    patched = apply_edit(model, plan, self_attn_min_downsample=1, **kw)[0] if plan is not None else model
    return sample(patched, cond, neg, lat, steps=STEPS)


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_fast_equals_reference_and_source_untouched(arch, dtype, tiny_in_dtype):
    model, clip, _ = tiny_in_dtype(arch, dtype)
    assert model.model.get_dtype() == dtype and model.model.manual_cast_dtype is None
    cond, prompts = encode_prompt_set(clip, SRC, SWAP)
    neg, lat = encode(clip, "blurry"), latent_batch(empty_latent(8, 8), 3)
    swap = make_plan(prompts, None, "swap", CROSS, SELF)
    plan = make_plan(prompts, swap, None, CROSS, SELF, "hippopotamus: 2.5, dog: -1")
    with QDtypes(model) as q:
        fast = _sample(model, plan, cond, neg, lat)
    assert q.seen == {dtype}, q.seen  # the patched attention really ran in the half dtype
    ref = _sample(model, plan, cond, neg, lat, attention_path="reference")
    plain = _sample(model, None, cond, neg, lat)
    bound = fp_bound(ref, dtype, unet_evals(STEPS))
    d_ref, d_src = (fast - ref).abs().max().item(), (fast[0] - plain[0]).abs().max().item()
    print(f"{arch} {dtype_name(dtype)}: fast vs reference {d_ref:.2e}, source vs plain {d_src:.2e}, bound {bound:.2e}")
    assert torch.isfinite(fast).all() and torch.isfinite(ref).all()
    assert d_ref <= bound and d_src <= bound


def test_identity_edit_reproduces_source(dtype, tiny_in_dtype):
    model, clip, _ = tiny_in_dtype("sd1", dtype)
    cond, prompts = encode_prompt_set(clip, SRC, [SRC])
    plan = make_plan(prompts, None, "refine", CROSS, SELF)
    out = _sample(model, plan, cond, encode(clip, "blurry"), latent_batch(empty_latent(8, 8), 2))
    diff = (out[1] - out[0]).abs().max().item()
    # Per-word windows split the edit's attention into two backend calls that sum: another rounding order.
    assert diff <= fp_bound(out[0], dtype, unet_evals(STEPS)), diff


@pytest.fixture(scope="module")
def sd1_prompts(tiny_sd1):
    return encode_prompt_set(tiny_sd1[1], SRC, SWAP)[1]


def test_attention_call_in_dtype(dtype, sd1_prompts, tiny_sd1):
    """One patched attention call on half inputs, fast and reference paths, against float32 maths on
    the same half values: here the edits' effect is far above the half dtype's noise, which is not
    so for the tiny models' sampled latents (their P2P effect is ~1% of |x|, bf16's eps 0.8%)."""
    prompts = sd1_prompts
    swap = make_plan(prompts, None, "swap", "0.8", "0.5")
    plan = make_plan(prompts, swap, None, "0.8", "0.5", "hippopotamus: 2.5, dog: -1")
    _, runtime = apply_edit(tiny_sd1[0], plan, self_attn_min_downsample=1)
    gen = torch.Generator().manual_seed(0)
    heads, d, n_img, L = 2, 16, 64, prompts.length
    dev = torch.device(TEST_DEVICE)
    q = torch.randn(6, n_img, heads * d, generator=gen).to(dev, dtype)  # [uncond x3, cond x3]
    k_txt = torch.randn(6, L, heads * d, generator=gen).to(dev, dtype)
    v_txt = torch.randn(6, L, heads * d, generator=gen).to(dev, dtype)
    sigmas = torch.linspace(10, 0, 11, device=dev)
    extra = {"n_heads": heads, "dim_head": d, "attn_precision": None, "cond_or_uncond": [1, 0],
             "sigmas": sigmas[:1].expand(6), "sample_sigmas": sigmas, "original_shape": [6, 4, 8, 8],
             "block": ("input", 1), "block_index": 0}
    for kind, k, v in (("attn2", k_txt, v_txt), ("attn1", q, q)):
        runtime.reference = False
        fast = P2PAttentionPatch(runtime, kind)(q, k, v, dict(extra))
        runtime.reference = True
        ref = P2PAttentionPatch(runtime, kind)(q, k, v, dict(extra))
        # Float32 maths on the same half values: the exact result up to float32 noise.
        exact = P2PAttentionPatch(runtime, kind)(q.float(), k.float(), v.float(), dict(extra))
        runtime.reference = False
        plain = P2PAttentionPatch(runtime, kind)(q, k, v, dict(extra, cond_or_uncond=[1, 1]))
        assert fast.dtype == ref.dtype == dtype and fast.device.type == dev.type
        # The fast path's roundings to dtype: a1*v, M @ ., the backend's output, a2*v, its output, the
        # sum (attn2: 6; attn1: the backend's output, 1); the reference rounds once, at its output.
        terms = 6 if kind == "attn2" else 1
        bound = fp_bound(exact, dtype, terms, k=K_RUN)
        d_fast = (fast.float() - exact).abs().max().item()
        d_ref = (ref.float() - exact).abs().max().item()
        moved = (plain[4:].float() - exact[4:]).abs().max().item()  # rows 4-5: the edits (cond chunk)
        print(f"{kind} {dtype_name(dtype)}: fast {d_fast:.2e}, reference {d_ref:.2e}, bound {bound:.2e}, edit effect {moved:.3f}")
        assert d_fast <= bound and d_ref <= bound
        assert moved > 2 * bound  # the check can tell an unedited row from an edited one
        runtime.reference = False


def test_local_blend_outside_mask_is_float32_exact(dtype, tiny_in_dtype):
    model, clip, _ = tiny_in_dtype("sd1", dtype)
    cond, prompts = encode_prompt_set(clip, SRC, ["a red dog sitting on a wooden chair"])
    swap = make_plan(prompts, None, "swap", "0.6", "0.3")
    blend = make_blend(prompts, "cat, dog", "", 0.85, 0.3, 0.2, 0)
    patched, runtime = apply_edit(model, with_blend(swap, prompts, blend), map_downsample=2)
    out = sample(patched, cond, encode(clip, "blurry"), latent_batch(empty_latent(16, 16), 2), steps=8)
    m = runtime.store.last_masks[0, 0].cpu().bool()
    assert 0.0 < m.float().mean().item() < 1.0
    outside, inside = (out[1] - out[0]).abs()[:, ~m].max().item(), (out[1] - out[0]).abs()[:, m].max().item()
    print(f"{dtype_name(dtype)}: outside {outside:.1e} (float32 bound {last_step_bound(out[0]):.1e}), inside {inside:.3f}")
    assert outside <= last_step_bound(out[0])  # the blend and the last step are the float32 sampler's
    assert inside > 100 * last_step_bound(out[0])  # inside the mask the edit is not a copy of the source


def _source(h=8, w=8):
    gen = torch.Generator().manual_seed(0)
    return {"samples": torch.randn(1, 4, h, w, generator=gen) / 0.18215}


def _reconstruct(model, clip, inv, neg):
    cond, prompts = encode_prompt_set(clip, SRC, [SRC])
    plan = make_plan(prompts, None, "refine", "0.8", "0.4")
    patched, _ = apply_edit(model, plan, self_attn_min_downsample=1, inversion=inv)
    return sample(patched, cond, neg, latent_batch({"samples": inv.latent}, 2), sampler=inv.sampler,
                  scheduler=inv.scheduler, steps=inv.steps, cfg=7.5, disable_noise=True)


def test_direct_inversion_exact(dtype, tiny_in_dtype):
    model, clip, _ = tiny_in_dtype("sd1", dtype)
    pos, neg, src = encode(clip, SRC), encode(clip, ""), _source()
    with torch.inference_mode():
        inv = invert(model, pos, neg, src, method="direct", steps=8, guidance=7.5)
    out = _reconstruct(model, clip, inv, neg)
    diff = (out[0:1] - src["samples"]).abs().max().item()
    print(f"{dtype_name(dtype)}: direct inversion max abs diff {diff:.2e}")
    assert diff <= last_step_bound(src["samples"])  # the correction is the float32 sampler's


def test_null_text_optimises_in_float32(dtype, tiny_in_dtype):
    model, clip, _ = tiny_in_dtype("sd1", dtype)
    pos, neg, src = encode(clip, SRC), encode(clip, ""), _source()
    seen = []
    handles = [m.register_forward_hook(lambda mod, i, out: seen.append((torch.is_grad_enabled(), out.dtype)))
               for name, m in model.model.diffusion_model.named_modules() if name.endswith("attn2.to_q")]
    try:
        with torch.inference_mode():
            inv = invert(model, pos, neg, src, method="null_text", steps=3, guidance=7.5, inner_iterations=2,
                         early_stop=False)
    finally:
        for h in handles:
            h.remove()
    assert inv.unet_backwards == 6 and not inv.nan_steps
    assert {dt for grad, dt in seen} == {torch.float32}  # inversion.py: set_model_compute_dtype(float32)
    assert any(grad for grad, _ in seen)
    assert all(e.dtype == torch.float32 and torch.isfinite(e).all() for e in inv.null_embeddings)
    assert not torch.equal(inv.null_embeddings[-1], neg[0][0].float())  # it did optimise
    out = _reconstruct(model, clip, inv, neg)  # the edit's sampling back in the half dtype
    assert torch.isfinite(out).all()
    assert model.model.get_dtype() == dtype and model.model.manual_cast_dtype is None  # input MODEL untouched
