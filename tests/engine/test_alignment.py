"""Word spans from ComfyUI's real CLIP tokenizer, the swap / refine token mappers, and the widget parsers."""

from __future__ import annotations

import pytest
import torch
from bounds import eps, fp_bound

from p2p_attention.prompts import TokenizedPrompt, tokenize_prompts
from p2p_attention.steps import step_index, window_active
from p2p_attention.token_maps import refine_mapper, swap_mapper
from p2p_attention.widget_text import parse_window, parse_word_weights, parse_word_windows

START, END = 49406, 49407
A, CAT, DOG, PHOTO, OF = 320, 2368, 1929, 1125, 539
HIPPO = (28398, 45825, 718)  # "hippopotamus" -> hippo potam us


@pytest.fixture(scope="module")
def clip1(tiny_sd1):
    return tiny_sd1[1]


@pytest.fixture(scope="module")
def clipxl(tiny_sdxl):
    return tiny_sdxl[1]


def pair(clip, a: str, b: str) -> tuple[TokenizedPrompt, TokenizedPrompt]:
    _, (x, y) = tokenize_prompts(clip, [a, b])
    return x, y


def matrix(n: int, entries: dict[tuple[int, int], float]) -> torch.Tensor:
    M = torch.zeros(n, n)
    for (i, j), v in entries.items():
        M[i, j] = v
    return M


def tail_pads(src_first: int, edit_first: int, n: int, end: int) -> dict[tuple[int, int], float]:
    """Pad p of the edit (from edit_first) -> pad p of the source (from src_first), else the last source pad."""
    out = {}
    for p, j in enumerate(range(edit_first, end)):
        out[(min(src_first + p, end - 1), j)] = 1.0
    return out


# ----------------------------------------------------------------------------- tokenization


def test_tokenize_words_sd1(clip1):
    dicts, (tp,) = tokenize_prompts(clip1, ["A photo of a Cat"])
    assert tp.n_chunks == 1 and tp.length == 77 and len(tp.ids) == 77
    assert tp.words == ("a", "photo", "of", "a", "cat")
    assert tp.ids[:7] == (START, A, PHOTO, OF, A, CAT, END)
    assert tp.ids[7:] == (END,) * 70  # SD1 clip_l pads with the end token
    assert tp.word_of[:7] == (-1, 0, 1, 2, 3, 4, -1)
    assert set(tp.word_of[7:]) == {-1}
    assert tp.special[:8] == ("start", "", "", "", "", "", "end", "pad")
    assert tp.positions_of("cat") == [5]
    assert tp.positions_of("CAT") == [5]
    assert tp.positions_of("a") == [1, 4]
    assert tp.positions_of("of a") == [3, 4]
    assert tp.positions_of("dog") == []
    assert tp.positions_of("") == []
    # the returned dict is exactly what clip.tokenize gives (no word ids)
    assert dicts[0] == clip1.tokenize("A photo of a Cat")


def test_tokenize_weight_syntax_and_punctuation(clip1):
    dicts, (tp,) = tokenize_prompts(clip1, ["a (Red:1.2) ((cat)), sitting"])
    assert tp.words == ("a", "red", "cat,", "sitting")
    assert tp.ids[:7] == (START, A, 736, CAT, 267, 4919, END)
    assert tp.word_of[:7] == (-1, 0, 1, 2, 2, 3, -1)
    assert tp.positions_of("cat") == [3]  # the comma token is not part of "cat"
    assert tp.positions_of("cat,") == [3]
    assert tp.positions_of(",") == []  # no word is a bare comma
    assert tp.positions_of("red") == [2]
    assert tp.token_text[:6] == ("<|startoftext|>", "a", "red", "cat", ",", "sitting")
    assert dicts[0]["l"][0][2] == (736, 1.2)
    assert dicts[0]["l"][0][3] == (CAT, pytest.approx(1.21))
    # a word glued across weighted segments is one word of both segments' tokens
    _, (glued,) = tokenize_prompts(clip1, ["a (red:1.2)cat"])
    assert glued.words == ("a", "redcat")
    assert glued.word_of[:5] == (-1, 0, 1, 1, -1)
    assert glued.positions_of("redcat") == [2, 3]


