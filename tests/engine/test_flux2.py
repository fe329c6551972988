"""Prompt-to-Prompt on Flux.2 (ComfyUI config Flux2): tiny models from ComfyUI's own classes
(p2p_models.tiny_flux2: supported_models.Flux2 with a tiny unet_config, klein's Qwen3 text encoder with
the real qwen25 tokenizer and its chat template, the Flux.2 VAE class). Detection (klein / dev, never
Flux.1), the chat template's token positions, every control through ComfyUI's sampler, the override in
every block, real-image inversion on Flux.2's flow schedule, and what is refused (the negative-branch
inversions on guidance-distilled dev). Flux.2 dev's Mistral text encoder: tests/engine/test_flux2_dev.py.

ComfyUI 0.3.75 has no klein text encoder (only dev's Mistral): the tests that encode prompts
are skipped there; detection, the model-side tests and inversion run on both ComfyUIs."""

from __future__ import annotations

import functools

import pytest
import torch
from bounds import fp_bound, last_step_bound, unet_evals
from family_runs import blocks_reached, psnr, run_edit, sharpen
from family_runs import swap as _swap
from sampling import sample

from p2p_attention.adapters import model_family
from p2p_attention.apply import apply_edit
from p2p_attention.blend import make_blend
from p2p_attention.conditioning import encode_prompt_set, latent_batch
from p2p_attention.edits import make_plan, with_blend
from p2p_attention.errors import P2PError
from p2p_attention.families import FLUX, FLUX2_DEV, FLUX2_KLEIN
from p2p_attention.inversion import install_inversion, invert
from p2p_attention.joint_injection import MAPS, STRUCTURES, VALUES
from p2p_models import tiny_flux2

SRC = "a red circle on the left"
EDIT = "a green circle on the left"
STEPS = 4
SHARPEN = 6.0  # q/k scaled as in test_dit_p2p.py: a random tiny DiT's attention is otherwise near uniform
NORM_GAIN = 2.0
H, W = 4, 6  # a Flux.2 latent (128 channels, 16x): 24 image tokens at patch 1

needs_klein = pytest.mark.skipif(not tiny_flux2.klein_available(),
                                 reason="this ComfyUI (0.3.75) has no Flux.2 klein text encoder")


def _sharpen(model):  # q/k are RMS-normalised: their gains set the logits' scale
    return sharpen(model, {("qkv.weight", "linear1.weight"): SHARPEN,
                           ("query_norm.scale", "key_norm.scale", "query_norm.weight", "key_norm.weight"): NORM_GAIN})


@functools.cache
def _model(dev: bool = False):
    return _sharpen(tiny_flux2.build_flux2_model(seed=3, guidance_embed=dev))


@functools.cache
def _clip():
    return tiny_flux2.build_klein_clip(seed=4)


def _latent(items: int) -> dict:
    return latent_batch({"samples": torch.zeros(1, 128, H, W)}, items)


def _run(plan_fn, edits, reference=False, structure=VALUES, steps=STEPS, self_blocks="auto"):
    out, cond, _, runtime, prompts = run_edit(_model(), _clip(), plan_fn, edits, _latent, 1.0, steps, negative=None,
                                              reference=reference, self_blocks=self_blocks, structure=structure)
    return out, cond, runtime, prompts


# ----------------------------------------------------------------------------- detection


def test_flux2_is_its_own_family_with_its_variants():
    klein, dev = _model(), _model(dev=True)
    assert type(klein.model.model_config).__name__ == "Flux2"
    assert model_family(klein) is FLUX2_KLEIN and model_family(dev) is FLUX2_DEV
    assert FLUX2_KLEIN is not FLUX and FLUX2_DEV is not FLUX
    assert FLUX2_DEV.distilled and not FLUX2_KLEIN.distilled  # dev: guidance embedding, cfg 1
    assert klein.model.latent_format.latent_channels == 128
    dm = klein.get_model_object("diffusion_model")
    assert dm.patch_size == 1 and dm.vector_in is None and len(dm.params.axes_dim) == 4


def test_a_flux1_model_is_still_flux1():
    from p2p_models.tiny_dit import build_flux_model

    assert model_family(build_flux_model(seed=0)) is FLUX


# ----------------------------------------------------------------------------- tokens


