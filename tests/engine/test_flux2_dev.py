"""Prompt-to-Prompt on Flux.2 dev (ComfyUI config Flux2 with a guidance embedding; Mistral 3 Small text
encoder), on both ComfyUIs: a tiny model from ComfyUI's own classes (p2p_models.tiny_flux2: flux2_te with
Mistral 3 Small's class at a tiny width, ComfyUI's Flux2Tokenizer loading a tiny tekken vocabulary through
its own loader, the Flux.2 VAE).

What is particular to dev: the tokenizer puts a start token and a system prompt before the prompt and never
pads; the model (model_base.Flux2.extra_conds) zero-pads each context on the LEFT to 512 tokens, so prompts
of unequal length sit at different offsets. The Prompt Pair adds that left padding itself (PAD positions),
so the batch is what the model sees for each prompt alone. Guidance-distilled: the inversions on the
negative branch are refused."""

from __future__ import annotations

import functools

import pytest
import torch
from bounds import fp_bound, last_step_bound, unet_evals
from family_runs import blocks_reached, psnr
from sampling import encode, sample

from p2p_attention.adapters import model_family
from p2p_attention.apply import apply_edit
from p2p_attention.blend import make_blend
from p2p_attention.conditioning import encode_prompt_set, encodes_alike, latent_batch
from p2p_attention.edits import make_plan, with_blend
from p2p_attention.errors import P2PError
from p2p_attention.families import FLUX2_DEV
from p2p_attention.inversion import install_inversion, invert
from p2p_attention.joint_injection import MAPS, QK, STRUCTURES, VALUES
from p2p_attention.prompts import END, PAD, START
from p2p_attention.token_maps import refine_mapper, swap_mapper
from p2p_models import tiny_flux2

SRC = "a red circle on the left"
EDIT = "a green circle on the left"
LONGER = "a big red circle on the left"  # one token more than SRC: another offset after the left padding
THREE = "a green square on the right"  # three words swapped
STEPS = 4
SHARPEN = 6.0  # q/k scaled as in test_flux2.py: a random tiny DiT's attention is otherwise near uniform
NORM_GAIN = 2.0  # q/k norm gain (the tests' margins were measured at it; at 3 some image queries put all but
# float32 rounding of their mass on the mostly-padding 512-token context: split_maps keeps both masses exact)
H, W = 4, 6  # a Flux.2 latent (128 channels, 16x): 24 image tokens at patch 1
KEY = "mistral3_24b"  # Flux2Tokenizer's stream


@functools.cache
def _models():
    models = tiny_flux2.build_tiny_flux2_dev(seed=3)
    with torch.no_grad():
        for name, p in models.model.model.diffusion_model.named_parameters():
            if name.endswith(("qkv.weight", "linear1.weight")):
                p.mul_(SHARPEN)
            if name.endswith(("query_norm.scale", "key_norm.scale", "query_norm.weight", "key_norm.weight")):
                p.mul_(NORM_GAIN)
    return models


def _model():
    return _models().model


def _clip():
    return _models().clip


def _latent(items: int) -> dict:
    return latent_batch({"samples": torch.zeros(1, 128, H, W)}, items)


def _run(plan_fn, edits, reference=False, structure=VALUES, steps=STEPS, self_blocks="auto", src=SRC):
    cond, prompts = encode_prompt_set(_clip(), src, edits)
    patched, runtime = apply_edit(_model(), plan_fn(prompts), attention_path="reference" if reference else "fast",
                                  mmdit_structure=structure, self_blocks=self_blocks)
    out = sample(patched, cond, cond, _latent(1 + len(edits)), steps=steps, cfg=1.0, scheduler="simple")
    return out, cond, runtime, prompts


def _swap(prompts):
    return make_plan(prompts, None, "swap", "0.8", "0.5")


def _refine(prompts):
    return make_plan(prompts, None, "refine", "0.8", "0.5")


def _noise(out) -> float:
    return fp_bound(out, torch.float32, unet_evals(STEPS))


# ----------------------------------------------------------------------------- the model and its text encoder