def test_weighted_segment_moves_to_next_chunk(clip1):
    # A short weighted segment that does not fit is moved whole to the next chunk: chunk 0 ends
    # with end + one pad, then the words continue after chunk 1's start token.
    _, (tp,) = tokenize_prompts(clip1, ["a " * 74 + "(red cat:1.2)"])
    assert tp.n_chunks == 2 and tp.length == 154
    assert tp.special[74:80] == ("", "end", "pad", "start", "", "")
    assert tp.ids[75:80] == (END, END, START, 736, CAT)
    assert tp.positions_of("red") == [78]
    assert tp.positions_of("cat") == [79]
    assert tp.word_of[73:80] == (72, 73, -1, -1, -1, 74, 75)


def test_long_word_split_across_chunk_boundary(clip1):
    _, (tp,) = tokenize_prompts(clip1, ["a " * 74 + "hippopotamus sitting"])
    assert tp.n_chunks == 2
    # hippo fills the last content slot of chunk 0; potam, us continue after chunk 1's start
    assert tp.ids[75:80] == (HIPPO[0], END, START, HIPPO[1], HIPPO[2])
    assert tp.positions_of("hippopotamus") == [75, 78, 79]
    assert tp.positions_of("sitting") == [80]


def test_prompts_padded_to_same_chunk_count(clip1):
    long = "a photo of a " * 20 + "cat"
    dicts, (short, lng) = tokenize_prompts(clip1, ["a cat", long])
    assert short.n_chunks == lng.n_chunks == 2 and short.length == lng.length == 154
    assert len(dicts[0]["l"]) == len(dicts[1]["l"]) == 2
    empty = clip1.tokenize("")["l"][0]
    assert dicts[0]["l"][1] == empty
    assert short.ids[77:80] == (START, END, END)
    assert short.special[77:80] == ("start", "end", "pad")


def test_padded_tokens_encode_like_unpadded(clip1):
    dicts, _ = tokenize_prompts(clip1, ["a cat", "a photo of a " * 20 + "dog"])
    cond, pooled = clip1.encode_from_tokens(dicts[0], return_pooled=True)
    ref, ref_pooled = clip1.encode_from_tokens(clip1.tokenize("a cat"), return_pooled=True)
    assert cond.shape == (1, 154, 64) and ref.shape == (1, 77, 64)
    # Batch of 2 chunks vs 1: the same maths, kernels blocked for another shape (3 encoder layers).
    torch.testing.assert_close(cond[:, :77], ref, rtol=0, atol=fp_bound(ref, torch.float32, 3))
    torch.testing.assert_close(pooled, ref_pooled, rtol=0, atol=fp_bound(ref_pooled, torch.float32, 3))
    cond2, _ = clip1.encode_from_tokens(dicts[1], return_pooled=True)
    assert torch.cat([cond, cond2]).shape == (2, 154, 64)


def test_embedding_prompts_raise(clip1, tmp_path):
    import safetensors.torch

    safetensors.torch.save_file({"emb_params": torch.zeros(2, 768)}, str(tmp_path / "myemb.safetensors"))
    sub = clip1.tokenizer.clip_l
    old = sub.embedding_directory
    sub.embedding_directory = str(tmp_path)
    try:
        with pytest.raises(ValueError, match="textual-inversion embedding"):
            tokenize_prompts(clip1, ["a photo of embedding:myemb cat"])
        # a missing embedding is dropped by ComfyUI: its word has no tokens
        with pytest.raises(ValueError, match="embedding:"):
            tokenize_prompts(clip1, ["a photo of embedding:missing cat"])
    finally:
        sub.embedding_directory = old


# ----------------------------------------------------------------------------- swap


