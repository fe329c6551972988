"""Prompt-to-Prompt core on the tiny SD1.x and SDXL models, through ComfyUI's real sampling."""

import logging

import pytest
import torch
from bounds import fp_bound, unet_evals
from sampling import empty_latent, encode, sample

from p2p_attention.apply import apply_edit
from p2p_attention.conditioning import encode_prompt_set, latent_batch
from p2p_attention.edits import make_plan
from p2p_attention.errors import P2PError

SRC = "a red cat sitting on a wooden chair"
SWAP = ["a blue hippopotamus sitting on a wooden chair", "a green dog sitting on a metal chair"]
REFINE = ["a red fluffy cat sitting on a wooden chair", "a cat sitting on a chair"]

# Windows that make every mechanism active on short test runs.
CROSS, SELF = "default: 0.9, chair: 0.2-0.7", "0.6"
STEPS = 6  # _run's and sample's default


def noise(reference, steps=STEPS, sampler="euler"):
    """Two float32 samplings of the same exact latent in another order (fast vs reference attention,
    another attention batch): tests/support/bounds.py over the run's UNet evaluations."""
    return fp_bound(reference, torch.float32, unet_evals(steps, sampler))


def _setup(clip, source, edits, h=8, w=8):
    cond, prompts = encode_prompt_set(clip, source, edits)
    return cond, prompts, encode(clip, "blurry"), latent_batch(empty_latent(h, w), 1 + len(edits))


def _plans(prompts):
    swap = make_plan(prompts, None, "swap", CROSS, SELF)
    return {
        "swap": swap,
        "swap+reweight": make_plan(prompts, swap, None, CROSS, SELF, "hippopotamus: 2.5, dog: -1"),
    }


def _run(model, plan, cond, neg, lat, reference=False, sampler="euler", steps=6, self_min=1, **kw):
    patched, runtime = apply_edit(model, plan, attention_path="reference" if reference else "fast",
                                  self_attn_min_downsample=self_min)
    return sample(patched, cond, neg, lat, sampler=sampler, steps=steps, **kw), runtime


@pytest.fixture(scope="module")
def swap_case(tiny_model):
    arch, (model, clip, _) = tiny_model
    cond, prompts, neg, lat = _setup(clip, SRC, SWAP)
    return arch, model, cond, prompts, neg, lat


def test_fast_equals_reference_swap_and_reweight(swap_case):
    arch, model, cond, prompts, neg, lat = swap_case
    for name, plan in _plans(prompts).items():
        fast, _ = _run(model, plan, cond, neg, lat)
        ref, _ = _run(model, plan, cond, neg, lat, reference=True)
        diff = (fast - ref).abs().max().item()
        print(f"{arch} {name}: fast vs reference max abs diff {diff:.2e} (bound {noise(ref):.2e})")
        assert diff <= noise(ref)


def test_fast_equals_reference_refine_and_stack(tiny_model):
    arch, (model, clip, _) = tiny_model
    cond, prompts, neg, lat = _setup(clip, SRC, REFINE)
    refine = make_plan(prompts, None, "refine", CROSS, SELF)
    stacked = make_plan(prompts, refine, None, CROSS, SELF, "fluffy: 3")
    for name, plan in {"refine": refine, "refine+reweight": stacked}.items():
        fast, _ = _run(model, plan, cond, neg, lat)
        ref, _ = _run(model, plan, cond, neg, lat, reference=True)
        diff = (fast - ref).abs().max().item()
        print(f"{arch} {name}: fast vs reference max abs diff {diff:.2e} (bound {noise(ref):.2e})")
        assert diff <= noise(ref)


def test_source_item_untouched_and_edit_changed(swap_case):
    arch, model, cond, prompts, neg, lat = swap_case
    plain = sample(model, cond, neg, lat)
    edited, _ = _run(model, _plans(prompts)["swap"], cond, neg, lat)
    d0 = (edited[0] - plain[0]).abs().max().item()
    d1 = (edited[1] - plain[1]).abs().max().item()
    print(f"{arch}: source item diff {d0:.2e}, edit item moved by {d1:.3f}")
    assert d0 <= noise(plain[0])  # the source's rows run through attention in another batch
    assert d1 > noise(plain[1])  # P2P changed the edit item by more than float noise


