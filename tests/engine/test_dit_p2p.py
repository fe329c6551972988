"""Prompt-to-Prompt on MM-DiT models (tiny Flux.1 and SD3.5 from ComfyUI's classes): the joint
attention maths, and every control through ComfyUI's own sampler."""

from __future__ import annotations

import functools

import pytest
import torch
from bounds import fp_bound, last_step_bound, unet_evals
from family_runs import (
    assert_every_control_moves_the_edit,
    reweight,
    run_edit,
    self_block_extremes,
    sharpened_mmdit,
)
from family_runs import refine as _refine
from family_runs import swap as _swap
from sampling import encode, sample

from p2p_attention import joint_attention as ja
from p2p_attention.apply import apply_edit
from p2p_attention.blend import make_blend
from p2p_attention.conditioning import encode_prompt_set, latent_batch
from p2p_attention.edits import make_plan, with_blend
from p2p_attention.errors import P2PError
from p2p_attention.joint_injection import QK, STRUCTURES, VALUES, RegionSpec

SRC = "a red circle on the left"
STEPS = 4


SHARPEN = 6.0  # q/k projections scaled: a random tiny DiT's attention is otherwise near uniform


@functools.cache
def _models(family: str):
    return sharpened_mmdit(family, SHARPEN)


def _cfg(family: str) -> float:
    return 1.0 if family == "flux" else 4.0  # Flux.1 is guidance-distilled: no uncond chunk


def _latent(items: int, h: int = 8, w: int = 12) -> dict:
    return latent_batch({"samples": torch.zeros(1, 16, h, w)}, items)


def _run(family, plan_fn, edits, reference=False, self_blocks="auto", steps=STEPS, structure=VALUES):
    model, clip, _ = _models(family)  # (the negative is unused by Flux at cfg 1)
    return run_edit(model, clip, plan_fn, edits, _latent, _cfg(family), steps, reference=reference,
                    self_blocks=self_blocks, structure=structure)


def _plain(family, cond, neg, items, steps=STEPS):
    model = _models(family)[0]
    return sample(model, cond, neg, _latent(items), steps=steps, cfg=_cfg(family), scheduler="simple")


# ----------------------------------------------------------------------------- the maths


def _coeffs(n_txt, n=2, seed=0):
    from p2p_attention.edits import CrossCoefficients

    g = torch.Generator().manual_seed(seed)
    M = torch.rand(n, n_txt, n_txt, generator=g)
    return CrossCoefficients(M, torch.rand(n, n_txt, generator=g), torch.rand(n, n_txt, generator=g), True, True)


@pytest.mark.parametrize("inject,with_coeffs", [(True, False), (False, True), (True, True)],
                         ids=["self", "cross", "both"])
