"""Null-text inversion: the warm start (null_text_fast) against the official settings (null_text)
and negative-prompt inversion, and the gradient path that keeps no copy of the weights
(WeightsAsReferences) against the copy path it replaced (identity weight wrappers).

Same conventions as tests/engine/test_inversion.py: the tiny models are untrained, the "image" is a fixed
random latent, PSNR is latent PSNR.
"""

import math

import pytest
import torch
from sampling import encode, sample

from p2p_attention.inversion import install_inversion, invert, methods
from p2p_attention.inversion.weight_refs import WeightsAsReferences, identity_weight

SRC = "a red cat sitting on a wooden chair"
GUIDANCE = 7.5


def psnr(x, ref):
    mse = float(((x.float() - ref.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(float(ref.abs().max()) ** 2 / mse)


def source_latent(seed=0, h=8, w=8):
    gen = torch.Generator().manual_seed(seed)
    return {"samples": torch.randn(1, 4, h, w, generator=gen) / 0.18215}


def _invert(model, pos, neg, lat, method, steps, **kw):
    with torch.inference_mode():  # as ComfyUI runs a node
        return invert(model, pos, neg, lat, method=method, steps=steps, guidance=GUIDANCE, **kw)


def reconstruct(model, inv, pos, neg):
    patched = install_inversion(model.clone(), inv, n_items=1)
    return sample(patched, pos, neg, {"samples": inv.latent}, sampler=inv.sampler, scheduler=inv.scheduler,
                  steps=inv.steps, cfg=GUIDANCE, disable_noise=True)


def _same(a, b):
    """Two inversions with the same bits: embeddings, latent, trajectory, losses, iterations."""
    assert torch.equal(a.latent, b.latent)
    assert len(a.null_embeddings) == len(b.null_embeddings)
    assert all(torch.equal(x, y) for x, y in zip(a.null_embeddings, b.null_embeddings))
    assert a.final_losses == b.final_losses
    assert a.inner_iterations_used == b.inner_iterations_used
    assert (a.unet_evals, a.unet_backwards) == (b.unet_evals, b.unet_backwards)


# -- the warm start -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sd1_runs(tiny_sd1):
    """tests/engine/test_inversion.py's setting (20 steps, 8x8, cfg 7.5, negative ""), every method."""
    model, clip, _ = tiny_sd1
    pos, neg = encode(clip, SRC), encode(clip, "")
    src = source_latent()
    runs = {}
    for method in ("negative_prompt", "null_text", "null_text_fast"):
        inv = _invert(model, pos, neg, src, method, steps=20)
        runs[method] = (inv, psnr(reconstruct(model, inv, pos, neg), src["samples"]))
    print("\n" + "\n".join(f"  {m:16s} {p:6.2f} dB, {inv.unet_evals} UNet evals, {inv.unet_backwards} backward, "
                           f"{inv.seconds:.1f} s" for m, (inv, p) in runs.items()))
    return runs


def test_warm_start_reconstructs_at_least_as_well_as_official_and_negative_prompt(sd1_runs):
    fast = sd1_runs["null_text_fast"][1]
    assert fast >= sd1_runs["null_text"][1], sd1_runs
    assert fast >= sd1_runs["negative_prompt"][1], sd1_runs


def test_warm_start_costs_a_fraction_of_official(sd1_runs):
    fast, official = sd1_runs["null_text_fast"][0], sd1_runs["null_text"][0]
    n = fast.n_steps
    # Per step: 1 conditional pass, per iteration 1 pass with a backward pass, 1 pass with the final
    # embedding; plus 1 per step of DDIM inversion (the same count as the official loop's).
    for inv in (fast, official):
        used = sum(inv.inner_iterations_used)
        assert inv.unet_evals == 3 * n + used and inv.unet_backwards == used
    # On this model the source embedding is under the official threshold from the start: the official
    # loop's one update per step, then the early stop, at every step.
    assert fast.inner_iterations_used == [1] * n
    assert sum(official.inner_iterations_used) > 3 * n  # the start from "" needs several
    assert fast.unet_evals < official.unet_evals / 2


def test_warm_start_keeps_the_official_rule(sd1_runs):
    """Same learning rate, threshold and check-after-update: only the start differs, so its first
    step runs the official loop from the source embedding (lr 1e-2, Adam, one update at loss <
    1e-5), and the final embedding is what one Adam step makes of the source embedding."""
    inv = sd1_runs["null_text_fast"][0]
    source = inv.negative_conditioning[0][0][:1].float()  # null_text_fast: the source is the unconditional
    step = (inv.null_embeddings[0] - source).abs()
    # Adam's first step moves every coordinate by lr * |m / (sqrt(v) + eps)| <= lr (= 1e-2 at step 0);
    # float32 rounding of the update adds at most an ulp of the embedding's values.
    bound = 1e-2 + 2 * torch.finfo(torch.float32).eps * float(source.abs().max())
    assert 0 < float(step.max()) <= bound


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_warm_start_without_iterations_is_negative_prompt_inversion(arch, tiny_sd1, tiny_sdxl):
    """With 0 inner iterations null_text_fast keeps the source embedding (and, on SDXL, the source's
    pooled output) as the unconditional one at every step: negative-prompt inversion, bit for bit."""
    model, clip, _ = tiny_sd1 if arch == "sd1" else tiny_sdxl
    pos, neg = encode(clip, SRC), encode(clip, "")
    src = source_latent(seed=1)
    fast = _invert(model, pos, neg, src, "null_text_fast", steps=6, inner_iterations=0)
    negp = _invert(model, pos, neg, src, "negative_prompt", steps=6)
    assert fast.unet_backwards == 0
    assert torch.equal(reconstruct(model, fast, pos, neg), reconstruct(model, negp, pos, neg))


def test_out_of_reach_stops_where_the_threshold_cannot_be_reached(tiny_sd1, monkeypatch):
    """A threshold of 0 is never reached: the official loop spends the whole limit at every step;
    null_text_fast stops a step as soon as the remaining updates could not reach it at the last
    update's rate, keeps the best evaluated embedding, and is still at least negative-prompt's."""
    model, clip, _ = tiny_sd1
    pos, neg = encode(clip, SRC), encode(clip, "")
    src = source_latent()
    monkeypatch.setattr(methods, "NULL_TEXT_EPSILON", 0.0)
    monkeypatch.setattr(methods, "NULL_TEXT_EPSILON_SLOPE", 0.0)
    limit = 6
    official = _invert(model, pos, neg, src, "null_text", steps=8, inner_iterations=limit)
    fast = _invert(model, pos, neg, src, "null_text_fast", steps=8, inner_iterations=limit)
    negp = _invert(model, pos, neg, src, "negative_prompt", steps=8)
    print(f"\nthreshold 0: official {official.inner_iterations_used}, fast {fast.inner_iterations_used}")
    assert official.inner_iterations_used == [limit] * 8
    assert all(1 <= u < limit for u in fast.inner_iterations_used)
    used = sum(fast.inner_iterations_used)
    assert fast.unet_evals == 3 * 8 + used and fast.unet_backwards == used  # the stopping pass is the final one
    p_fast = psnr(reconstruct(model, fast, pos, neg), src["samples"])
    p_neg = psnr(reconstruct(model, negp, pos, neg), src["samples"])
    assert p_fast >= p_neg, (p_fast, p_neg)


def test_out_of_reach_rule():
    rule = methods.WarmNullTextInversion().out_of_reach
    assert rule(2.0, 2.0, 0.0, 9)  # no progress
    assert rule(2.0, 2.5, 0.0, 9)  # worse
    assert not rule(2.0, 1.0, 0.5, 1)  # 1 more update at this rate reaches 0.5 (0.5 left, gains 1.0)
    assert rule(2.0, 1.9, 0.5, 9)  # 1.4 left at 0.1 per update: 14 > 9 updates
    assert not methods.NullTextInversion().out_of_reach(2.0, 2.5, 0.0, 9)  # official: the limit ends a step


def test_null_text_fast_refuses_a_combined_source(tiny_sd1):
    from p2p_attention.errors import P2PError

    model, clip, _ = tiny_sd1
    pos = encode(clip, SRC) + encode(clip, "a chair")
    with pytest.raises(P2PError, match=r"^null-text needs ONE source \(positive\) conditioning entry; got 2") as e:
        _invert(model, pos, encode(clip, ""), source_latent(), "null_text_fast", steps=2)
    assert e.value.fix == "encode_text"


# -- the gradient path ----------------------------------------------------------------------------


def _models():
    """The weights ComfyUI can hand the inversion: normal parameters (requires_grad, as the test
    models are built), inference tensors (a checkpoint loaded in a node), fp16 (cast to the fp32
    compute dtype layer by layer)."""
    from p2p_models.tiny_unet import ModelSpec, build_all

    def build(dtype=torch.float32, inference=False):
        spec = ModelSpec.tiny("sd1")
        spec.v_prediction = True
        if inference:
            with torch.inference_mode():
                return build_all(spec, seed=0, dtype=dtype)
        return build_all(spec, seed=0, dtype=dtype)

    return {"parameters": lambda: build(), "inference": lambda: build(inference=True),
            "float16": lambda: build(torch.float16, inference=True)}


@pytest.mark.parametrize("weights", ["parameters", "inference", "float16"])
def test_official_settings_give_the_bits_of_the_copy_path(weights, monkeypatch):
    """null_text (official settings) through WeightsAsReferences equals the copy path (the code
    before it: identity weight wrappers, a copy of every weight kept for the backward pass) bit for
    bit: the same values enter the same operations."""
    model, clip, _ = _models()[weights]()
    with torch.inference_mode():
        pos, neg = encode(clip, SRC), encode(clip, "")
    src = source_latent()
    runs = {}
    for gradient in ("copies", "references"):
        monkeypatch.setitem(methods.STRATEGIES, "null_text", methods.NullTextInversion(gradient=gradient))
        runs[gradient] = _invert(model, pos, neg, src, "null_text", steps=6)
    assert runs["references"].unet_backwards > 0
    _same(runs["copies"], runs["references"])


def _saved(model, context_manager, kind):
    """One differentiated UNet evaluation of `model` (w.r.t. its text context) -> (gradient, bytes
    autograd saved). kind "copies": the model carries identity weight wrappers, counted by a plain
    saved-tensors hook; "references": WeightsAsReferences counts."""
    import comfy.model_management

    patched = model.clone()
    patched.set_model_compute_dtype(torch.float32)
    if kind == "copies":
        for name, module in patched.model.named_modules():
            if name.startswith("diffusion_model.") and hasattr(module, "weight_function"):
                for attr in ("weight", "bias"):
                    if getattr(module, attr, None) is not None:
                        patched.add_weight_wrapper(f"{name}.{attr}", identity_weight)
    comfy.model_management.load_models_gpu([patched])
    try:
        gen = torch.Generator().manual_seed(5)
        x = torch.randn(1, 4, 8, 8, generator=gen)
        dim = patched.model.model_config.unet_config["context_dim"]
        context = torch.randn(1, 7, dim, generator=gen).requires_grad_(True)
        counted = [0]

        def pack(t):
            counted[0] += t.numel() * t.element_size()
            return t

        with torch.enable_grad():
            outer = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if kind == "copies" else None
            with outer or context_manager:
                out = patched.model.apply_model(x, torch.tensor([3.0]), c_crossattn=context)
            (grad,) = torch.autograd.grad(out.square().mean(), [context])
        return grad, counted[0]
    finally:
        patched.unpatch_model()


@pytest.mark.parametrize("weights", ["parameters", "inference", "float16"])
def test_the_backward_pass_keeps_no_copy_of_the_weights(weights):
    """The same graph saves the same tensors; the copy path holds every saved weight as a copy of its
    own, WeightsAsReferences as the weight itself (fp32) or a reference recast in the backward pass
    (fp16 weights, fp32 compute); what it keeps of its own is the activations only. Same gradient."""
    model, _, _ = _models()[weights]()
    refs = WeightsAsReferences()
    grad_copies, copies_bytes = _saved(model, None, "copies")
    grad_refs, _ = _saved(model, refs, "references")
    weights_bytes = sum(p.numel() * 4 for p in model.model.diffusion_model.parameters())  # as fp32
    print(f"\n{weights}: copy path saves {copies_bytes / 2**20:.2f} MiB; references: activations "
          f"{refs.kept_bytes / 2**20:.2f} MiB + weights {refs.weight_bytes / 2**20:.2f} MiB (no memory of their "
          f"own) + recast {refs.recast_bytes / 2**20:.2f} MiB; UNet weights {weights_bytes / 2**20:.2f} MiB (fp32)")
    assert torch.equal(grad_copies, grad_refs)
    assert refs.kept_bytes + refs.weight_bytes + refs.recast_bytes == copies_bytes
    saved_weights = refs.weight_bytes + refs.recast_bytes
    # Every layer after the first cross-attention is differentiated: most of the UNet's weights.
    assert saved_weights > weights_bytes / 2
    if weights == "float16":
        assert refs.recast_bytes == saved_weights  # every fp32 cast of an fp16 weight: a reference
    else:
        assert refs.weight_bytes == saved_weights and refs.recast_bytes == 0


def test_a_cast_changed_in_place_is_kept_as_it_is():
    """A weight cast that something modified after the cast (a LoRA patch on the copy in low-VRAM
    mode) is no longer what recasting the weight gives: it is kept as a tensor."""
    w = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float16), requires_grad=False)
    x = torch.randn(2, 3, requires_grad=True)
    refs = WeightsAsReferences()
    with refs:
        cast = w.to(torch.float32)
        y = torch.nn.functional.linear(x, cast)
    assert refs.recast_bytes == cast.numel() * 4 and refs.kept_bytes == 0
    refs2 = WeightsAsReferences()
    with refs2:
        cast = w.to(torch.float32)
        cast.add_(1.0)
        y2 = torch.nn.functional.linear(x, cast)
    assert refs2.recast_bytes == 0 and refs2.kept_bytes == cast.numel() * 4
    grads = [torch.autograd.grad(out.sum(), [x])[0] for out in (
        y, y2, torch.nn.functional.linear(x, w.float()), torch.nn.functional.linear(x, w.float() + 1.0))]
    assert torch.equal(grads[0], grads[2]) and torch.equal(grads[1], grads[3])


def test_a_graph_without_a_backward_pass_frees_itself():
    """null_text_fast's stopping evaluation gets no backward pass: its graph, with the activations it
    saved, must go when its outputs go (not wait for the garbage collector: an output saved by its
    own operation would otherwise be a reference cycle)."""
    import gc
    import weakref

    x = torch.randn(3, requires_grad=True)
    gc.disable()
    try:
        with WeightsAsReferences():
            y = x.exp()  # exp saves its own output
        ref = weakref.ref(y)
        del y
        assert ref() is None
    finally:
        gc.enable()