def test_swap_equal_token_counts_is_identity(clip1):
    src, edit = pair(clip1, "a photo of a cat", "a photo of a dog")
    M, alpha = swap_mapper(src, edit)
    assert M.dtype == torch.float32 and M.shape == (77, 77)
    assert torch.equal(M, torch.eye(77))
    assert torch.equal(alpha, torch.ones(77))


def test_swap_edit_word_has_more_tokens(clip1):
    src, edit = pair(clip1, "a cat sitting on a mat", "a hippopotamus sitting on a mat")
    assert src.ids[1:3] == (A, CAT) and edit.ids[2:5] == HIPPO
    M, alpha = swap_mapper(src, edit)
    e = {(0, 0): 1, (1, 1): 1, (2, 2): 1 / 3, (2, 3): 1 / 3, (2, 4): 1 / 3}
    e.update({(3, 5): 1, (4, 6): 1, (5, 7): 1, (6, 8): 1, (7, 9): 1})  # sitting on a mat, end
    e.update(tail_pads(8, 10, 77, 77))  # source pads 8.., edit pads 10..
    # entries 1/len(J) <= 1, each rounded once to float32 on either side: within eps apart
    torch.testing.assert_close(M, matrix(77, e), rtol=0, atol=eps(torch.float32))
    assert torch.equal(alpha, torch.ones(77))
    cols = M.sum(0)
    torch.testing.assert_close(cols[[2, 3, 4]], torch.full((3,), 1 / 3))
    others = [j for j in range(77) if j not in (2, 3, 4)]
    assert torch.equal(
        cols[others], torch.ones(len(others))
    )  # every other edit position maps to exactly one source
    rows = M.sum(1)
    torch.testing.assert_close(rows[:75], torch.ones(75))  # the source word's attention is spread, not lost
    assert torch.equal(rows[75:], torch.zeros(2))  # the two extra source pads have no edit counterpart


def test_swap_edit_word_has_fewer_tokens(clip1):
    src, edit = pair(clip1, "a hippopotamus sitting on a mat", "a cat sitting on a mat")
    M, alpha = swap_mapper(src, edit)
    e = {(0, 0): 1, (1, 1): 1, (2, 2): 1, (3, 2): 1, (4, 2): 1}
    e.update({(5, 3): 1, (6, 4): 1, (7, 5): 1, (8, 6): 1, (9, 7): 1})
    e.update(tail_pads(10, 8, 77, 77))  # edit has 69 pads, source 67: the last two take the last source pad
    assert torch.equal(M, matrix(77, e))
    assert M[76, 74] == M[76, 75] == M[76, 76] == 1
    assert torch.equal(alpha, torch.ones(77))
    cols = M.sum(0)
    assert cols[2] == 3  # 1/len(J) with len(J) == 1: the three source tokens add up
    assert torch.equal(cols[torch.arange(77) != 2], torch.ones(76))


def test_swap_source_chunk_without_pads_maps_pads_to_end(clip1):
    # 72 x "cat" + hippopotamus = 75 tokens: the source chunk is full (no pad); the edit has 2 pads.
    src, edit = pair(clip1, "cat " * 72 + "hippopotamus", "cat " * 72 + "dog")
    assert src.n_chunks == edit.n_chunks == 1
    assert "pad" not in src.special and src.special[76] == "end"
    assert edit.special[74:] == ("end", "pad", "pad")
    M, _ = swap_mapper(src, edit)
    e = {(i, i): 1 for i in range(73)}  # start + 72 cats
    e.update({(73, 73): 1, (74, 73): 1, (75, 73): 1, (76, 74): 1, (76, 75): 1, (76, 76): 1})
    assert torch.equal(M, matrix(77, e))