def test_fast_joint_edit_equals_the_reference(inject, with_coeffs):
    g = torch.Generator().manual_seed(1)
    H, D, n_txt, n_img = 2, 16, 7, 12
    q_s, k_s = torch.randn(1, H, n_img, D, generator=g), torch.randn(1, H, n_txt + n_img, D, generator=g)
    q_e = torch.randn(2, H, n_img, D, generator=g)
    k_e, v_e = torch.randn(2, H, n_txt + n_img, D, generator=g), torch.randn(2, H, n_txt + n_img, D, generator=g)
    coeffs = _coeffs(n_txt) if with_coeffs else None

    def sdpa(q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    ref = ja.edit_rows_reference(q_s, k_s, q_e, k_e, v_e, n_txt, coeffs, inject)
    fast = ja.edit_rows_fast(sdpa, q_s, k_s, q_e, k_e, v_e, n_txt, coeffs, inject)
    assert (fast - ref).abs().max().item() <= fp_bound(ref, torch.float32, n_txt + n_img)
    if not with_coeffs:  # the edit's own cross map and the source's self map
        m, _, _, _ = ja.split_maps(ja.joint_maps(q_e, k_e), n_txt)
        assert m.min() > 0 and m.max() < 1


def test_the_reference_split_holds_where_the_text_mass_rounds_to_one():
    """A query whose joint row puts all but ~1e-9 of its mass on the text (float32: m == 1): the reference
    path's self map is still a distribution, and its rows (source = edit: plain attention) match float64."""
    g = torch.Generator().manual_seed(3)
    n_txt, n_img, d = 4, 6, 8
    k = torch.randn(1, 1, n_txt + n_img, d, generator=g)
    k[..., :n_txt, :] += 6.0  # text keys far ahead of image keys for a query along +1
    q = torch.full((1, 1, n_img, d), 3.0)
    v = torch.randn(1, 1, n_txt + n_img, d, generator=g)
    m, _, s, m_img = ja.split_maps(ja.joint_maps(q, k), n_txt)
    assert bool((m == 1).all()) and float(m_img.max()) > 0  # the case: 1 - m is exactly 0 in float32
    assert torch.allclose(s.sum(-1), torch.ones(()), atol=1e-5)
    ref = ja.edit_rows_reference(q, k, q, k, v, n_txt, None, True)
    exact = torch.softmax(q.double() @ k.double().transpose(-1, -2) * d ** -0.5, -1) @ v.double()
    assert (ref.double() - exact).abs().max().item() <= fp_bound(exact.float(), torch.float32, n_txt + n_img)


def test_an_unedited_joint_row_is_plain_attention():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, n, 8, generator=g) for n in (5, 9, 9))
    ref = ja.edit_rows_reference(q, k, q, k, v, 4, None, False)
    plain = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert (ref - plain).abs().max().item() <= fp_bound(plain, torch.float32, 9)


# ----------------------------------------------------------------------------- through the sampler


FAMILIES = ["flux", "sd3"]


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("family", FAMILIES)
def test_identity_edit_reproduces_the_source_and_item0_is_plain(family, structure):
    out, cond, neg, _, _ = _run(family, _swap, [SRC], structure=structure)
    bound = fp_bound(out[0], torch.float32, unet_evals(STEPS))
    assert (out[1] - out[0]).abs().max().item() <= bound
    plain = _plain(family, [[cond[0][0][:1], {k: (v[:1] if isinstance(v, torch.Tensor) else v)
                                              for k, v in cond[0][1].items()}]], neg, 1)
    assert (out[0] - plain[0]).abs().max().item() <= bound


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("family", FAMILIES)
def test_fast_path_equals_the_reference_path_in_sampling(family, structure):
    edits = ["a green circle on the left"]

    def plan(p):
        return make_plan(p, _swap(p), None, "0.8", "0.5", "green: 2, circle: -0.5")

    fast = _run(family, plan, edits, structure=structure)[0]
    ref = _run(family, plan, edits, reference=True, structure=structure)[0]
    assert (fast - ref).abs().max().item() <= 2 * fp_bound(ref, torch.float32, unet_evals(STEPS))


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("family", FAMILIES)
def test_edit_rows_a_head_at_a_time_equal_all_heads_at_once(family, structure):
    """The runtime passes over the edit rows a few heads at a time (memory): one head per pass gives what
    every head in one pass gives, with two edits (two items per cond chunk) and every control on."""
    edits = ["a green circle on the left", "a red square on the left"]

    def plan(p):
        return make_plan(p, _swap(p), None, "0.8", "1.0", "circle: 2")

    outs = []
    for chunk in (1, 64):
        model, clip, _ = _models(family)
        cond, prompts = encode_prompt_set(clip, SRC, edits)
        patched, runtime = apply_edit(model, plan(prompts), self_blocks="all", mmdit_structure=structure)
        runtime.edit_heads_per_pass = chunk
        outs.append(sample(patched, cond, encode(clip, ""), _latent(3), steps=STEPS, cfg=_cfg(family),
                           scheduler="simple"))
    assert (outs[0] - outs[1]).abs().max().item() <= fp_bound(outs[1], torch.float32, unet_evals(STEPS))
    assert (outs[1][1:] - outs[1][:1]).abs().max().item() > 4 * fp_bound(outs[1], torch.float32, unet_evals(STEPS))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_control_changes_the_edit(family):
    naive_edit = "a green circle on the left"
    model, clip, _ = _models(family)
    swap, cond, neg, _, _ = _run(family, _swap, [naive_edit])
    naive = _plain(family, cond, neg, 2)  # both prompts, no attention control
    refine = _run(family, _refine, ["a big red circle on the left"])[0]
    noise = fp_bound(swap, torch.float32, unet_evals(STEPS))  # what float rounding alone can change
    assert_every_control_moves_the_edit(swap, naive, refine, _run(family, reweight("red: 3"), [SRC])[0], noise)
    # P2P keeps the edit closer to the source than the naive edit does
    assert (swap[1] - swap[0]).abs().mean() < (naive[1] - naive[0]).abs().mean()


