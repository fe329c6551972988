"""Prompt-to-Prompt on Z-Image (tiny NextDiT from ComfyUI's ZImage config and classes, a tiny Qwen3 through
ComfyUI's z_image text encoder with its real tokenizer and chat template): word alignment through the
template, the joint calls (caption and image padded to 32 by the model), block naming on both
ComfyUIs, every control through ComfyUI's sampler after the stock ModelSamplingAuraFlow node, and
flow inversion."""

from __future__ import annotations

import functools

import pytest
import torch
from bounds import fp_bound, last_step_bound, unet_evals
from family_runs import psnr, recording_model, run_edit, sharpen
from family_runs import swap as _swap
from sampling import encode, sample

from p2p_attention.apply import apply_edit
from p2p_attention.blend import make_blend
from p2p_attention.conditioning import encode_prompt_set, latent_batch
from p2p_attention.edits import make_plan, with_blend
from p2p_attention.errors import P2PError
from p2p_attention.joint_injection import MAPS, QK, STRUCTURES, VALUES
from p2p_attention.prompts import END, PAD, START

SRC = "a red circle on the left"
STEPS = 4
CFG = 4.0
SHIFT = 3.0  # ComfyUI's Z-Image example: ModelSamplingAuraFlow shift 3
SHARPEN = 2.5  # q/k RMS-norm gains (x2.5 each): a random tiny DiT's attention is otherwise near uniform
LAYERS = 2  # TINY_ZIMAGE_DIT n_layers


@functools.cache
def _models():
    from comfy_extras.nodes_model_advanced import ModelSamplingAuraFlow

    from p2p_models.tiny_zimage import build_tiny_zimage

    models = build_tiny_zimage(seed=3)
    sharpen(models.model, {("q_norm.weight", "k_norm.weight"): SHARPEN})
    model = ModelSamplingAuraFlow().patch_aura(models.model, SHIFT)[0]
    return model, models.clip, models.vae


def _latent(items: int, h: int = 8, w: int = 12) -> dict:
    return latent_batch({"samples": torch.zeros(1, 16, h, w)}, items)


def _run(plan_fn, edits, reference=False, self_blocks="auto", structure=VALUES, base=None, steps=STEPS):
    model, clip, _ = _models()
    return run_edit(base or model, clip, plan_fn, edits, _latent, CFG, steps, reference=reference,
                    self_blocks=self_blocks, structure=structure)


# ----------------------------------------------------------------------------- text


def test_the_family_is_detected():
    from p2p_attention.adapters import model_family
    from p2p_attention.families import NOT_YET

    assert model_family(_models()[0]).name == "zimage"  # not Lumina 2, whose config ZImage's subclasses
    assert "Z-Image" not in NOT_YET


def test_every_word_is_found_through_the_chat_template():
    _, clip, _ = _models()
    src = "A café, with two cats; they're   sleeping.\n(red:1.2) end"
    _, prompts = encode_prompt_set(clip, src, [src + " extra words here"])
    p, e = prompts.prompts
    assert p.length == e.length  # padded to one length with the tokenizer's pad token
    tokens = clip.tokenize(src)["qwen3_4b"][0]
    assert list(p.ids[: len(tokens)]) == [t[0] for t in tokens]
    for prompt in (p, e):
        assert len(prompt.words) == len(prompt.text.split())
        # the template: <|im_start|> user \n before the prompt, <|im_end|> \n <|im_start|> assistant \n after
        assert prompt.special[:3] == (START,) * 3 and prompt.token_text[0] == "<|im_start|>"
        assert prompt.word_of[3] == 0
        hf = clip.tokenizer.qwen3_4b.tokenizer
        for w, word in enumerate(prompt.words):  # each word's tokens decode to the word
            text = hf.decode([prompt.ids[i] for i in prompt.word_positions[w]]).strip().lower()
            assert text == word, (text, word)
    assert p.special[-3:] == (PAD,) * 3 and e.special[-1] == END  # the source padded after its template
    assert p.positions_of("cats") and p.positions_of("(red:1.2)") and p.positions_of("café")


