"""Edited rows call ComfyUI's attention as its own CrossAttention does, with transformer_options, so
an `optimized_attention_override` (another pack's, or ModelPatcher.set_model_optimized_attention)
applies to them as well as to the rows P2P leaves alone."""

import torch
from sampling import empty_latent, encode, sample

from p2p_attention.apply import apply_edit
from p2p_attention.conditioning import encode_prompt_set, latent_batch
from p2p_attention.edits import make_plan
from p2p_attention.unet_runtime import P2PAttentionPatch

SRC = "a red cat sitting on a wooden chair"
EDITS = ["a blue dog sitting on a wooden chair", "a green fox sitting on a metal chair"]


class Override:
    """Counts its calls (by batch size) and scales the backend's output by `factor`."""

    def __init__(self, factor=1.0):
        self.factor, self.batches = factor, []

    def __call__(self, func, *args, **kwargs):
        self.batches.append(args[0].shape[0])
        out = func(*args, **kwargs)
        return out if self.factor == 1.0 else out * self.factor


def _with_override(model, override):
    m = model.clone()
    if hasattr(m, "set_model_optimized_attention"):  # ComfyUI >= 0.2x: the patcher's own setter
        m.set_model_optimized_attention(lambda *a, **kw: override(_backend(), *a, **kw))
    else:
        m.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = override
    return m


def _backend():
    from comfy.ldm.modules.attention import optimized_attention

    return optimized_attention


def test_override_scales_every_row_exactly(tiny_sd1):
    """With an override that doubles the backend's output, every row of P2P's attention, edited or
    not, is exactly twice the row without it (doubling is exact in floating point and every
    output row is a sum of backend calls)."""
    model, clip, _ = tiny_sd1
    _, prompts = encode_prompt_set(clip, SRC, EDITS)
    plan = make_plan(prompts, make_plan(prompts, None, "swap", "0.8", "0.5"),
                     None, "0.8", "0.5", "dog: 2, fox: -1")
    _, runtime = apply_edit(model, plan, self_attn_min_downsample=1)
    gen = torch.Generator().manual_seed(0)
    heads, d, n_img, n_txt = 2, 8, 16, prompts.length
    q = torch.randn(6, n_img, heads * d, generator=gen)  # [uncond x3, cond x3]
    k_txt, v_txt = torch.randn(6, n_txt, heads * d, generator=gen), torch.randn(6, n_txt, heads * d, generator=gen)
    sigmas = torch.linspace(10, 0, 11)
    extra = {"n_heads": heads, "dim_head": d, "attn_precision": None, "cond_or_uncond": [1, 0],
             "sigmas": sigmas[:1].expand(6), "sample_sigmas": sigmas, "original_shape": [6, 4, 4, 4],
             "block": ("input", 1), "block_index": 0}
    for kind, k, v in (("attn2", k_txt, v_txt), ("attn1", q, q)):
        patch = P2PAttentionPatch(runtime, kind)
        plain = patch(q, k, v, dict(extra))
        override = Override(2.0)
        doubled = patch(q, k, v, dict(extra, optimized_attention_override=override))
        assert 2 in override.batches, (kind, override.batches)  # the two edit rows' own call
        assert torch.equal(doubled, 2 * plain), kind
        assert not torch.equal(plain[4:], patch(q, k, v, dict(extra, cond_or_uncond=[1, 1]))[4:])  # rows 4-5 were edited


def test_override_sees_edited_rows_in_stock_sampling(tiny_sd1):
    model, clip, _ = tiny_sd1
    cond, prompts = encode_prompt_set(clip, SRC, EDITS)
    neg, lat = encode(clip, "blurry"), latent_batch(empty_latent(8, 8), 3)
    plan = make_plan(prompts, None, "swap", "0.8", "0.5")
    patched, _ = apply_edit(model, plan, self_attn_min_downsample=1)
    plain = sample(patched, cond, neg, lat, steps=4)
    counting = Override()
    counted = sample(_with_override(patched, counting), cond, neg, lat, steps=4)
    # An identity override calls the same kernel on the same tensors: bit-identical result.
    assert torch.equal(counted, plain)
    # Edited rows reach the backend as a batch of the two edit items (cond chunk only).
    assert counting.batches.count(2) > 0 and len(counting.batches) > counting.batches.count(2)
    scaled = sample(_with_override(patched, Override(1.5)), cond, neg, lat, steps=4)
    moved = (scaled[1:] - plain[1:]).abs().max().item()
    print(f"override x1.5 moves the edit items by {moved:.3f}")
    assert moved > 1e-2  # far above float noise (latents of magnitude ~1)
