"""The pack's one set of nodes on tiny Flux.1 and SD3.5 models, in real ComfyUI graphs with the
stock samplers (KSampler, KSamplerAdvanced, SamplerCustomAdvanced) and the models' own sampling
nodes (ModelSamplingFlux + FluxGuidance, ModelSamplingSD3)."""

from __future__ import annotations

import pytest
from family_graphs import HEIGHT, SAMPLERS, WIDTH, check_p2p_outputs, model_sampling, p2p_graph
from harness import Graph, run_inprocess

EDIT = "a green circle on the left"


def _graph(family: str, sampler: str) -> Graph:
    flux = family == "flux"
    return p2p_graph("P2PTestTinyDiTModel", {"family": family, "seed": 0}, EDIT, f"dit_p2p_{family}",
                     1.0 if flux else 4.0, sampler=sampler, weights="green: 2",
                     model_hook=lambda g, model: model_sampling(g, family, model),
                     guidance=3.5 if flux else None, basic_guider=flux)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("family", ["flux", "sd35"])
def test_p2p_nodes_run_on_mmdit_with_stock_samplers(family, sampler):
    latent = check_p2p_outputs(run_inprocess(_graph(family, sampler)), (2, 16, HEIGHT // 8, WIDTH // 8))
    assert (latent[1] - latent[0]).abs().max() > 0  # the edit is not the source


def test_unsupported_inputs_are_refused_by_name():
    g = _graph("flux", "KSampler")
    g["1"]["inputs"]["family"] = "flux"
    apply_id = next(i for i, n in g.items() if n["class_type"] == "P2PApply")
    g[apply_id]["inputs"]["self_blocks"] = "double 7"
    with pytest.raises(AssertionError, match=r"P2P Apply: self_blocks: this model has no double blocks 7-7 "
                                             r"\(it has double 0-1, single 0-1\)"):
        run_inprocess(g)
