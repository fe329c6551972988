"""No silent no-op: an edit that would certainly give the source back is reported, with why."""

import logging

import pytest

from p2p_attention.apply import apply_edit
from p2p_attention.conditioning import encode_prompt_set
from p2p_attention.edits import make_plan
from p2p_attention.errors import P2PError

SHAPES = "a big red circle on the left and a small blue square on the right"


@pytest.fixture(scope="module")
def demo():
    from p2p_models.demo_unet import load_demo_model

    return load_demo_model()


def test_words_outside_the_vocabulary_are_named(demo):
    _, clip, _ = demo
    with pytest.raises(P2PError) as e:
        encode_prompt_set(clip, "a photo of a cat", ["a photo of a dog"])
    msg = str(e.value)
    assert msg.startswith("edit prompt 1 ('a photo of a dog') encodes exactly like the source")
    assert "'cat', 'dog', 'of', 'photo' are outside this model's vocabulary" in msg
    known = msg.split("Change words the model knows: ")[1].rstrip(".").split(", ")
    assert {"red", "green", "circle", "square", "left"} <= set(known) and "cat" not in known
    assert len(known) < 40  # the demo's training vocabulary, not CLIP's 49408 tokens


def test_a_swapped_or_inserted_unknown_word_is_refused(demo, caplog):
    """'circle' -> 'dog' encodes differently from the source, but 'dog' has a zero embedding: the circle
    would vanish. Refused with the word; an unknown word the source has too stays a warning."""
    _, clip, _ = demo
    with pytest.raises(P2PError) as e:
        encode_prompt_set(clip, SHAPES, [SHAPES.replace("red", "green"), SHAPES.replace("circle", "dog")])
    msg = str(e.value)
    assert msg.startswith(f"edit prompt 2 ({SHAPES.replace('circle', 'dog')!r}): 'dog' is outside this model's vocabulary")
    assert "circle" in msg.split("Change words the model knows: ")[1]
    with pytest.raises(P2PError, match="'fluffy' is outside"):
        encode_prompt_set(clip, SHAPES, [SHAPES.replace("big red", "big fluffy red")])
    with caplog.at_level(logging.WARNING):
        encode_prompt_set(clip, SHAPES + " photo", [SHAPES.replace("red", "green")])  # removed: a warning
    assert any("'photo'" in m for m in _ours(caplog))


def _ours(caplog) -> list[str]:
    """The pack's warnings only (ComfyUI logs its own, e.g. model_management's memory-leak notice when
    loading a text encoder frees other models)."""
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Prompt-to-Prompt:")]


def test_known_words_pass_and_unknown_ones_warn(demo, caplog):
    _, clip, _ = demo
    with caplog.at_level(logging.WARNING):
        _, ps = encode_prompt_set(clip, SHAPES, [SHAPES.replace("red", "green")])
    assert ps.n_edits == 1 and not _ours(caplog)
    with caplog.at_level(logging.WARNING):
        encode_prompt_set(clip, SHAPES + " photo", [SHAPES.replace("red", "green") + " photo"])
    assert any("'photo'" in m for m in _ours(caplog))


def test_a_full_vocabulary_never_refuses(tiny_sd1, caplog):
    _, clip, _ = tiny_sd1  # random embeddings: every token is representable, as on real checkpoints
    with caplog.at_level(logging.WARNING):
        encode_prompt_set(clip, "a photo of a cat", ["a photo of a dog"])
    assert not _ours(caplog)


def test_apply_warns_when_an_edit_equals_the_source(tiny_sd1, caplog):
    model, clip, _ = tiny_sd1
    _, ps = encode_prompt_set(clip, "a photo of a cat", ["a photo of a cat"])
    refine = make_plan(ps, None, "refine", "0.8", "0.4")
    with caplog.at_level(logging.WARNING):
        apply_edit(model, refine)
    assert any("equal the source and no word is reweighted" in m for m in _ours(caplog))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        apply_edit(model, make_plan(ps, refine, None, "0.8", "0.4", "cat: 2"))
    assert not _ours(caplog)
