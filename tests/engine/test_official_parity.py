"""Where the pack follows the official google/prompt-to-prompt code exactly: step windows, the
local-blend masks and the self-injection sites for real images.

The official rules are restated here from its code (not imported: it is not a package), in the
form it computes them: a per-step alpha table of n + 1 rows for cross-attention windows, int(n*a)
for self windows and the blend start, max-pooling for the blend words only.
"""

import pytest
import torch
from sampling import encode

from p2p_attention.apply import apply_edit
from p2p_attention.blend import LocalBlendSpec, blend_masks
from p2p_attention.conditioning import encode_prompt_set
from p2p_attention.edits import compile_plan, make_plan
from p2p_attention.steps import CROSS, SELF, window_steps
from p2p_attention.store import AttentionStore

STEPS = [7, 20, 50, 100]
FRACTIONS = [0.29, 0.35, 0.4, 0.59, 0.7, 0.79, 0.8, 0.99]


def official_alpha_rows(window, n_steps):
    """The official cross-replace alpha table of one token: n + 1 rows, rows int(a*(n+1)) ..
    int(b*(n+1)) - 1 set to 1; row s is used at step s."""
    rows = torch.zeros(n_steps + 1)
    start, end = int(window[0] * rows.shape[0]), int(window[1] * rows.shape[0])
    rows[start:end] = 1
    return rows[:n_steps]


def official_self_steps(window, n_steps):
    lo, hi = int(n_steps * window[0]), int(n_steps * window[1])
    return [s for s in range(n_steps) if lo <= s < hi]


def test_issue_examples():
    """The examples where the official table and the former floor(f*n) disagreed."""
    assert list(window_steps((0.0, 0.29), 20, CROSS)) == list(range(6))  # floor(0.29*20) gave 0-4
    assert list(window_steps((0.0, 0.8), 7, CROSS)) == list(range(6))
    assert list(window_steps((0.0, 0.79), 50, CROSS)) == list(range(40))
    assert list(window_steps((0.0, 0.8), 50, CROSS)) == list(range(40))  # equal to floor there


@pytest.mark.parametrize("n", STEPS)
@pytest.mark.parametrize("f", FRACTIONS)
def test_window_table(n, f):
    for window in [(0.0, f), (0.1, f), (f / 2, f), (f, 1.0)]:
        expected = [s for s, a in enumerate(official_alpha_rows(window, n).tolist()) if a == 1]
        assert list(window_steps(window, n, CROSS)) == expected, (window, n)
        assert list(window_steps(window, n, SELF)) == official_self_steps(window, n), (window, n)


@pytest.fixture(scope="module")
def prompts(tiny_sd1):
    _, clip, _ = tiny_sd1
    _, ps = encode_prompt_set(clip, "a red cat sitting on a wooden chair",
                              ["a red dog sitting on a wooden chair", "a red fox sitting on a metal chair"])
    return ps


@pytest.mark.parametrize("n", STEPS)
def test_engine_uses_official_windows_per_word(prompts, n):
    """The engine's per-token replace alpha at every step equals the official table, for a
    default window, an 'a-b' window and per-word windows (word swap: a1 is the alpha)."""
    windows = {"default": (0.0, 0.79), "chair": (0.2, 0.59), "dog": (0.35, 0.99)}
    text = "default: 0.79, chair: 0.2-0.59, dog: 0.35-0.99"
    compiled = compile_plan(make_plan(prompts, None, "swap", text, "0.4"))
    L = prompts.length
    for e, edit in enumerate(prompts.edits):
        expected = torch.stack([official_alpha_rows(windows["default"], n)] * L, 1)  # [n, L]
        for word in ("chair", "dog"):
            for pos in edit.positions_of(word):
                expected[:, pos] = official_alpha_rows(windows[word], n)
        for step in range(n):
            co = compiled.cross_coefficients(step, n, L, "cpu", torch.float32)
            got = torch.zeros(L) if co is None else co.a1[e]
            assert torch.equal(got, expected[step]), (e, step)
    assert [s for s in range(n) if compiled.self_active(s, n)] == official_self_steps((0.0, 0.4), n)


def _store_with(prompts, maps):
    store = AttentionStore(prompts)
    store.sum, store.layer_calls = maps, 1
    return store


def test_subtract_mask_not_pooled(prompts):
    """Blend words are 3x3 max-pooled (dilation 1), subtract words are not: a one-pixel subtract
    map removes one pixel from the blend region, not a 3x3 block."""
    h = w = 8
    L = prompts.length
    maps = torch.zeros(3, h, w, L)
    chair = [p.positions_of("chair") for p in prompts.prompts]
    red = [p.positions_of("red") for p in prompts.prompts]
    for i in range(3):
        maps[i, 2:6, 2:6, red[i]] = 1.0  # blend word everywhere in a 4x4 block
        maps[i, 4, 4, chair[i]] = 1.0  # subtract word on one pixel
    spec = LocalBlendSpec(words=("red",), subtract=("chair",), threshold=0.5, subtract_threshold=0.5, dilation=1)
    masks = blend_masks(spec, _store_with(prompts, maps), prompts, (h, w))
    blend_only = blend_masks(LocalBlendSpec(words=("red",), threshold=0.5), _store_with(prompts, maps), prompts, (h, w))
    assert int(blend_only[0].sum()) == 36  # the 4x4 block dilated by one pixel: 6x6
    assert int(masks[0].sum()) == 35  # exactly the one subtract pixel removed
    assert masks[0, 0, 4, 4] == 0 and masks[0, 0, 4, 3] == 1


def test_real_images_inject_self_attention_at_32x32(tiny_sd1):
    """Auto self-injection sites: factor 4 for generated images (official SD notebook), factor 2
    with an inversion (official null-text notebook: 32x32 maps at 512 px)."""
    from p2p_attention.inversion import invert

    model, clip, _ = tiny_sd1
    cond, ps = encode_prompt_set(clip, "a red cat", ["a red dog"])
    plan = make_plan(ps, None, "swap", "0.8", "0.4")
    with torch.inference_mode():
        inv = invert(model, encode(clip, "a red cat"), encode(clip, ""), {"samples": torch.zeros(1, 4, 8, 8)},
                     method="ddim", steps=2, guidance=1.0)
    assert apply_edit(model, plan)[1].self_attn_min_downsample == 4
    assert apply_edit(model, plan, inversion=inv)[1].self_attn_min_downsample == 2
    assert apply_edit(model, plan, self_attn_min_downsample=1, inversion=inv)[1].self_attn_min_downsample == 1
