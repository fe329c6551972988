"""text_streams.py: which tokenizer streams make up a text context, read from its length."""

from __future__ import annotations

import pytest

from p2p_attention.errors import P2PError
from p2p_attention.prompts import T5_KEY, TokenizedPrompt
from p2p_attention.text_streams import concat_streams, context_layouts, context_prompt


def _prompt(n: int, first_id: int, words=("a", "cat")) -> TokenizedPrompt:
    """n tokens: the words' tokens after a start token, then padding."""
    word_of = [-1] + [i for i in range(len(words))] + [-1] * (n - 1 - len(words))
    return TokenizedPrompt(text=" ".join(words), ids=tuple(range(first_id, first_id + n)), word_of=tuple(word_of),
                           words=tuple(words), n_chunks=1, special=tuple("" if w >= 0 else "pad" for w in word_of),
                           token_text=tuple(str(i) for i in range(n)), chunk_len=n)


def test_layouts_most_specific_first():
    assert context_layouts(["l"]) == [["l"]]
    assert context_layouts(["l", "g"]) == [["l"]]  # CLIP-L and G share positions: one is kept
    assert context_layouts([T5_KEY]) == [[T5_KEY]]
    assert context_layouts(["l", T5_KEY]) == [[T5_KEY], ["l", T5_KEY], ["l"]]


@pytest.mark.parametrize("length, has_t5, ids", [
    (256, True, (1000, 1256)),  # Flux.1: the T5 rows only
    (77 + 256, True, (0, 77, 1000, 1256)),  # SD3: CLIP rows then T5 rows
    (77, False, (0, 77)),  # SD3 without its T5
])
def test_the_context_length_chooses_the_streams(length, has_t5, ids):
    streams = {"l": _prompt(77, 0), T5_KEY: _prompt(256, 1000)}
    got = context_prompt(streams, length, has_t5)
    assert got.length == length
    pieces = [(p.ids[0], p.ids[-1] + 1) for p in (got.parts or (got,))]
    assert [x for piece in pieces for x in piece] == list(ids)
    # every word's tokens are found in each stream of the context
    assert got.positions_of("cat") == [2] + ([77 + 2] if len(pieces) == 2 else [])


def test_an_unexplained_length_is_refused_with_the_stream_sizes():
    streams = {"l": _prompt(77, 0), T5_KEY: _prompt(256, 1000)}
    with pytest.raises(P2PError, match=r"context has 100 tokens, which no combination .* \(l 77, t5xxl 256\)"):
        context_prompt(streams, 100)


def test_concat_keeps_each_streams_positions():
    a, b = _prompt(5, 0), _prompt(7, 100)
    both = concat_streams([a, b])
    assert both.length == 12 and both.parts == (a, b) and both.chunk_len == 0
    assert both.word_positions == ((1, 6), (2, 7))
    assert concat_streams([a]) is a
