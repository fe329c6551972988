"""Attention store and local blend on the tiny models."""

import pytest
import torch
from bounds import eps, fp_bound, last_step_bound, unet_evals
from sampling import empty_latent, encode, sample

from p2p_attention.apply import apply_edit
from p2p_attention.blend import make_blend
from p2p_attention.conditioning import encode_prompt_set, latent_batch
from p2p_attention.edits import make_plan, with_blend
from p2p_attention.errors import P2PError
from p2p_attention.visualize import token_grid, word_mask

SRC = "a red cat sitting on a wooden chair"
EDITS = ["a red dog sitting on a wooden chair", "a red hippopotamus sitting on a wooden chair"]


def _case(clip, h, w):
    cond, prompts = encode_prompt_set(clip, SRC, EDITS)
    return cond, prompts, encode(clip, "blurry"), latent_batch(empty_latent(h, w), 3)


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "ddim"])
@pytest.mark.parametrize("hw", [(16, 16), (12, 20)])
def test_blend_keeps_source_outside_mask(tiny_model, sampler, hw):
    arch, (model, clip, _) = tiny_model
    cond, prompts, neg, lat = _case(clip, *hw)
    swap = make_plan(prompts, None, "swap", "0.6", "0.3")
    # Random tiny models attend almost uniformly: a high threshold gives a partial mask.
    blend = make_blend(prompts, "cat, dog, hippopotamus", "", 0.85, 0.3, 0.2, 0)
    plan = with_blend(swap, prompts, blend)
    patched, runtime = apply_edit(model, plan, map_downsample=2)
    out = sample(patched, cond, neg, lat, sampler=sampler, steps=8,
                 scheduler="ddim_uniform" if sampler == "ddim" else "normal")
    masks = runtime.store.last_masks.cpu()  # [N, 1, H, W], the final step's masks
    assert masks.shape == (2, 1, *hw)
    for e in range(2):
        m = masks[e, 0].bool()
        frac = m.float().mean().item()
        assert 0.0 < frac < 1.0, f"mask covers {frac:.2f} of the latent"
        outside = (out[e + 1] - out[0]).abs()[:, ~m].max().item()
        inside = (out[e + 1] - out[0]).abs()[:, m].max().item()
        print(f"{arch} {sampler} {hw} edit {e + 1}: mask {frac:.2f}, outside {outside:.1e}, inside {inside:.3f}")
        assert outside <= last_step_bound(out[0])
        assert inside > fp_bound(out[0], torch.float32, unet_evals(8))  # far more than float noise


