"""The pack's nodes on a tiny Flux.2 klein (p2p_models.tiny_flux2) in real ComfyUI graphs: the stock
KSampler and SamplerCustomAdvanced with Flux.2's own nodes (EmptyFlux2LatentImage, Flux2Scheduler),
word swap, refine, reweight, local blend and attention maps; the edit differs from the source; reference
images (ReferenceLatent, Flux.2's image inputs) refused as Flux Kontext's are. ComfyUI 0.3.75 has no klein
text encoder: skipped there."""

from __future__ import annotations

import pytest
from bounds import last_step_bound
from family_graphs import HEIGHT, SRC, WIDTH, check_p2p_outputs, p2p_graph
from harness import Graph, run_inprocess

from p2p_models.tiny_flux2 import klein_available

pytestmark = pytest.mark.skipif(not klein_available(), reason="this ComfyUI (0.3.75) has no Flux.2 klein text encoder")

# latent 128 x 4 x 6: 24 image tokens
EDITS = {"swap": "a green circle on the left", "refine": "a big red circle on the left", "reweight": SRC}
BASES = {"swap": "P2PWordSwap", "refine": "P2PRefine", "reweight": None}


def _graph(sampler: str, control: str) -> Graph:
    return p2p_graph("P2PTestTinyDiTModel", {"family": "flux2_klein", "seed": 0}, EDITS[control], "flux2_p2p", 1.0,
                     sampler=sampler, base=BASES[control], weights="red: 3" if control == "reweight" else None,
                     empty_latent="EmptyFlux2LatentImage", negative=False, basic_guider=True,
                     sigmas=lambda g, model: g.node("Flux2Scheduler", steps=4, width=WIDTH, height=HEIGHT))


@pytest.mark.parametrize("sampler,control", [("KSampler", "swap"), ("KSampler", "refine"),
                                             ("KSampler", "reweight"), ("SamplerCustomAdvanced", "swap")])
def test_p2p_nodes_run_on_flux2_klein_with_stock_samplers(sampler, control):
    latent = check_p2p_outputs(run_inprocess(_graph(sampler, control)), (2, 128, HEIGHT // 16, WIDTH // 16))
    diff = (latent[1] - latent[0]).abs()
    # (exactness outside the local blend's mask: tests/engine/test_flux2.py)
    assert diff.max() > 4 * last_step_bound(latent[0])  # the edit is not the source (a random model: weak text)


def test_reference_latents_are_refused_as_kontexts_are():
    """ReferenceLatent (Flux.2's image input, as Flux Kontext's and Qwen-Image-Edit's) puts the image's tokens in
    the joint attention, where the edit would leave them alone: refused by P2P Apply before sampling."""
    g = _graph("KSampler", "swap")
    (sampler,) = (n for n in g.values() if n["class_type"] == "KSampler")
    (loader,) = (i for i, n in g.items() if n["class_type"] == "P2PTestTinyDiTModel")
    image = g.node("EmptyImage", width=WIDTH, height=HEIGHT, batch_size=1, color=0x8040C0)
    ref = g.node("ReferenceLatent", conditioning=sampler["inputs"]["positive"],
                 latent=g.node("VAEEncode", pixels=image, vae=[loader, 2]))
    sampler["inputs"]["positive"] = sampler["inputs"]["negative"] = ref[0]
    with pytest.raises(AssertionError) as e:
        run_inprocess(g)
    msg = str(e.value)
    assert "P2P Apply: the positive conditioning carries reference images (ReferenceLatent" in msg, msg
    assert "Sample without reference images, or edit a photo with P2P Invert." in msg