@pytest.mark.parametrize("family", FAMILIES)
def test_self_block_choice_matters(family):
    edits = ["a green circle on the left"]
    # self maps (the values outside a one-word edit barely differ from the source's there; their
    # substitution is tested bit for bit)
    none, every = self_block_extremes(lambda **kw: _run(family, _swap, edits, **kw))
    assert (every[1] - none[1]).abs().max().item() > 2 * fp_bound(none, torch.float32, unet_evals(STEPS))
    with pytest.raises(P2PError, match="self_blocks: 'double 9' is not|has no"):
        _run(family, _swap, edits, self_blocks="double 9" if family == "flux" else "single 0")


@pytest.mark.parametrize("family", FAMILIES)
def test_local_blend_is_exact_outside_the_mask(family):
    edits = ["a green circle on the left"]

    def plan(p):
        return with_blend(_swap(p), p, make_blend(p, "circle", "", 0.5, 0.3, 0.0, 0))

    out, _, _, runtime, _ = _run(family, plan, edits)
    mask = runtime.store.last_masks[0, 0]
    outside = mask == 0
    assert 0 < outside.float().mean() < 1
    # euler's last step lands on the blended denoised value: outside the mask the edit is the source
    # up to that step's own rounding
    assert (out[1] - out[0])[:, outside].abs().max().item() <= last_step_bound(out[0])
    assert (out[1] - out[0])[:, ~outside].abs().max().item() > 100 * last_step_bound(out[0])
    maps = runtime.store.maps()
    assert maps.shape == (2, 4, 6, runtime.plan.prompts.length)


def test_another_override_still_runs():
    """An override registered before P2P Apply sees every call, the edit's sub-calls included."""
    model, clip, _ = _models("flux")
    calls = []

    def other(fn, *args, **kwargs):
        calls.append(args[0].shape[0])
        return fn(*args, **kwargs)

    base = model.clone()
    base.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = other
    cond, prompts = encode_prompt_set(clip, SRC, ["a green circle on the left"])
    patched, _ = apply_edit(base, _swap(prompts))
    out = sample(patched, cond, cond, _latent(2), steps=2, cfg=1.0, scheduler="simple")
    plain_calls = 2 * 4  # 2 steps x (2 double + 2 single blocks)
    assert len(calls) > plain_calls and torch.isfinite(out).all()


def _recorded_calls(structure, edit, self_replace="1.0", region=RegionSpec()):
    """Every attention call the backend receives under a P2P edit on the tiny Flux: (q, k, v) as
    [B, H, L, D], with the call's text token count."""
    model, clip, _ = _models("flux")
    calls = []

    def other(fn, *args, **kwargs):
        calls.append([t.clone() for t in args[:3]])
        return fn(*args, **kwargs)

    base = model.clone()
    base.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = other
    cond, prompts = encode_prompt_set(clip, SRC, [edit])
    plan = make_plan(prompts, None, "swap", "0.0", self_replace)
    patched, runtime = apply_edit(base, plan, mmdit_structure=structure, region=region)
    # 12x16 image tokens: room for a word's region to cover part of the image (4x6 is all 3x3 dilation)
    sample(patched, cond, cond, _latent(2, 24, 32), steps=2, cfg=1.0, scheduler="simple")
    n_txt = cond[0][0].shape[1]
    return [c for c in calls if c[0].shape[0] == 2 and c[0].shape[2] > n_txt], n_txt, runtime