def test_dev_is_served_by_the_mmdit_adapter_with_comfyuis_mistral_tokenizer():
    import comfy.text_encoders.flux as flux

    assert model_family(_model()) is FLUX2_DEV and FLUX2_DEV.distilled
    assert _model().get_model_object("diffusion_model").params.guidance_embed
    tok = _clip().tokenizer
    assert type(tok) is flux.Flux2Tokenizer and "[SYSTEM_PROMPT]" in tok.llama_template
    sub = getattr(tok, KEY)
    assert type(sub) is flux.Mistral3Tokenizer and sub.pad_left and sub.start_token == 1 and sub.end_token is None
    # The tiny tekken vocabulary, as ComfyUI's own loader read it: the real special tokens at their ids, every
    # byte after the 1000 specials, the word merges.
    ids = [e[0] for e in tok.tokenize_with_weights("x", llama_template="[INST]{}[/INST][SYSTEM_PROMPT]"
                                                   "[/SYSTEM_PROMPT]")[KEY][0]]
    assert ids == [1, 3, 1000 + ord("x"), 4, 17, 18]
    (chunk,) = tok.tokenize_with_weights("a circle")[KEY]
    assert [sub.inv_vocab[t] for t, _ in chunk][-3:] == ["a", "Ġcircle", "[/INST]"]
    out = _clip().encode_from_tokens(_clip().tokenize(SRC), return_dict=True)
    assert out["cond"].shape == (1, len(_clip().tokenize(SRC)[KEY][0]), tiny_flux2.DEV_CONTEXT)


# ----------------------------------------------------------------------------- tokens


def test_words_are_found_inside_the_template_and_after_the_left_padding():
    cond, ps = encode_prompt_set(_clip(), SRC, ["a magenta circle on the left", LONGER])
    src, swap, refine = ps.prompts
    assert src.length == swap.length == refine.length == cond[0][0].shape[1] == 512
    for p in ps.prompts:
        raw = [t for t, _ in _clip().tokenize(p.text)[KEY][0]]
        n = len(raw)
        assert list(p.ids[512 - n :]) == raw  # the prompt's own tokens, right-aligned as the model puts them
        assert p.special[: 512 - n] == (PAD,) * (512 - n)  # the model's zero padding, on the left
        assert not cond[0][0][ps.prompts.index(p), : 512 - n].any() and cond[0][0][ps.prompts.index(p), 512 - n :].any()
        # <s>, [SYSTEM_PROMPT] system prompt [/SYSTEM_PROMPT] [INST]: START; the words; [/INST]: END
        head = p.word_positions[0][0] - (512 - n)
        assert p.special[512 - n : 512 - n + head] == (START,) * head
        assert p.token_text[512 - n] == "<s>" and p.token_text[512 - n + 1] == "[SYSTEM_PROMPT]"
        assert p.token_text[p.word_positions[0][0] - 1] == "[INST]"
        assert p.special[-1] == END and p.token_text[-1] == "[/INST]" and p.word_positions[-1][-1] == 510
        for w, pos in zip(p.words, p.word_positions):  # every word's tokens spell the word
            assert pos and "".join(p.token_text[i] for i in pos).strip().lower() == w
    assert len(swap.positions_of("magenta")) > 1  # outside the tiny vocabulary's merges: byte tokens
    assert refine.length - refine.special.count(PAD) == src.length - src.special.count(PAD) + 1