def test_store_equals_independent_maps(tiny_sd1):
    """The store's maps equal maps materialised by a probe patch at the same layers in the same run:
    the source's own maps, and the edits' maps after injection (per head, then averaged), as the
    official store keeps them."""
    from p2p_attention.steps import current_step

    model, clip, _ = tiny_sd1
    cond, prompts, neg, lat = _case(clip, 16, 16)
    probe_sum, probe_calls, injected_steps = {}, [0], set()

    def probe(q, k, v, extra):  # registered first: P2P wraps it and calls it at every layer
        key = (extra["block"][0], extra["block"][1], extra["block_index"])
        if key in store_keys and 0 in extra["cond_or_uncond"]:
            c = extra["cond_or_uncond"].index(0)
            b = q.shape[0] // len(extra["cond_or_uncond"])
            heads = extra["n_heads"]
            qh = q[c * b:(c + 1) * b].unflatten(-1, (heads, -1)).transpose(1, 2)
            kh = k[c * b:(c + 1) * b].unflatten(-1, (heads, -1)).transpose(1, 2)
            a = (qh @ kh.transpose(-1, -2) / qh.shape[-1] ** 0.5).softmax(-1)  # [3, H, Nq, L]
            step, n = current_step(extra)
            co = runtime.compiled.cross_coefficients(step, n, k.shape[1], q.device, q.dtype)
            if co is not None:
                injected_steps.add(step)
                mapped = torch.einsum("hqi,nij->nhqj", a[0], co.M)
                a = torch.cat([a[:1], co.a1[:, None, None] * mapped + co.a2[:, None, None] * a[1:]])
            probe_sum["m"] = probe_sum.get("m", 0) + a.mean(1)
            probe_calls[0] += 1
        from comfy.ldm.modules.attention import optimized_attention

        return optimized_attention(q, k, v, extra["n_heads"])

    from p2p_attention.unet_blocks import transformer_block_keys

    other = model.clone()
    for name, num, idx in transformer_block_keys(other.get_model_object("diffusion_model")):
        other.set_model_attn2_replace(probe, name, num, idx)
    plan = make_plan(prompts, None, "swap", "0.6", "0.3")
    patched, runtime = apply_edit(other, plan, map_downsample=2)
    store_keys = runtime.recorder.keys
    sample(patched, cond, neg, lat, steps=5)
    stored = runtime.store.maps().cpu()
    probe_maps = (probe_sum["m"] / probe_calls[0]).reshape(3, 8, 8, -1)
    assert len(store_keys) > 0 and runtime.recorder.map_downsample == 2
    assert injected_steps == {0, 1, 2}  # cross 0.6 of 5 steps: int(0.6 * 6) = 3 (official n + 1 rows)
    diff = (stored - probe_maps).abs().max().item()
    # The same float32 softmax maps written in another order, averaged over the layer calls: each
    # call's rounding (values <= 1) adds independently into the mean.
    bound = fp_bound(probe_maps, torch.float32, probe_calls[0])
    print(f"store vs probe maps: max abs diff {diff:.2e} over {probe_calls[0]} layer calls (bound {bound:.1e})")
    assert diff <= bound
    # The source's map is a distribution; an edit's mapped map loses the source tail tokens pushed
    # past the 77th by the longer "hippopotamus" (3 tokens for 1), so it sums to at most 1. A sum of
    # L probabilities, each averaged over the calls: L + calls roundings of values <= 1.
    L = stored.shape[-1]
    total = fp_bound(1.0, torch.float32, L + probe_calls[0])
    assert torch.allclose(stored[0].sum(-1), torch.ones(8, 8), rtol=0, atol=total)
    assert bool((stored[1:].sum(-1) <= 1 + total).all())
    assert total < 1e-3 and eps(torch.float32) < total  # a lost token (>= 1/L of the mass) would show


def test_maps_grid_and_mask(tiny_sd1):
    model, clip, _ = tiny_sd1
    cond, prompts, neg, lat = _case(clip, 16, 16)
    plan = make_plan(prompts, None, "swap", "0.6", "0.3")
    patched, runtime = apply_edit(model, plan, map_downsample=2)
    sample(patched, cond, neg, lat, steps=4)
    grid = token_grid(runtime.store, 1, cell=32)
    n_word_tokens = sum(1 for w in prompts.edits[0].word_of if w >= 0)
    assert grid.shape == (1, 32 + 14, 32 * n_word_tokens, 3)
    mask = word_mask(runtime.store, 1, "dog", (64, 64))
    assert mask.shape == (1, 64, 64) and mask.max().item() == 1.0  # normalised by its max: x / x is exactly 1
    binary = word_mask(runtime.store, 1, "dog", (64, 64), threshold=0.5)
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(P2PError, match="^prompt_index 3 does not exist"):
        token_grid(runtime.store, 3)
    with pytest.raises(P2PError, match="^none of the words 'cat' is in prompt 1"):
        word_mask(runtime.store, 1, "cat", (64, 64))


def test_blend_bad_input(tiny_sd1):
    _, clip, _ = tiny_sd1
    _, prompts, _, _ = _case(clip, 8, 8)
    with pytest.raises(P2PError, match="^'zebra' is in no prompt"):
        make_blend(prompts, "zebra", "", 0.3, 0.3, 0.2, 1)
    with pytest.raises(P2PError, match=r"^threshold must be in \[0, 1\]"):
        make_blend(prompts, "cat", "", 1.5, 0.3, 0.2, 1)