def test_image_qk_gives_the_edit_the_source_image_queries_and_keys():
    """Shin et al.: in every joint call the edit's image-token q and k are the source's, bit for bit;
    its text q/k and every value stay its own; no extra attention call."""
    calls, n_txt, _ = _recorded_calls(QK, "a green circle on the left")
    assert len(calls) == 2 * 4  # one backend call per block and step: nothing added
    for q, k, _ in calls:
        assert torch.equal(q[1, :, n_txt:], q[0, :, n_txt:]) and torch.equal(k[1, :, n_txt:], k[0, :, n_txt:])
        assert not torch.equal(k[1, :, :n_txt], k[0, :, :n_txt])  # the edit's own words
    assert any(not torch.equal(v[1], v[0]) for _, _, v in calls)


def test_values_outside_the_edit_are_the_sources():
    """values_outside_edit: at the image tokens outside the changed word's region, the edit's values are
    the source's bit for bit; inside it they are the edit's own; q and k are untouched."""
    # a random model's word maps are flat: a high threshold leaves part of the image outside the region
    calls, n_txt, runtime = _recorded_calls(VALUES, "a green circle on the left", region=RegionSpec(0.9, 0))
    region = runtime.region(1)[0]  # the last step's region of edit item 1
    assert 0 < region.float().mean() < 1
    _, _, v = calls[-1]  # the last step's last block
    same = (v[1, :, n_txt:] == v[0, :, n_txt:]).all(-1).all(0)  # [n_img]: the token's values are equal
    assert bool(same[~region].all())
    assert not bool(same[region].any())
    assert len(calls) == 2 * 4


@pytest.mark.parametrize("family", FAMILIES)
def test_a_swapped_word_keeps_its_own_image_to_text_maps(family):
    """MM-DiT: the changed word's tokens take a2 = 1, a1 = 0 (their own maps); unchanged words the
    source's inside the cross window; a UNet keeps the official rule (tests/engine/test_official_parity.py)."""
    from p2p_attention.edits import compile_plan

    _, clip, _ = _models(family)
    _, prompts = encode_prompt_set(clip, SRC, ["a green circle on the left"])
    plan = make_plan(prompts, None, "swap", "0.8", "0.0")
    dit, unet = compile_plan(plan, own_changed=True), compile_plan(plan, own_changed=False)
    green = prompts.edits[0].positions_of("green")
    circle = prompts.edits[0].positions_of("circle")
    assert green and bool(dit.changed_edit[0, green].all()) and not bool(dit.changed_edit[0, circle].any())
    assert prompts.source.positions_of("red") == torch.nonzero(dit.changed_src[0]).flatten().tolist()
    c = dit.cross_coefficients(0, 10, prompts.length, "cpu", torch.float32)
    assert bool((c.a1[0, green] == 0).all()) and bool((c.a2[0, green] == 1).all())
    assert bool((c.a1[0, circle] == 1).all()) and bool((c.a2[0, circle] == 0).all())
    u = unet.cross_coefficients(0, 10, prompts.length, "cpu", torch.float32)
    assert bool((u.a1[0, green] == 1).all())


def test_structure_options_are_checked():
    model, clip, _ = _models("flux")
    _, prompts = encode_prompt_set(clip, SRC, ["a green circle on the left"])
    with pytest.raises(P2PError, match="mmdit_structure 'foo' is not one of"):
        apply_edit(model, _swap(prompts), mmdit_structure="foo")


