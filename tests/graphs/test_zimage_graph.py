"""The pack's nodes on the tiny Z-Image (p2p_models.tiny_zimage) in a real ComfyUI graph, as ComfyUI's
Z-Image example samples it: ModelSamplingAuraFlow (shift 3), the stock KSampler, euler / simple;
word swap + reweight + local blend + attention maps, and the edit equal to the source outside the
local blend's mask."""

from __future__ import annotations

from family_graphs import HEIGHT, WIDTH, check_p2p_outputs, p2p_graph, saved_latent
from harness import Graph, run_inprocess

EDIT = "a green circle on the left"


def _graph(blend: bool = True) -> Graph:
    return p2p_graph("P2PTestTinyDiTModel", {"family": "zimage", "seed": 0}, EDIT, "zimage_p2p", 4.0,
                     weights="green: 2", blend=blend,
                     model_hook=lambda g, model: g.node("ModelSamplingAuraFlow", model=model, shift=3.0))


def test_p2p_nodes_run_on_zimage_with_ksampler_and_aura_flow_sampling():
    latent = check_p2p_outputs(run_inprocess(_graph()), (2, 16, HEIGHT // 8, WIDTH // 8))
    diff = (latent[1] - latent[0]).abs()
    unblended = saved_latent(run_inprocess(_graph(blend=False)))
    assert (unblended[1] - unblended[0]).abs().max() > 0.05  # without the blend the edit changes the image
    # the local blend's mask is binary at the latent's 8x12 cells: each cell is either the source's, up to
    # the last euler step's float32 rounding, or the edit's own (the engine test reads the mask itself)
    cell = diff.amax(0)
    kept = cell <= 1e-5 * latent.abs().max()
    assert 0 < float(kept.float().mean()) < 1
    assert cell[~kept].min() > 1e-3