def test_swap_across_chunk_boundary(clip1):
    src, edit = pair(clip1, "a " * 74 + "cat sitting on a mat", "a " * 74 + "hippopotamus sitting on a mat")
    assert src.n_chunks == edit.n_chunks == 2
    assert src.ids[75:80] == (CAT, END, START, 4919, 525)
    assert edit.ids[75:81] == (HIPPO[0], END, START, HIPPO[1], HIPPO[2], 4919)
    M, alpha = swap_mapper(src, edit)
    e = {(i, i): 1 for i in range(75)}
    e.update({(75, 75): 1 / 3, (75, 78): 1 / 3, (75, 79): 1 / 3})
    e.update({(76, 76): 1, (77, 77): 1})  # end of chunk 0, start of chunk 1
    e.update({(78, 80): 1, (79, 81): 1, (80, 82): 1, (81, 83): 1, (82, 84): 1})  # sitting on a mat, end
    e.update(tail_pads(83, 85, 154, 154))
    # entries 1/len(J) <= 1, each rounded once to float32 on either side: within eps apart
    torch.testing.assert_close(M, matrix(154, e), rtol=0, atol=eps(torch.float32))
    assert torch.equal(alpha, torch.ones(154))


def test_swap_word_count_mismatch_points_to_refine(clip1):
    src, edit = pair(clip1, "a cat", "a fluffy cat")
    with pytest.raises(ValueError, match="the source has 2, the edit has 3") as e:
        swap_mapper(src, edit)
    assert e.value.fix == "refine_for_word_count"


def test_mappers_need_same_length(clip1):
    _, (a,) = tokenize_prompts(clip1, ["a cat"])
    _, (b,) = tokenize_prompts(clip1, ["a photo of a " * 20 + "cat"])
    with pytest.raises(ValueError, match="tokenize_prompts"):
        swap_mapper(a, b)
    with pytest.raises(ValueError, match="tokenize_prompts"):
        refine_mapper(a, b)


# ----------------------------------------------------------------------------- refine


def test_refine_insertion(clip1):
    src, edit = pair(clip1, "a cake on a table", "a chocolate cake on a table")
    assert edit.ids[1:4] == (A, 3820, 2972)
    M, alpha = refine_mapper(src, edit)
    e = {(0, 0): 1, (1, 1): 1, (2, 3): 1, (3, 4): 1, (4, 5): 1, (5, 6): 1, (6, 7): 1}
    e.update(tail_pads(7, 8, 77, 77))
    assert torch.equal(M, matrix(77, e))
    expected_alpha = torch.ones(77)
    expected_alpha[2] = 0
    assert torch.equal(alpha, expected_alpha)
    assert M[:, 2].sum() == 0  # the inserted token keeps its own attention


def test_refine_deletion(clip1):
    src, edit = pair(clip1, "a chocolate cake on a table", "a cake on a table")
    M, alpha = refine_mapper(src, edit)
    e = {(0, 0): 1, (1, 1): 1, (3, 2): 1, (4, 3): 1, (5, 4): 1, (6, 5): 1, (7, 6): 1}
    e.update(tail_pads(8, 7, 77, 77))
    assert torch.equal(M, matrix(77, e))
    assert M[2].sum() == 0  # the deleted source token feeds nothing
    assert torch.equal(alpha, torch.ones(77))


def test_refine_substitution_is_delete_plus_insert(clip1):
    src, edit = pair(clip1, "a red car", "a blue car")
    M, alpha = refine_mapper(src, edit)
    assert M[2].sum() == 0 and M[:, 2].sum() == 0
    assert M[1, 1] == 1 and M[3, 3] == 1 and M[4, 4] == 1
    assert alpha[2] == 0 and alpha.sum() == 76


def test_refine_insertion_across_chunk_boundary(clip1):
    src, edit = pair(clip1, "a " * 74 + "cat sitting", "a " * 74 + "fluffy cat sitting")
    assert src.n_chunks == edit.n_chunks == 2
    assert src.ids[75:80] == (CAT, END, START, 4919, END)
    assert edit.ids[75:81] == (17054, END, START, CAT, 4919, END)
    M, alpha = refine_mapper(src, edit)
    e = {(i, i): 1 for i in range(78)}  # start, 74 a's, [75 handled below], end 76, start 77
    del e[(75, 75)]
    e.update({(75, 78): 1, (78, 79): 1, (79, 80): 1})  # cat moved to chunk 1, sitting, end of chunk 1
    e.update(tail_pads(80, 81, 154, 154))
    assert torch.equal(M, matrix(154, e))
    expected_alpha = torch.ones(154)
    expected_alpha[75] = 0  # "fluffy"
    assert torch.equal(alpha, expected_alpha)