def test_reweight_ones_is_identity(tiny_sd1):
    model, clip, _ = tiny_sd1
    # Alone, on the same prompt: weight 1 leaves the edit item equal to the unpatched one.
    cond, prompts, neg, lat = _setup(clip, SRC, [SRC])
    plain = sample(model, cond, neg, lat)
    ones = make_plan(prompts, None, None, CROSS, SELF, "cat: 1.0, chair: 1")
    out, _ = _run(model, ones, cond, neg, lat)
    assert (out[1] - plain[1]).abs().max().item() <= noise(plain[1])
    # Stacked on a swap: weight 1 equals the swap alone (x 1.0 is exact: the same tensors, the same kernels).
    cond, prompts, neg, lat = _setup(clip, SRC, SWAP)
    swap = make_plan(prompts, None, "swap", CROSS, SELF)
    with_ones = make_plan(prompts, swap, None, CROSS, SELF, "dog: 1")
    a, _ = _run(model, swap, cond, neg, lat)
    b, _ = _run(model, with_ones, cond, neg, lat)
    assert torch.equal(a, b)
    # And a real weight changes it.
    up = make_plan(prompts, swap, None, CROSS, SELF, "dog: 4")
    c, _ = _run(model, up, cond, neg, lat)
    assert (c[2] - a[2]).abs().max().item() > noise(a[2])


@pytest.mark.parametrize("sampler", ["ddim", "euler", "heun", "dpmpp_2m", "uni_pc", "lcm"])
def test_samplers_run_patched_model(tiny_sd1, sampler, caplog):
    model, clip, _ = tiny_sd1
    cond, prompts, neg, lat = _setup(clip, SRC, SWAP[:1])
    plan = make_plan(prompts, None, "swap", CROSS, SELF)
    scheduler = "ddim_uniform" if sampler == "ddim" else "normal"
    plain = sample(model, cond, neg, lat, sampler=sampler, scheduler=scheduler, steps=5)
    with caplog.at_level(logging.WARNING):
        out, _ = _run(model, plan, cond, neg, lat, sampler=sampler, scheduler=scheduler, steps=5)
    assert torch.isfinite(out).all()
    bound = noise(plain, steps=5, sampler=sampler)
    if sampler != "lcm":  # lcm adds fresh noise per item: warned, not identical to the plain source
        assert (out[0] - plain[0]).abs().max().item() <= bound
    assert (out[1] - plain[1]).abs().max().item() > bound
    if sampler == "lcm":
        assert any("fresh random noise" in r.message for r in caplog.records)


def test_prior_replace_patch_still_runs(tiny_sd1):
    from comfy.ldm.modules.attention import optimized_attention

    model, clip, _ = tiny_sd1
    cond, prompts, neg, lat = _setup(clip, SRC, SWAP[:1])
    calls = []

    def other_pack(q, k, v, extra):  # e.g. an IP-Adapter style patch: attention plus something
        calls.append(extra["block"])
        return optimized_attention(q, k, v, extra["n_heads"]) + 0.01

    other = model.clone()
    other.set_model_attn2_replace(other_pack, "output", 4, 0)
    base = sample(other, cond, neg, lat)
    n_alone = len(calls)
    plan = make_plan(prompts, None, "swap", CROSS, SELF)
    out, _ = _run(other, plan, cond, neg, lat)
    assert n_alone > 0 and len(calls) == 2 * n_alone  # still called at every step under ours
    assert (out[0] - base[0]).abs().max().item() <= noise(base[0])  # and its effect kept on the source
    assert "attn2" not in model.model_options.get("transformer_options", {}).get("patches_replace", {})


