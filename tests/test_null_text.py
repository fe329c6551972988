"""Null-text inversion: the gradient path that keeps no copy of the weights (WeightsAsReferences)
against the copy path it replaced (identity weight wrappers).

Same conventions as tests/test_inversion.py: the tiny models are untrained, the "image" is a fixed
random latent, PSNR is latent PSNR.
"""

import math

import pytest
import torch
from sampling import encode, sample

from p2p_attention.inversion import install_inversion, invert, methods
from p2p_attention.inversion.patches import WeightsAsReferences, identity_weight

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


# -- the gradient path ----------------------------------------------------------------------------


def _models():
    """The weights ComfyUI can hand the inversion: normal parameters (requires_grad, as the test
    models are built), inference tensors (a checkpoint loaded in a node), fp16 (cast to the fp32
    compute dtype layer by layer)."""
    from p2p_attention.model_build import ModelSpec, build_all

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