@needs_klein
def test_klein_words_are_found_inside_the_chat_template_and_padding():
    from p2p_attention.prompts import END, PAD, START
    from p2p_attention.token_maps import refine_mapper, swap_mapper

    cond, ps = encode_prompt_set(_clip(), SRC, ["a magenta circle on the left", "a big red circle on the left"])
    src, edit, refine = ps.source, *ps.edits
    assert src.length == edit.length == cond[0][0].shape[1] == 512
    raw = [t[0] for t in _clip().tokenize(SRC)["qwen3_4b"][0]]
    assert list(src.ids) == raw  # the positions are those of the tokens the context holds
    # <|im_start|>user\n, the words, <|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n, padding
    assert src.special[:3] == (START,) * 3 and src.token_text[0] == "<|im_start|>"
    first, last = src.word_positions[0][0], src.word_positions[-1][-1]
    assert first == 3 and set(src.special[first : last + 1]) == {""}
    assert src.token_text[last + 1] == "<|im_end|>" and set(src.special[last + 1 : last + 10]) == {END}
    assert set(src.special[last + 10 :]) == {PAD} and set(src.ids[last + 10 :]) == {151643}
    for p in (src, edit, refine):  # every word's tokens decode to the word
        for w, pos in zip(p.words, p.word_positions):
            assert pos and "".join(p.token_text[i] for i in pos).strip().lower() == w
    magenta = edit.positions_of("magenta")
    assert len(magenta) > 1 and len(src.positions_of("red")) == 1
    M, alpha = swap_mapper(src, edit)
    assert torch.allclose(M[src.positions_of("red")[0], magenta], torch.full((len(magenta),), 1 / len(magenta)))
    shift = len(magenta) - 1
    for i in range(src.positions_of("circle")[0], 512 - shift):  # the words, template end, padding follow
        assert M[i, i + shift] == 1 and M[:, i + shift].sum() == 1, i
    assert all(M[i, i] == 1 for i in range(3))  # the template's start maps to itself
    M, alpha = refine_mapper(src, refine)
    assert alpha[refine.positions_of("big")].eq(0).all() and alpha[refine.positions_of("circle")].eq(1).all()


@needs_klein
def test_klein_long_prompts_grow_past_512_together():
    long = " ".join(["red circle"] * 300)
    cond, ps = encode_prompt_set(_clip(), long, [SRC])
    assert ps.source.length == ps.edits[0].length == cond[0][0].shape[1] > 512
    assert len(ps.source.positions_of("circle")) == 300 and len(ps.edits[0].positions_of("circle")) == 1


@needs_klein
def test_a_word_missing_from_the_prompt_is_a_clear_error():
    _, prompts = encode_prompt_set(_clip(), SRC, [EDIT])
    with pytest.raises(P2PError, match="Words available"):
        make_plan(prompts, None, "swap", "0.8", "0.5", "banana: 2")


# ----------------------------------------------------------------------------- through the sampler


@needs_klein
@pytest.mark.parametrize("structure", STRUCTURES)
def test_identity_edit_reproduces_the_source_and_item0_is_plain(structure):
    out, cond, _, _ = _run(_swap, [SRC], structure=structure)
    bound = fp_bound(out[0], torch.float32, unet_evals(STEPS))
    assert (out[1] - out[0]).abs().max().item() <= bound
    one = [[cond[0][0][:1], {k: v for k, v in cond[0][1].items()}]]
    plain = sample(_model(), one, one, _latent(1), steps=STEPS, cfg=1.0, scheduler="simple")
    assert (out[0] - plain[0]).abs().max().item() <= bound
    assert out[0].abs().max().item() > 100 * bound  # a real image, not zeros


@needs_klein
@pytest.mark.parametrize("structure", STRUCTURES)
def test_fast_path_equals_the_reference_path(structure):
    def plan(p):
        return make_plan(p, _swap(p), None, "0.8", "0.5", "green: 2, circle: -0.5")

    fast = _run(plan, [EDIT], structure=structure)[0]
    ref = _run(plan, [EDIT], reference=True, structure=structure)[0]
    assert (fast - ref).abs().max().item() <= 2 * fp_bound(ref, torch.float32, unet_evals(STEPS))
    assert (fast[1] - fast[0]).abs().max().item() > 100 * fp_bound(ref, torch.float32, unet_evals(STEPS))


