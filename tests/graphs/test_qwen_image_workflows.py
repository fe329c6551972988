"""The pack's nodes on a tiny Qwen-Image (p2p_models.tiny_qwen) in real ComfyUI graphs: ModelSamplingAuraFlow
(ComfyUI's Qwen-Image example), the stock samplers (KSampler, KSamplerAdvanced, SamplerCustomAdvanced with
CFGGuider), EmptySD3LatentImage (4-d; the sampler makes it a 1-frame 5-d latent), the Wan 2.1 VAE's decode,
and every control: word swap, refine, reweight, local blend, attention maps."""

from __future__ import annotations

import pytest
import torch
from family_graphs import HEIGHT, WIDTH, check_p2p_outputs, p2p_graph, saved_latent
from harness import Graph, run_inprocess

EDITS = {"swap": "a green circle on the left", "refine": "a big red circle on the left"}


def _graph(sampler: str, mode: str, blend: bool = True) -> Graph:
    return p2p_graph("P2PTestTinyQwenImage", {"seed": 0}, EDITS[mode], "qwen_p2p", 2.5, sampler=sampler,
                     base="P2PWordSwap" if mode == "swap" else "P2PRefine", weights="circle: 2", blend=blend,
                     model_hook=lambda g, model: g.node("ModelSamplingAuraFlow", model=model, shift=3.1))


@pytest.mark.parametrize("sampler,mode", [("KSampler", "swap"), ("KSampler", "refine"),
                                          ("KSamplerAdvanced", "swap"), ("SamplerCustomAdvanced", "refine")])
def test_p2p_nodes_run_on_qwen_image_with_stock_samplers(sampler, mode):
    check_p2p_outputs(run_inprocess(_graph(sampler, mode)), (2, 16, 1, HEIGHT // 8, WIDTH // 8))


def test_the_local_blend_keeps_the_source_outside_its_mask_in_a_graph():
    """With the blend, the edit differs from the source only inside the blend's region; without it,
    everywhere the edit reaches (the same graph otherwise)."""
    blended, free = (saved_latent(run_inprocess(_graph("KSampler", "swap", blend=b))) for b in (True, False))
    assert torch.equal(blended[0], free[0])  # the source item is the same image
    inside = (blended[1] - blended[0]).abs().amax((0, 1)) > 1e-4  # [H, W] where the blended edit moved
    assert 0 < inside.float().mean() < 1
    assert (free[1] - free[0]).abs().amax((0, 1))[~inside].max() > 1e-3  # the free edit moves there too