def test_input_model_not_mutated_and_runs_repeat_bit_identical(tiny_sd1):
    model, clip, _ = tiny_sd1
    before = repr(model.model_options)
    cond, prompts, neg, lat = _setup(clip, SRC, SWAP)
    plan = _plans(prompts)["swap+reweight"]
    a, _ = _run(model, plan, cond, neg, lat)
    b, _ = _run(model, plan, cond, neg, lat)
    assert torch.equal(a, b)
    assert repr(model.model_options) == before


def test_any_latent_size_and_long_prompts(tiny_sdxl):
    model, clip, _ = tiny_sdxl
    long_src = "a red cat " + " ".join(["on a wooden chair"] * 20)
    long_edit = "a blue dog " + " ".join(["on a wooden chair"] * 20)
    cond, prompts, neg, lat = _setup(clip, long_src, [long_edit], h=6, w=10)
    plan = make_plan(prompts, None, "swap", CROSS, SELF)
    fast, _ = _run(model, plan, cond, neg, lat)
    ref, _ = _run(model, plan, cond, neg, lat, reference=True)
    assert fast.shape == (2, 4, 6, 10)
    assert (fast - ref).abs().max().item() <= noise(ref)


def test_bad_inputs_give_clear_errors(tiny_sd1):
    model, clip, _ = tiny_sd1
    cond, prompts, neg, lat = _setup(clip, SRC, ["a blue cat on a chair"])
    with pytest.raises(P2PError, match="^edit prompt 1 .*: Word swap needs the same number of words") as e:
        make_plan(prompts, None, "swap", "0.8", "0.4")
    assert e.value.fix == "refine_for_word_count"
    with pytest.raises(P2PError, match="^word.*'zebra'.*not in any edit prompt"):
        make_plan(prompts, None, None, "0.8", "0.4", "zebra: 2")
    refine = make_plan(prompts, None, "refine", "0.8", "0.4")
    with pytest.raises(P2PError, match="^the incoming edit is already a refine") as e:
        make_plan(prompts, refine, "swap", "0.8", "0.4")
    assert e.value.fix == "one_base_edit"
    # Edit built from another Prompt Pair than the sampler's conditioning.
    other_cond, _ = encode_prompt_set(clip, SRC, ["a blue cat on a chair"])
    patched, _ = apply_edit(model, refine)
    with pytest.raises(P2PError, match="^the sampler's positive conditioning") as e:
        sample(patched, other_cond, neg, lat)
    assert e.value.fix == "sampler_positive"
    # Wrong latent batch.
    with pytest.raises(P2PError, match="^the latent batch has 3 item") as e:
        sample(patched, cond, neg, latent_batch(empty_latent(), 3))
    assert e.value.fix == "latent_batch"
    # A model without UNet cross-attention.
    from p2p_models.tiny_unet import ModelSpec, build_unet

    spec = ModelSpec.tiny("sd1")
    spec.unet.update(transformer_depth=[0, 0, 0], transformer_depth_output=[0] * 6, transformer_depth_middle=0)
    with pytest.raises(P2PError, match=r"^this MODEL \(SD15\) is not supported: Prompt-to-Prompt runs on SD1.x"):
        apply_edit(build_unet(spec), refine)


def test_long_negative_repeats_the_context(tiny_sd1):
    """A 154-token negative makes ComfyUI repeat the 77-token prompts' context twice (LCM)."""
    model, clip, _ = tiny_sd1
    cond, prompts, _, lat = _setup(clip, SRC, SWAP)
    long_neg = encode(clip, " ".join(["blurry ugly dark"] * 30))
    assert long_neg[0][0].shape[1] == 154 and cond[0][0].shape[1] == 77
    plan = _plans(prompts)["swap+reweight"]
    fast, runtime = _run(model, plan, cond, long_neg, lat)
    ref, _ = _run(model, plan, cond, long_neg, lat, reference=True)
    assert (fast - ref).abs().max().item() <= noise(ref)
    plain = sample(model, cond, long_neg, lat)
    assert (fast[0] - plain[0]).abs().max().item() <= noise(plain[0])
    assert [k[1] for k in runtime.compiled._cache if k[0] == "mapper"] == [2]  # tiled twice