def test_swap_and_refine_map_template_words_and_padding_across_offsets():
    _, ps = encode_prompt_set(_clip(), SRC, ["a magenta circle on the left", LONGER])
    src, swap, refine = ps.prompts
    M, alpha = swap_mapper(src, swap)
    magenta = swap.positions_of("magenta")
    assert torch.allclose(M[src.positions_of("red")[0], magenta], torch.full((len(magenta),), 1 / len(magenta)))
    head = src.word_positions[0][0] - (512 - len(_clip().tokenize(SRC)[KEY][0]))  # <s> ... [INST]
    s0, e0 = (p.word_positions[0][0] - head for p in (src, swap))  # where each prompt's tokens start
    assert e0 < s0  # the longer edit starts earlier
    for k in range(head):  # the system prompt's k-th token maps to the edit's k-th, at its own offset
        assert M[s0 + k, e0 + k] == 1 and M[:, e0 + k].sum() == 1
    for j in range(e0):  # padding maps to padding (zero rows: all alike)
        assert M[:, j].sum() == 1 and src.special[int(M[:, j].argmax())] == PAD
    for word in ("circle", "on", "the", "left"):
        assert M[src.positions_of(word)[0], swap.positions_of(word)[0]] == 1
    assert M[511, 511] == 1 and alpha.eq(1).all()  # [/INST] -> [/INST]
    M, alpha = refine_mapper(src, refine)
    assert alpha[refine.positions_of("big")].eq(0).all() and M[:, refine.positions_of("big")].eq(0).all()
    for word in ("a", "red", "circle", "left"):
        assert M[src.positions_of(word)[0], refine.positions_of(word)[0]] == 1 and alpha[refine.positions_of(word)].eq(1).all()
    # "a cake" -> "a chocolate cake"
    _, ps = encode_prompt_set(_clip(), "a cake", ["a chocolate cake"])
    M, alpha = refine_mapper(*ps.prompts)
    cake_s, cake_e = ps.source.positions_of("cake"), ps.edits[0].positions_of("cake")
    assert cake_s == [510] and cake_e == [510] and M[510, 510] == 1
    assert alpha[ps.edits[0].positions_of("chocolate")].eq(0).all() and M[509, 509] == 0


def test_each_row_is_what_the_model_sees_for_its_prompt_alone():
    """The Prompt Pair's left padding is the model's own: model_base.Flux2.extra_conds of each prompt's
    CLIPTextEncode gives the same rows, exactly."""
    cond, ps = encode_prompt_set(_clip(), SRC, [LONGER, "a cake"])
    base = _model().model
    for i, text in enumerate((SRC, LONGER, "a cake")):
        lone = encode(_clip(), text)[0][0]
        seen = base.extra_conds(cross_attn=lone, pooled_output=None)["c_crossattn"].cond
        assert seen.shape == (1, 512, tiny_flux2.DEV_CONTEXT) and torch.equal(cond[0][0][i : i + 1], seen)
        assert base.extra_conds(cross_attn=cond[0][0][i : i + 1], pooled_output=None)["c_crossattn"].cond.shape[1] == 512  # as is
    assert torch.equal(ps.source_conditioning[0][0], encode(_clip(), SRC)[0][0])  # as CLIPTextEncode gives it
    assert encodes_alike(ps.source_conditioning[0][0], cond[0][0][:1])  # left padding is no other prompt
    assert encodes_alike(ps.source_conditioning[0][0], cond[0][0][1:2]) is False


def test_long_prompts_keep_their_length_and_an_edit_longer_than_the_source_is_refused():
    long = " ".join(["red circle"] * 200)  # 400 tokens + the system prompt: past 512
    n = len(_clip().tokenize(long)[KEY][0])
    assert n > 512
    cond, ps = encode_prompt_set(_clip(), long, [SRC])
    assert ps.source.length == ps.edits[0].length == cond[0][0].shape[1] == n  # the model pads nothing more
    assert PAD not in ps.source.special and ps.edits[0].special[: n - 512 + 1] == (PAD,) * (n - 512 + 1)
    assert len(ps.source.positions_of("circle")) == 200 and len(ps.edits[0].positions_of("circle")) == 1
    with pytest.raises(P2PError, match=rf"edit prompt 1 .* is {n} tokens long .* source's context \(512 tokens"):
        encode_prompt_set(_clip(), SRC, [long])


# ----------------------------------------------------------------------------- through the sampler


@pytest.mark.parametrize("structure", STRUCTURES)
def test_identity_edit_reproduces_the_source_and_item0_is_plain(structure):
    out, cond, _, _ = _run(_swap, [SRC], structure=structure)
    bound = _noise(out[0])
    assert (out[1] - out[0]).abs().max().item() <= bound
    plain = sample(_model(), encode(_clip(), SRC), encode(_clip(), SRC), _latent(1), steps=STEPS, cfg=1.0,
                   scheduler="simple")  # CLIPTextEncode's context: the model pads it
    assert (out[0] - plain[0]).abs().max().item() <= bound
    assert out[0].abs().max().item() > 100 * bound  # a real image, not zeros


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("edit", [EDIT, LONGER])
def test_fast_path_equals_the_reference_path(structure, edit):
    def plan(p):
        base = make_plan(p, None, "swap" if edit == EDIT else "refine", "0.8", "0.5")
        return make_plan(p, base, None, "0.8", "0.5", "circle: 2, left: -0.5")

    fast = _run(plan, [edit], structure=structure)[0]
    ref = _run(plan, [edit], reference=True, structure=structure)[0]
    print(f"fast vs reference ({structure}, {edit!r}): max error {(fast - ref).abs().max().item():.3g}, "
          f"bound {2 * _noise(ref):.3g}")
    assert (fast - ref).abs().max().item() <= 2 * _noise(ref)
    assert (fast[1] - fast[0]).abs().max().item() > 100 * _noise(ref)