@needs_klein
def test_every_control_changes_the_edit_and_p2p_stays_closer_than_naive():
    swap, cond, _, _ = _run(_swap, [EDIT])
    naive = sample(_model(), cond, cond, _latent(2), steps=STEPS, cfg=1.0, scheduler="simple")
    refine = _run(lambda p: make_plan(p, None, "refine", "0.8", "0.5"), ["a big red circle on the left"])[0]
    reweight = _run(lambda p: make_plan(p, None, None, "0.8", "0.5", "red: 3"), [SRC])[0]
    noise = fp_bound(swap, torch.float32, unet_evals(STEPS))
    for name, item in (("swap vs source", swap[1] - swap[0]), ("swap vs naive", swap[1] - naive[1]),
                       ("refine", refine[1] - refine[0]), ("reweight", reweight[1] - reweight[0])):
        assert item.abs().max().item() > 4 * noise, name
    assert (swap[1] - swap[0]).abs().mean() < (naive[1] - naive[0]).abs().mean()


@needs_klein
def test_self_block_choice_matters():
    none = _run(_swap, [EDIT], self_blocks="none", structure=MAPS)[0]
    every = _run(_swap, [EDIT], self_blocks="all", structure=MAPS)[0]
    assert (every[1] - none[1]).abs().max().item() > 2 * fp_bound(none, torch.float32, unet_evals(STEPS))
    with pytest.raises(P2PError, match="has no double blocks 9-9"):
        _run(_swap, [EDIT], self_blocks="double 9")


@needs_klein
def test_local_blend_is_exact_outside_the_mask_and_maps_are_stored():
    def plan(p):
        return with_blend(_swap(p), p, make_blend(p, "circle", "", 0.5, 0.3, 0.0, 0))

    out, _, runtime, prompts = _run(plan, [EDIT])
    mask = runtime.store.last_masks[0, 0]
    outside = mask == 0
    assert 0 < outside.float().mean() < 1
    assert (out[1] - out[0])[:, outside].abs().max().item() <= last_step_bound(out[0])
    assert (out[1] - out[0])[:, ~outside].abs().max().item() > 100 * last_step_bound(out[0])
    assert runtime.store.maps().shape == (2, H, W, prompts.length)


@needs_klein
def test_the_override_is_reached_in_every_block_at_every_step():
    cond, prompts = encode_prompt_set(_clip(), SRC, [EDIT])
    patched, runtime = apply_edit(_model(), _swap(prompts))
    blocks = [("double", 0), ("double", 1), ("single", 0), ("single", 1)]
    assert blocks_reached(patched, runtime, cond, _latent(2), STEPS) == sorted(
        (t, i, 512 + H * W) for t, i in blocks for _ in range(STEPS))


# ----------------------------------------------------------------------------- inversion


def _photo(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"samples": torch.randn(1, 128, H, W, generator=g)}


def _context(seed: int = 5):
    """A 512-token context of klein's width (inversion needs no words: both ComfyUIs)."""
    g = torch.Generator().manual_seed(seed)
    # pooled_output None: 0.3.75's Flux.encode_adm reads the key (Flux.2 has no pooled vector)
    return [[torch.randn(1, 512, tiny_flux2.KLEIN_CONTEXT, generator=g), {"pooled_output": None}]]



@functools.cache
def _inversion(method: str, iterations: int = 10):
    pos = _context()
    with torch.inference_mode():
        inv = invert(_model(), pos, pos, _photo(), method=method, steps=10, guidance=1.0, inner_iterations=iterations)
    patched = install_inversion(_model().clone(), inv, n_items=1)
    rec = sample(patched, pos, pos, {"samples": inv.latent}, sampler=inv.sampler, scheduler=inv.scheduler,
                 steps=inv.steps, cfg=1.0, disable_noise=True)
    return inv, rec


def test_flow_inversion_runs_on_flux2s_schedule_and_reconstructs():
    import comfy.samplers

    inv, rec = _inversion("direct")
    want = comfy.samplers.calculate_sigmas(_model().get_model_object("model_sampling"), "simple", 10)
    assert (inv.sampler, inv.scheduler) == ("euler", "simple") and torch.equal(inv.sigmas, want.float().cpu())
    assert (rec - _photo()["samples"]).abs().max().item() <= last_step_bound(_photo()["samples"])
    ddim = psnr(_inversion("ddim")[1], _photo()["samples"])
    fixed = psnr(_inversion("fixed_point")[1], _photo()["samples"])
    assert ddim > 25 and fixed > ddim + 10, (ddim, fixed)


@pytest.mark.parametrize("method", ["null_text", "negative_prompt"])
def test_dev_refuses_the_inversions_that_need_a_negative_branch(method):
    pos = _context()
    with pytest.raises(P2PError, match=f"method {method} works on the unconditional .* Flux.2 dev does not have"):
        invert(_model(dev=True), pos, pos, _photo(), method=method, steps=4, guidance=1.0)