def test_refine_identical_prompts_is_identity(clip1):
    src, edit = pair(clip1, "a photo of a " * 20 + "cat", "a photo of a " * 20 + "cat")
    M, alpha = refine_mapper(src, edit)
    assert torch.equal(M, torch.eye(154)) and torch.equal(alpha, torch.ones(154))


# ----------------------------------------------------------------------------- SDXL


def test_sdxl_g_and_l_positions_agree(clipxl, clip1):
    texts = ["a cat sitting on a mat", "a hippopotamus sitting on a mat", "a " * 74 + "(red cat:1.2)"]
    dicts, tps = tokenize_prompts(clipxl, texts)
    _, tps1 = tokenize_prompts(clip1, texts)
    for d, tp, tp1 in zip(dicts, tps, tps1):
        assert set(d) == {"g", "l"}
        assert len(d["g"]) == len(d["l"]) == 2  # all padded to the long prompt's 2 chunks
        g = [t for c in d["g"] for t, _ in c]
        lt = [t for c in d["l"] for t, _ in c]
        content_g = [i for i, t in enumerate(g) if t not in (START, END, 0)]
        content_l = [i for i, t in enumerate(lt) if t not in (START, END)]
        assert content_g == content_l
        assert tp.ids == tuple(g)  # positions come from the first key, "g"
        assert tp.word_of == tp1.word_of and tp.special == tp1.special and tp.words == tp1.words
    assert tps[0].ids[7:10] == (END, 0, 0)  # clip_g pads with 0
    assert tps[0].special[7:10] == ("end", "pad", "pad")
    M, _ = swap_mapper(tps[0], tps[1])
    M1, _ = swap_mapper(tps1[0], tps1[1])
    assert torch.equal(M, M1)
    assert M[2, 2] == pytest.approx(1 / 3) and M[7, 9] == 1 and M[8, 10] == 1


def test_sdxl_encodes_padded_batch(clipxl):
    dicts, _ = tokenize_prompts(clipxl, ["a cat", "a photo of a " * 20 + "dog"])
    outs = [clipxl.encode_from_tokens(d, return_pooled=True) for d in dicts]
    cond = torch.cat([c for c, _ in outs])
    pooled = torch.cat([p for _, p in outs])
    assert cond.shape == (2, 154, 128) and pooled.shape == (2, 64)


# ----------------------------------------------------------------------------- parsers


def test_parse_window():
    assert parse_window("0.8", "cross") == (0.0, 0.8)
    assert parse_window("0.2-0.8", "cross") == (0.2, 0.8)
    assert parse_window(" 0.2 - 0.8 ", "cross") == (0.2, 0.8)
    assert parse_window("1", "cross") == (0.0, 1.0)
    assert parse_window("0-1", "cross") == (0.0, 1.0)
    assert parse_window(".5", "cross") == (0.0, 0.5)
    assert parse_window("0.4-0.4", "cross") == (0.4, 0.4)


@pytest.mark.parametrize(
    "bad", ["", "abc", "0.9-0.2", "1.5", "-0.2", "0.2-0.5-0.8", "0.2,0.8", "nan", "0.1-"]
)
def test_parse_window_errors(bad):
    with pytest.raises(ValueError, match="self_replace"):
        parse_window(bad, "self_replace")