def test_an_edit_of_another_length_leaves_the_source_plain():
    out, _, _, _ = _run(_refine, [LONGER])
    plain = sample(_model(), encode(_clip(), SRC), encode(_clip(), SRC), _latent(1), steps=STEPS, cfg=1.0,
                   scheduler="simple")
    assert (out[0] - plain[0]).abs().max().item() <= _noise(plain)


def test_every_control_changes_the_edit_and_p2p_stays_closer_than_naive():
    swap, cond, _, _ = _run(_swap, [EDIT])
    naive = sample(_model(), cond, cond, _latent(2), steps=STEPS, cfg=1.0, scheduler="simple")
    refine = _run(_refine, [LONGER])[0]
    cake = _run(_refine, ["a chocolate cake"], src="a cake")[0]
    reweight = _run(lambda p: make_plan(p, None, None, "0.8", "0.5", "red: 3"), [SRC])[0]
    window = _run(lambda p: make_plan(p, None, "swap", "0.25-0.75", "0.5"), [EDIT])[0]
    three = _run(_swap, [THREE])[0]
    per_word = _run(lambda p: make_plan(p, None, "swap", "default: 0.8, on: 0.25", "0.5"), [THREE])[0]
    noise = _noise(swap)
    for name, item in (("swap vs source", swap[1] - swap[0]), ("swap vs naive", swap[1] - naive[1]),
                       ("refine", refine[1] - refine[0]), ("a cake -> a chocolate cake", cake[1] - cake[0]),
                       ("reweight", reweight[1] - reweight[0]), ("cross window", window[1] - swap[1]),
                       ("per-word window", per_word[1] - three[1])):
        assert item.abs().max().item() > 4 * noise, name
    assert (swap[1] - swap[0]).abs().mean() < (naive[1] - naive[0]).abs().mean()


@pytest.mark.parametrize("structure", [MAPS, QK])
def test_structure_injection_and_the_self_block_choice_change_the_edit(structure):
    """Self maps and image q/k from the source over all steps against none (values outside the edit: the
    source's and the edit's image values of a random tiny model differ by about rounding, so its effect does
    not show here; its fast = reference check covers it)."""
    def plan(self_replace):
        return lambda p: make_plan(p, None, "swap", "0.8", self_replace)

    on = _run(plan("1.0"), [THREE], self_blocks="all", structure=structure)[0]
    off = _run(plan("0"), [THREE], self_blocks="all", structure=structure)[0]
    no_blocks = _run(plan("1.0"), [THREE], self_blocks="none", structure=structure)[0]
    assert (on[1] - off[1]).abs().max().item() > 4 * _noise(off)
    assert (on[1] - no_blocks[1]).abs().max().item() > 4 * _noise(off)
    with pytest.raises(P2PError, match="has no double blocks 9-9"):
        _run(_swap, [EDIT], self_blocks="double 9")


@pytest.mark.parametrize("edit", [EDIT, LONGER])
def test_local_blend_is_exact_outside_the_mask_and_maps_are_stored(edit):
    def plan(p):
        return with_blend(_swap(p) if edit == EDIT else _refine(p), p, make_blend(p, "circle", "", 0.5, 0.3, 0.0, 0))

    out, _, runtime, prompts = _run(plan, [edit])
    outside = runtime.store.last_masks[0, 0] == 0
    assert 0 < outside.float().mean() < 1
    assert (out[1] - out[0])[:, outside].abs().max().item() <= last_step_bound(out[0])
    assert (out[1] - out[0])[:, ~outside].abs().max().item() > 100 * last_step_bound(out[0])
    maps = runtime.store.maps()
    assert maps.shape == (2, H, W, 512)
    for item, p in enumerate(prompts.prompts):  # each item's map of "circle", at its own position
        assert maps[item][..., p.positions_of("circle")].sum() > 0


