"""batch.py: where the source and the edits sit in an attention batch (one group per cond chunk)."""

from __future__ import annotations

import pytest

from p2p_attention.batch import batch_layout, check_items
from p2p_attention.errors import P2PError


@pytest.mark.parametrize("cond_or_uncond, groups", [
    ([0], [(0, [1, 2])]),  # cfg 1 (Flux.1): one cond chunk
    ([0, 1], [(0, [1, 2])]),  # cond first, then uncond
    ([1, 0], [(3, [4, 5])]),  # uncond first: the cond chunk's source is item 3
])
def test_each_cond_chunk_holds_the_source_then_its_edits(cond_or_uncond, groups):
    layout = batch_layout(3 * len(cond_or_uncond), cond_or_uncond, n_edits=2)
    assert layout.groups == groups
    assert layout.edit_index == [e for _, es in groups for e in es]


def test_two_cond_chunks_give_two_groups():
    assert batch_layout(4, [0, 0], n_edits=1).groups == [(0, [1]), (2, [3])]


@pytest.mark.parametrize("total, chunks", [(4, [0, 1]), (5, [0, 1]), (2, [0])])
def test_a_batch_without_one_item_per_edit_is_refused(total, chunks):
    with pytest.raises(P2PError, match="latent batch has .* the prompts need 3") as e:
        batch_layout(total, chunks, n_edits=2)
    assert e.value.fix == "latent_batch"


def test_check_items_names_the_counts():
    check_items(3, 2)
    with pytest.raises(P2PError, match=r"has 1 item\(s\) but the prompts need 2 \(the source and 1 edit"):
        check_items(1, 1)
