"""The pack's nodes on tiny Chroma and Chroma Radiance in real ComfyUI graphs: the stock samplers
(KSampler, KSamplerAdvanced, SamplerCustomAdvanced with CFGGuider) at real CFG, Chroma's latent
(EmptySD3LatentImage) and Radiance's pixels (EmptyChromaRadianceLatentImage, its ChromaRadianceOptions
wrapper, the pixel-space VAE); EasyCache / LazyCache refused by name before and after P2P Apply."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.torch
import torch
from harness import Graph, inprocess_dirs, inprocess_image_path, output_images, run_inprocess
from PIL import Image

WIDTH, HEIGHT = 96, 64
SRC = "a red circle on the left"
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
    g = Graph()
    m = g.node("P2PTestTinyDiTModel", family=family, seed=0)
    model = m[0]
    if radiance:  # Radiance's own options node: a model_function_wrapper beside P2P's wrappers
        model = g.node("ChromaRadianceOptions", model=model, **_radiance_options())
    if cache and not cache_after:
        model = g.node(cache, model=model, reuse_threshold=0.2, start_percent=0.15, end_percent=0.95, verbose=False)
    pair = g.node("P2PPromptPair", clip=m[1], source=SRC, edits=EDIT)
    neg = g.node("CLIPTextEncode", clip=m[1], text="")
    empty = (g.node("EmptyChromaRadianceLatentImage", width=WIDTH, height=HEIGHT, batch_size=1) if radiance
             else g.node("EmptySD3LatentImage", width=WIDTH, height=HEIGHT, batch_size=1))
    lat = g.node("P2PLatentBatch", latent=empty, prompts=pair[1])
    edit = g.node("P2PRefine", prompts=pair[1], cross_replace="0.8", self_replace="0.5")
    edit = g.node("P2PReweight", prompts=pair[1], weights="green: 2", cross_replace="0.8", self_replace="0.5",
                  edit=edit)
    edit = g.node("P2PLocalBlend", prompts=pair[1], words="circle", subtract="", threshold=0.5,
                  subtract_threshold=0.3, start_blend=0.0, dilation=0, edit=edit)
    applied = g.node("P2PApply", model=model, edit=edit, self_blocks="auto")
    sampled = applied[0]
    if cache and cache_after:
        sampled = g.node(cache, model=sampled, reuse_threshold=0.2, start_percent=0.15, end_percent=0.95, verbose=False)
    common = {"model": sampled, "positive": pair[0], "negative": neg, "latent_image": lat, "cfg": 4.0}
    if sampler == "KSampler":
        out = g.node("KSampler", **common, seed=2, steps=4, sampler_name="euler", scheduler="simple", denoise=1.0)
    elif sampler == "KSamplerAdvanced":
        out = g.node("KSamplerAdvanced", **common, add_noise="enable", noise_seed=2, steps=4, sampler_name="euler",
                     scheduler="beta", start_at_step=0, end_at_step=10000, return_with_leftover_noise="disable")
    else:
        guider = g.node("CFGGuider", model=sampled, positive=pair[0], negative=neg, cfg=4.0)
        out = g.node("SamplerCustomAdvanced", noise=g.node("RandomNoise", noise_seed=2), guider=guider,
                     sampler=g.node("KSamplerSelect", sampler_name="euler"),
                     sigmas=g.node("BasicScheduler", model=sampled, scheduler="simple", steps=4, denoise=1.0),
                     latent_image=lat)
    g.node("SaveLatent", _id="lat", samples=out[0], filename_prefix=f"chroma_p2p_{family}")
    img = g.node("VAEDecode", samples=out[0], vae=m[2])
    g.node("SaveImage", _id="img", images=img, filename_prefix=f"chroma_p2p_{family}")
    maps = g.node("P2PAttentionMaps", attention_store=applied[1], samples=out[0], prompt_index=1, words="circle",
                  threshold=0.0, image=img)
    g.node("SaveImage", _id="maps", images=maps[0], filename_prefix=f"chroma_p2p_maps_{family}")
    g.node("SaveImage", _id="mask", images=g.node("MaskToImage", mask=maps[1]), filename_prefix="chroma_p2p_mask")
    return g


@pytest.mark.parametrize("sampler", ["KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced"])
@pytest.mark.parametrize("family", ["chroma", "chroma_radiance"])
def test_p2p_nodes_run_on_chroma_with_stock_samplers(family, sampler):
    outputs = run_inprocess(_graph(family, sampler))
    images = dict(output_images(outputs))
    assert sorted(images) == ["img", "maps", "mask"]
    (saved,) = outputs["lat"]["latents"]
    latent = safetensors.torch.load_file(str(inprocess_image_path(saved)))["latent_tensor"]
    shape = (2, 3, HEIGHT, WIDTH) if family == "chroma_radiance" else (2, 16, HEIGHT // 8, WIDTH // 8)
    assert latent.shape == shape and torch.isfinite(latent).all()
    assert (latent[1] - latent[0]).abs().max() > 0  # the edit is not the source
    pixels = np.asarray(Image.open(inprocess_image_path(images["img"])))
    assert pixels.shape == (HEIGHT, WIDTH, 3) and pixels.std() > 0
    mask = np.asarray(Image.open(inprocess_image_path(images["mask"])))
    assert mask.shape[:2] == (HEIGHT, WIDTH) and mask.max() == 255 and mask.std() > 0
    maps = np.asarray(Image.open(inprocess_image_path(images["maps"])))
    assert maps.shape[0] > 0 and maps.std() > 0


@pytest.mark.parametrize("after", [False, True], ids=["before P2P Apply", "after P2P Apply"])
@pytest.mark.parametrize("cache", ["EasyCache", "LazyCache"])
def test_cache_speedups_are_refused_by_name(cache, after):
    with pytest.raises(AssertionError, match=rf"P2P Apply: this MODEL carries {cache}, which returns cached model "
                                             rf"outputs .* Take the EasyCache / LazyCache node out of the MODEL's path"):
        run_inprocess(_graph("chroma", "KSampler", cache=cache, cache_after=after))