def test_the_override_is_reached_in_every_block_at_every_step():
    cond, prompts = encode_prompt_set(_clip(), SRC, [LONGER])
    patched, runtime = apply_edit(_model(), _refine(prompts))
    blocks = [("double", 0), ("double", 1), ("single", 0), ("single", 1)]
    assert blocks_reached(patched, runtime, cond, _latent(2), STEPS) == sorted(
        (t, i, 512 + H * W) for t, i in blocks for _ in range(STEPS))


# ----------------------------------------------------------------------------- inversion (guidance-distilled)


def _photo(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"samples": torch.randn(1, 128, H, W, generator=g)}



@functools.cache
def _inversion(method: str):
    pos = encode(_clip(), SRC)
    with torch.inference_mode():
        inv = invert(_model(), pos, pos, _photo(), method=method, steps=10, guidance=1.0, inner_iterations=10)
    rec = sample(install_inversion(_model().clone(), inv, n_items=1), pos, pos, {"samples": inv.latent},
                 sampler=inv.sampler, scheduler=inv.scheduler, steps=inv.steps, cfg=1.0, disable_noise=True)
    return inv, rec


def test_flow_inversion_direct_and_fixed_point_work_on_dev():
    inv, rec = _inversion("direct")
    assert (inv.sampler, inv.scheduler) == ("euler", "simple")
    assert (rec - _photo()["samples"]).abs().max().item() <= last_step_bound(_photo()["samples"])
    ddim = psnr(_inversion("ddim")[1], _photo()["samples"])
    fixed = psnr(_inversion("fixed_point")[1], _photo()["samples"])
    assert ddim > 20 and fixed > ddim + 5, (ddim, fixed)


@pytest.mark.parametrize("method", ["null_text", "null_text_fast", "negative_prompt"])
def test_the_inversions_on_the_negative_branch_are_refused_with_the_ones_that_work(method):
    """The fix key names the methods that work (nodes/messages.py words it: direct, fixed_point, ddim; the
    node's wording: tests/graphs/test_flux2_dev_graphs.py)."""
    pos = encode(_clip(), SRC)
    with pytest.raises(P2PError, match=f"method {method} works on the unconditional .* Flux.2 dev does not have") as e:
        invert(_model(), pos, pos, _photo(), method=method, steps=4, guidance=1.0)
    assert e.value.fix == "flux_inversion"


def test_an_inverted_photo_edited_with_a_longer_prompt_keeps_its_reconstruction_outside_the_blend():
    """P2P Invert under the Prompt Pair's source (CLIPTextEncode's unpadded rows: the model pads them), then
    a refine with a longer edit (another left offset) and local blend: the source item is the photo, the
    edit equals it outside the mask and differs inside."""
    cond, prompts = encode_prompt_set(_clip(), SRC, [LONGER])
    with torch.inference_mode():
        inv = invert(_model(), None, encode(_clip(), ""), _photo(), method="direct", steps=8, guidance=1.0,
                     prompts=prompts)
    plan = with_blend(_refine(prompts), prompts, make_blend(prompts, "circle", "", 0.5, 0.3, 0.0, 0))
    patched, runtime = apply_edit(_model(), plan, inversion=inv)
    out = sample(patched, cond, cond, latent_batch({"samples": inv.latent}, 2), sampler=inv.sampler,
                 scheduler=inv.scheduler, steps=inv.steps, cfg=1.0, disable_noise=True)
    photo = _photo()["samples"][0]
    outside = runtime.store.last_masks[0, 0] == 0
    assert 0 < outside.float().mean() < 1
    assert (out[0] - photo).abs().max().item() <= last_step_bound(photo)
    assert (out[1] - out[0])[:, outside].abs().max().item() <= last_step_bound(out[0])
    assert (out[1] - out[0])[:, ~outside].abs().max().item() > 100 * last_step_bound(out[0])