@pytest.mark.parametrize("t5", [True, False], ids=["clip+t5", "clip only"])
def test_sd3_context_maps_every_stream(t5):
    from p2p_attention.token_maps import refine_mapper
    from p2p_models.tiny_dit import build_sd3_clip

    clip = _models("sd3").clip if t5 else build_sd3_clip(seed=4, t5=False)
    long_src = "a red circle " * 30  # past 77 T5 tokens: every prompt's T5 stream grows to one length
    cond, ps = encode_prompt_set(clip, long_src, ["a big red circle"])
    src, edit = ps.source, ps.edits[0]
    assert src.length == edit.length == cond[0][0].shape[1]
    if not t5:
        assert not src.parts and src.length == 154  # two CLIP chunks, no T5 rows
        return
    clip_part, t5_part = src.parts
    assert clip_part.length == 154 and t5_part.length == src.length - 154 > 77
    circle = edit.positions_of("circle")
    assert len(circle) == 2 and circle[0] < 154 <= circle[1]  # the word in both streams
    M, alpha = refine_mapper(src, edit)
    assert not M[:154, 154:].any() and not M[154:, :154].any()  # each stream maps on its own
    assert alpha[edit.positions_of("big")].eq(0).all() and alpha[circle].eq(1).all()


def test_t5_words_align_with_the_tail_and_padding():
    """Flux's context is T5 only: no start token, '</s>' then padding to at least 256 tokens."""
    from p2p_attention.token_maps import swap_mapper

    clip = _models("flux").clip
    cond, ps = encode_prompt_set(clip, SRC, ["a magenta circle on the left"])
    src, edit = ps.source, ps.edits[0]
    assert src.length == edit.length == cond[0][0].shape[1] == 256
    assert src.special[:8] == ("",) * 7 + ("end",) and set(src.special[8:]) == {"pad"}
    magenta = edit.word_positions[1]
    assert len(magenta) > 1 and len(src.word_positions[1]) == 1  # 'red' is one piece, 'magenta' three
    M, alpha = swap_mapper(src, edit)
    red = src.word_positions[1][0]
    assert torch.allclose(M[red, list(magenta)], torch.full((len(magenta),), 1 / len(magenta)))
    shift = len(magenta) - 1
    for i in range(src.word_positions[2][0], 256 - shift):  # 'circle' ... '</s>' and the padding follow
        j = i + shift
        assert M[i, j] == 1 and M[:, j].sum() == 1, (i, j)
    assert alpha.eq(1).all()
    long = " ".join(["red circle"] * 150)  # past 256 T5 tokens
    cond, ps = encode_prompt_set(clip, long, [SRC])
    assert ps.source.length == ps.edits[0].length == cond[0][0].shape[1] > 256


def test_a_block_patch_registered_before_still_runs_on_sd3():
    model, clip, _ = _models("sd3")
    seen = []

    def other(args, extra):
        seen.append(args["transformer_options"].get("block_index"))
        return extra["original_block"](args)

    base = model.clone()
    for i in range(2):
        base.set_model_patch_replace(other, "dit", "double_block", i)
    cond, prompts = encode_prompt_set(clip, SRC, ["a green circle on the left"])
    patched, _ = apply_edit(base, _swap(prompts))
    sample(patched, cond, encode(clip, ""), _latent(2), steps=1, cfg=4.0, scheduler="simple")
    assert seen == [0, 1]  # ours tags the block, then hands it to the earlier patch


def test_an_attention_backend_chosen_after_p2p_apply_keeps_the_edit():
    """ComfyUI 0.33's ModelPatcher.set_model_optimized_attention writes the same override slot."""
    model, clip, _ = _models("flux")
    cond, prompts = encode_prompt_set(clip, SRC, ["a green circle on the left"])
    patched, _ = apply_edit(model, _swap(prompts))
    after = patched.clone()
    if not hasattr(after, "set_model_optimized_attention"):
        pytest.skip("this ComfyUI has no set_model_optimized_attention")
    calls = []

    def backend(*args, **kwargs):
        from comfy.ldm.modules.attention import attention_pytorch

        calls.append(1)
        return attention_pytorch(*args, **kwargs)

    after.set_model_optimized_attention(backend)
    edited = sample(patched, cond, cond, _latent(2), steps=2, cfg=1.0, scheduler="simple")
    chosen = sample(after, cond, cond, _latent(2), steps=2, cfg=1.0, scheduler="simple")
    assert len(calls) > 2 * 4  # the chosen backend runs every call, the edit's sub-calls included
    assert (chosen - edited).abs().max().item() <= fp_bound(edited, torch.float32, unet_evals(2))