def test_parse_word_windows():
    assert parse_word_windows("0.8", "cross") == {"default": (0.0, 0.8)}
    assert parse_word_windows("default: 0.8, lion: 0.4", "cross") == {
        "default": (0.0, 0.8),
        "lion": (0.0, 0.4),
    }
    assert parse_word_windows("default: 0.1-0.8, lion: 0-0.4", "cross") == {
        "default": (0.1, 0.8),
        "lion": (0.0, 0.4),
    }
    assert parse_word_windows("default: 0.5\nLion: 0.3\n\n", "cross") == {
        "default": (0.0, 0.5),
        "lion": (0.0, 0.3),
    }
    # Official: words without a window of their own are replaced the whole way when no default is given.
    assert parse_word_windows("lion: 0.4", "cross") == {"lion": (0.0, 0.4), "default": (0.0, 1.0)}
    assert parse_word_windows("0.6, red car: 0.2-0.5", "cross") == {
        "default": (0.0, 0.6),
        "red car": (0.2, 0.5),
    }
    assert parse_word_windows("default_: 0.3", "cross") == {"default": (0.0, 0.3)}


@pytest.mark.parametrize(
    "bad",
    ["lion 0.4", "lion: x", "lion: 0.4, lion: 0.5", ": 0.4", "lion: 0.9-0.1", "0.5, default: 0.6", "lion: 2",
     "", "  \n "],  # empty: neither the default nor a window (graphs/test_bad_inputs.py)
)
def test_parse_word_windows_errors(bad):
    with pytest.raises(ValueError, match="cross_replace"):
        parse_word_windows(bad, "cross_replace")


def test_parse_word_weights():
    assert parse_word_weights("smiling: 2, cat: -1.5", "weights") == {"smiling": 2.0, "cat": -1.5}
    assert parse_word_weights("Smiling: +2\ncat:0.5", "weights") == {"smiling": 2.0, "cat": 0.5}
    assert parse_word_weights("", "weights") == {}
    assert parse_word_weights("red car: 3", "weights") == {"red car": 3.0}


@pytest.mark.parametrize(
    "bad", ["smiling 2", "smiling: two", "smiling: inf", ": 2", "cat: 1, cat: 2", "cat: 1e3", "cat:"]
)
def test_parse_word_weights_errors(bad):
    with pytest.raises(ValueError, match="weights"):
        parse_word_weights(bad, "weights")


def test_step_index():
    sig = torch.tensor([14.6, 10.0, 5.0, 2.0, 1.0, 0.5, 0.0])
    assert [step_index(float(s), sig) for s in sig[:-1]] == [0, 1, 2, 3, 4, 5]
    assert step_index(torch.tensor([5.0, 5.0]).half(), sig) == 2
    assert step_index(torch.tensor(10.0).half(), sig) == 1
    assert step_index(2.0000001, sig) == 3
    assert step_index(7.0, sig) == 1  # a midpoint evaluation belongs to the step in progress
    assert step_index(0.3, sig) == 5
    assert step_index(20.0, sig) == 0
    assert step_index(0.0, sig) == 5  # clamped to the last step
    flipped = torch.tensor([0.0001, 0.5, 1.0, 2.0, 5.0, 10.0, 14.6])  # FlipSigmas (inversion)
    assert step_index(0.0001, flipped) == 0
    assert step_index(2.0, flipped) == 3
    assert step_index(3.0, flipped) == 3
    assert step_index(10.0, flipped) == 5


def test_window_active():
    # Self windows: int(a*n) <= step < int(b*n) (official num_self_replace).
    assert window_active((0.0, 0.8), 39, 50, "self") and not window_active((0.0, 0.8), 40, 50, "self")
    assert not window_active((0.2, 0.8), 9, 50, "self") and window_active((0.2, 0.8), 10, 50, "self")
    assert window_active((0.0, 1.0), 49, 50, "self")
    assert not window_active((0.4, 0.4), 20, 50, "self")
    assert [s for s in range(10) if window_active((0.2, 0.7), s, 10, "self")] == [2, 3, 4, 5, 6]
    # Cross windows: the official alpha table has n + 1 rows.
    assert [s for s in range(20) if window_active((0.0, 0.29), s, 20, "cross")] == [0, 1, 2, 3, 4, 5]
    assert window_active((0.0, 1.0), 49, 50, "cross")  # clamped to the steps there are
