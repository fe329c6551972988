"""P2P Prompt Pair / Latent Batch: one conditioning row per batch item, shared noise."""

import pytest
import torch
from bounds import fp_bound, unet_evals
from sampling import empty_latent, encode, sample

from p2p_attention.conditioning import encode_prompt_set, encodes_alike, latent_batch
from p2p_attention.errors import P2PError


def test_item0_equals_batch_of_one_source_run(tiny_model):
    arch, (model, clip, _) = tiny_model
    source = "a photo of a cat riding a bicycle"
    cond, prompts = encode_prompt_set(clip, source, ["a photo of a dog riding a bicycle", "a sketch of a cat"])
    assert cond[0][0].shape[0] == 3
    if arch == "sdxl":
        assert cond[0][1]["pooled_output"].shape[0] == 3
    neg = encode(clip, "")
    batch = latent_batch(empty_latent(), 1 + prompts.n_edits)
    assert batch["samples"].shape[0] == 3 and batch["batch_index"] == [0, 0, 0]
    out = sample(model, cond, neg, batch, seed=3)
    alone = sample(model, encode(clip, source), neg, empty_latent(), seed=3)
    diff = (out[0] - alone[0]).abs().max().item()
    # Batch 3 vs batch 1: the same maths through kernels blocked for another batch shape.
    bound = fp_bound(alone[0], torch.float32, unet_evals(6))
    print(f"{arch}: item 0 vs batch-of-one max abs diff {diff:.2e} (bound {bound:.2e})")
    assert diff <= bound
    # The edits really got their own prompts: they differ from the source by more than float noise.
    assert (out[1] - out[0]).abs().max() > bound


def test_long_prompts_share_chunk_count(tiny_sd1):
    _, clip, _ = tiny_sd1
    long_src = " ".join(["a red house"] * 30)  # > 77 tokens: two chunks
    cond, prompts = encode_prompt_set(clip, long_src, ["a small boat"])
    assert cond[0][0].shape[:2] == (2, 154)
    assert prompts.source.n_chunks == prompts.edits[0].n_chunks == 2


def test_the_source_conditioning_is_the_source_encoded_alone(tiny_model):
    """What an inversion under the source is compared with (P2P Apply warns when it differs): the source's
    own encoding matches it even when an edit pads the source to more chunks, another prompt does not."""
    arch, (_, clip, _) = tiny_model
    source = "a photo of a cat riding a bicycle"
    long_edit = " ".join(["a red house"] * 30)  # > 77 tokens: the source's row is padded to two chunks
    _, prompts = encode_prompt_set(clip, source, ["a photo of a dog riding a bicycle", long_edit])
    row = prompts.source_conditioning[0][0]
    alone = encode(clip, source)
    assert row.shape[1] == 154 and alone[0][0].shape[1] == 77
    if arch == "sdxl":
        assert torch.allclose(prompts.source_conditioning[0][1]["pooled_output"], alone[0][1]["pooled_output"],
                              atol=1e-5)
    assert encodes_alike(row, alone[0][0]) is True
    assert encodes_alike(row, encode(clip, "a photo of a cat riding a horse")[0][0]) is False
    assert encodes_alike(row, torch.zeros(1, 77, row.shape[-1] + 1)) is None  # another encoder: not comparable


@pytest.mark.parametrize(
    "source,edits,match",
    [("   ", ["a dog"], "source prompt is empty"), ("a cat", [], "no edit prompt")],
)
def test_bad_prompts_are_refused(tiny_sd1, source, edits, match):
    _, clip, _ = tiny_sd1
    with pytest.raises(P2PError, match=match):
        encode_prompt_set(clip, source, edits)


def test_latent_batch_refuses_a_batch(tiny_sd1):
    with pytest.raises(P2PError, match="^the input latent has batch 2") as e:
        latent_batch(empty_latent(batch=2), 3)
    assert e.value.fix == "single_latent"


def test_latent_batch_keeps_noise_index():
    lat = latent_batch({"samples": torch.zeros(1, 4, 8, 8), "batch_index": [5]}, 3)
    assert lat["batch_index"] == [5, 5, 5]