def test_a_long_prompt_is_handled():
    _, clip, _ = _models()
    long = " ".join(["a red circle on the left"] * 80)  # 480 words: one chunk, no truncation
    cond, prompts = encode_prompt_set(clip, long, [long.replace("red", "blue", 1)])
    assert len(prompts.prompts[0].words) == 480 and cond[0][0].shape[1] == prompts.length > 480
    assert prompts.edits[0].positions_of("blue")


def test_a_word_outside_the_prompt_is_refused_by_name():
    _, clip, _ = _models()
    _, prompts = encode_prompt_set(clip, SRC, [SRC])
    with pytest.raises(P2PError, match="purple"):
        make_plan(prompts, None, None, "0.8", "0.5", "purple: 2")


# ----------------------------------------------------------------------------- joint calls, blocks


def test_joint_calls_carry_no_mask_and_the_models_padding():
    """Both ComfyUIs call the main layers with no mask over [caption | cap pads | image | image pads],
    each padded to 32: the override's lengths. A ComfyUI that starts masking them fails here."""
    model, calls = recording_model(_models()[0])
    _run(_swap, ["a green circle on the left"], base=model, steps=1)
    cond_len = _models()[1].tokenize(SRC)["qwen3_4b"][0].__len__()
    joint = 32 * -(-cond_len // 32) + 32 * -(-(4 * 6) // 32)
    joint_calls = [(q, m) for q, m, _ in calls if q.shape[2] == joint]
    assert len(joint_calls) == 2 * LAYERS  # cond (source + edit) and uncond model calls, every layer
    assert all(m is None for _, m in joint_calls)


@pytest.mark.parametrize("chosen", [0, 1])
def test_each_layer_is_named_and_reached(chosen):
    """Image q/k injection in one chosen layer only: there (and only there) the edit's image queries are
    the source's; the store records every layer at every step (blocks x steps)."""
    model, calls = recording_model(_models()[0])
    # no cross window: the edited call is one backend call over the whole batch (q/k substituted)
    out, cond, _, runtime, _ = _run(lambda p: make_plan(p, None, "swap", "0.0", "0.5"), ["a green circle on the left"],
                                    base=model, structure=QK, self_blocks=f"double {chosen}")
    n_txt = 32 * -(-cond[0][0].shape[1] // 32)
    joint = [q for q, _, kind in calls if kind == (0,) and q.shape[0] == 2 and q.shape[2] == n_txt + 32]
    assert len(joint) == LAYERS * STEPS
    self_window = 2  # self_replace 0.5 of 4 steps
    for i, q in enumerate(joint):
        layer, step = i % LAYERS, i // LAYERS
        same = torch.equal(q[1, :, n_txt:], q[0, :, n_txt:])
        # layer 0 at step 0 sees the same image tokens in both items anyway (one noise; the noise
        # refiner has no text)
        assert same == ((layer == chosen and step < self_window) or (layer, step) == (0, 0)), (layer, step)
    assert runtime.store.layer_calls == LAYERS * STEPS
    with pytest.raises(P2PError, match="has no double blocks 5-5"):
        _run(_swap, ["a green circle on the left"], self_blocks="double 5")


# ----------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("structure", STRUCTURES)
def test_identity_edit_reproduces_the_source_and_item0_is_plain(structure):
    out, cond, neg, _, _ = _run(_swap, [SRC], structure=structure)
    bound = fp_bound(out[0], torch.float32, unet_evals(STEPS))
    assert (out[1] - out[0]).abs().max().item() <= bound
    plain = sample(_models()[0], [[cond[0][0][:1], {}]], neg, _latent(1), steps=STEPS, cfg=CFG, scheduler="simple")
    assert (out[0] - plain[0]).abs().max().item() <= bound


@pytest.mark.parametrize("structure", STRUCTURES)
def test_fast_path_equals_the_reference_path(structure):
    def plan(p):
        return make_plan(p, _swap(p), None, "0.8", "0.5", "green: 2, circle: -0.5")

    fast = _run(plan, ["a green circle on the left"], structure=structure)[0]
    ref = _run(plan, ["a green circle on the left"], reference=True, structure=structure)[0]
    assert (fast - ref).abs().max().item() <= 2 * fp_bound(ref, torch.float32, unet_evals(STEPS))


def test_every_control_changes_the_edit():
    swap, cond, neg, _, _ = _run(_swap, ["a green circle on the left"])
    naive = sample(_models()[0], cond, neg, _latent(2), steps=STEPS, cfg=CFG, scheduler="simple")
    # refine: a longer edit (the source is padded with the tokenizer's pad token)
    refine = _run(lambda p: make_plan(p, None, "refine", "0.8", "0.5"), ["a big red circle on the far left"])[0]
    reweight = _run(lambda p: make_plan(p, None, None, "0.8", "0.5", "red: 3"), [SRC])[0]
    maps = _run(_swap, ["a green circle on the left"], structure=MAPS)[0]
    noise = fp_bound(swap, torch.float32, unet_evals(STEPS))
    for name, item in (("swap vs source", swap[1] - swap[0]), ("swap vs naive", swap[1] - naive[1]),
                       ("refine", refine[1] - refine[0]), ("reweight", reweight[1] - reweight[0]),
                       ("self maps vs values", maps[1] - swap[1])):
        assert item.abs().max().item() > 4 * noise, name
    assert (swap[1] - swap[0]).abs().mean() < (naive[1] - naive[0]).abs().mean()


def test_local_blend_is_exact_outside_the_mask():
    def plan(p):
        return with_blend(_swap(p), p, make_blend(p, "circle", "", 0.5, 0.3, 0.0, 0))

    out, _, _, runtime, prompts = _run(plan, ["a green circle on the left"])
    mask = runtime.store.last_masks[0, 0]
    outside = mask == 0
    assert 0 < outside.float().mean() < 1
    assert (out[1] - out[0])[:, outside].abs().max().item() <= last_step_bound(out[0])
    assert (out[1] - out[0])[:, ~outside].abs().max().item() > 100 * last_step_bound(out[0])
    assert runtime.store.maps().shape == (2, 4, 6, prompts.length)  # the grid, not the model's image pads


def test_a_conditioning_from_another_encoder_is_refused(tiny_sd1):
    model = _models()[0]
    cond, prompts = encode_prompt_set(tiny_sd1[1], SRC, ["a green circle on the left"])  # a 64-wide CLIP
    patched, _ = apply_edit(model, _swap(prompts))
    with pytest.raises(P2PError, match="takes a 32-wide text context"):
        sample(patched, cond, cond, _latent(2), steps=1, cfg=CFG, scheduler="simple")


# ----------------------------------------------------------------------------- real images


def _photo() -> dict:
    g = torch.Generator().manual_seed(0)
    return {"samples": torch.randn(1, 16, 8, 12, generator=g)}


def _reconstruct(method):
    from p2p_attention.inversion import install_inversion, invert

    model, clip, _ = _models()
    pos, neg = encode(clip, SRC), encode(clip, "")
    with torch.inference_mode():
        inv = invert(model, pos, neg, _photo(), method=method, steps=8, guidance=CFG, inner_iterations=10)
    assert (inv.sampler, inv.scheduler) == ("euler", "simple")
    patched = install_inversion(model.clone(), inv, n_items=1)
    return sample(patched, pos, neg, {"samples": inv.latent}, sampler=inv.sampler, scheduler=inv.scheduler,
                  steps=inv.steps, cfg=CFG, disable_noise=True)



def test_direct_inversion_reconstructs_the_photo_exactly():
    photo = _photo()["samples"]
    assert (_reconstruct("direct")[0] - photo[0]).abs().max().item() <= last_step_bound(photo)


def test_fixed_point_inversion_beats_plain_ode_inversion():
    """Z-Image is a flow model sampled by euler on its own (shifted) schedule: ODE inversion applies.
    Measured here (8 steps, cfg 4): plain ODE inversion 30.3 dB, fixed point (up to 10 iterations a
    step) 65.8 dB; direct inversion is exact."""
    photo = _photo()["samples"]
    plain, fixed = (psnr(_reconstruct(m)[0], photo[0]) for m in ("ddim", "fixed_point"))
    assert plain > 20 and fixed > plain + 15, (plain, fixed)
