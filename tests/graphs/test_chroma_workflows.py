"""The pack's nodes on tiny Chroma and Chroma Radiance in real ComfyUI graphs: the stock samplers
(KSampler, KSamplerAdvanced, SamplerCustomAdvanced with CFGGuider) at real CFG, Chroma's latent
(EmptySD3LatentImage) and Radiance's pixels (EmptyChromaRadianceLatentImage, its ChromaRadianceOptions
wrapper, the pixel-space VAE); EasyCache / LazyCache refused by name before and after P2P Apply."""

from __future__ import annotations

import pytest
from family_graphs import HEIGHT, SAMPLERS, WIDTH, check_p2p_outputs, image_array, p2p_graph
from harness import Graph, inprocess_dirs, run_inprocess

EDIT = "a big green circle on the left"  # longer than the source: its padding is masked


def _radiance_options() -> dict:
    """ChromaRadianceOptions' inputs on this ComfyUI (0.33.0 adds force_sequential_txt_ids)."""
    inprocess_dirs()
    import nodes

    required = nodes.NODE_CLASS_MAPPINGS["ChromaRadianceOptions"].INPUT_TYPES().get("required", {})
    extra = {"force_sequential_txt_ids": False} if "force_sequential_txt_ids" in required else {}
    return {"preserve_wrapper": True, "start_sigma": 1.0, "end_sigma": 0.0, "nerf_tile_size": 2, **extra}


def _graph(family: str, sampler: str, cache: str | None = None, cache_after: bool = False) -> Graph:
    radiance = family == "chroma_radiance"

    def with_cache(g, model):
        return g.node(cache, model=model, reuse_threshold=0.2, start_percent=0.15, end_percent=0.95, verbose=False)

    def model_hook(g, model):
        if radiance:  # Radiance's own options node: a model_function_wrapper beside P2P's wrappers
            model = g.node("ChromaRadianceOptions", model=model, **_radiance_options())
        return with_cache(g, model) if cache and not cache_after else model

    return p2p_graph("P2PTestTinyDiTModel", {"family": family, "seed": 0}, EDIT, f"chroma_p2p_{family}", 4.0,
                     sampler=sampler, base="P2PRefine", weights="green: 2", model_hook=model_hook,
                     sampled_hook=with_cache if cache and cache_after else None,
                     empty_latent="EmptyChromaRadianceLatentImage" if radiance else "EmptySD3LatentImage")


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("family", ["chroma", "chroma_radiance"])
def test_p2p_nodes_run_on_chroma_with_stock_samplers(family, sampler):
    outputs = run_inprocess(_graph(family, sampler))
    shape = (2, 3, HEIGHT, WIDTH) if family == "chroma_radiance" else (2, 16, HEIGHT // 8, WIDTH // 8)
    latent = check_p2p_outputs(outputs, shape)
    assert (latent[1] - latent[0]).abs().max() > 0  # the edit is not the source
    assert image_array(outputs, "img").std() > 0


@pytest.mark.parametrize("after", [False, True], ids=["before P2P Apply", "after P2P Apply"])
@pytest.mark.parametrize("cache", ["EasyCache", "LazyCache"])
def test_cache_speedups_are_refused_by_name(cache, after):
    with pytest.raises(AssertionError, match=rf"P2P Apply: this MODEL carries {cache}, which returns cached model "
                                             rf"outputs .* Take the EasyCache / LazyCache node out of the MODEL's path"):
        run_inprocess(_graph("chroma", "KSampler", cache=cache, cache_after=after))
