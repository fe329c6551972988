"""The pack's one set of nodes on tiny Flux.1 and SD3.5 models, in real ComfyUI graphs with the
stock samplers (KSampler, KSamplerAdvanced, SamplerCustomAdvanced) and the models' own sampling
nodes (ModelSamplingFlux + FluxGuidance, ModelSamplingSD3)."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.torch
import torch
from harness import Graph, inprocess_image_path, output_images, run_inprocess
from PIL import Image

WIDTH, HEIGHT = 96, 64
SRC = "a red circle on the left"
EDIT = "a green circle on the left"


def _graph(family: str, sampler: str) -> Graph:
    flux = family == "flux"
    g = Graph()
    m = g.node("P2PTestTinyDiTModel", family=family, seed=0)
    model = (g.node("ModelSamplingFlux", model=m[0], max_shift=1.15, base_shift=0.5, width=WIDTH, height=HEIGHT)
             if flux else g.node("ModelSamplingSD3", model=m[0], shift=3.0))
    pair = g.node("P2PPromptPair", clip=m[1], source=SRC, edits=EDIT)
    pos = g.node("FluxGuidance", conditioning=pair[0], guidance=3.5) if flux else pair[0]
    neg = g.node("CLIPTextEncode", clip=m[1], text="")
    lat = g.node("P2PLatentBatch", latent=g.node("EmptySD3LatentImage", width=WIDTH, height=HEIGHT, batch_size=1),
                 prompts=pair[1])
    swap = g.node("P2PWordSwap", prompts=pair[1], cross_replace="0.8", self_replace="0.5")
    edit = g.node("P2PReweight", prompts=pair[1], weights="green: 2", cross_replace="0.8", self_replace="0.5",
                  edit=swap)
    edit = g.node("P2PLocalBlend", prompts=pair[1], words="circle", subtract="", threshold=0.5,
                  subtract_threshold=0.3, start_blend=0.0, dilation=0, edit=edit)
    applied = g.node("P2PApply", model=model, edit=edit, self_blocks="auto")
    cfg = 1.0 if flux else 4.0
    common = {"model": applied[0], "positive": pos, "negative": neg, "latent_image": lat, "cfg": cfg}
    if sampler == "KSampler":
        out = g.node("KSampler", **common, seed=2, steps=4, sampler_name="euler", scheduler="simple", denoise=1.0)
    elif sampler == "KSamplerAdvanced":
        out = g.node("KSamplerAdvanced", **common, add_noise="enable", noise_seed=2, steps=4, sampler_name="euler",
                     scheduler="beta", start_at_step=0, end_at_step=10000, return_with_leftover_noise="disable")
    else:
        guider = (g.node("BasicGuider", model=applied[0], conditioning=pos) if flux
                  else g.node("CFGGuider", model=applied[0], positive=pos, negative=neg, cfg=cfg))
        out = g.node("SamplerCustomAdvanced", noise=g.node("RandomNoise", noise_seed=2), guider=guider,
                     sampler=g.node("KSamplerSelect", sampler_name="euler"),
                     sigmas=g.node("BasicScheduler", model=applied[0], scheduler="simple", steps=4, denoise=1.0),
                     latent_image=lat)
    g.node("SaveLatent", _id="lat", samples=out[0], filename_prefix=f"dit_p2p_{family}")
    img = g.node("VAEDecode", samples=out[0], vae=m[2])
    g.node("SaveImage", _id="img", images=img, filename_prefix=f"dit_p2p_{family}")
    maps = g.node("P2PAttentionMaps", attention_store=applied[1], samples=out[0], prompt_index=1, words="circle",
                  threshold=0.0, image=img)
    g.node("SaveImage", _id="maps", images=maps[0], filename_prefix=f"dit_p2p_maps_{family}")
    g.node("SaveImage", _id="mask", images=g.node("MaskToImage", mask=maps[1]), filename_prefix="dit_p2p_mask")
    return g


@pytest.mark.parametrize("sampler", ["KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced"])
@pytest.mark.parametrize("family", ["flux", "sd35"])
def test_p2p_nodes_run_on_mmdit_with_stock_samplers(family, sampler):
    outputs = run_inprocess(_graph(family, sampler))
    images = dict(output_images(outputs))
    assert sorted(images) == ["img", "maps", "mask"]
    (saved,) = outputs["lat"]["latents"]
    latent = safetensors.torch.load_file(str(inprocess_image_path(saved)))["latent_tensor"]
    assert latent.shape == (2, 16, HEIGHT // 8, WIDTH // 8) and torch.isfinite(latent).all()
    diff = (latent[1] - latent[0]).abs()
    assert diff.max() > 0  # the edit is not the source
    mask = np.asarray(Image.open(inprocess_image_path(images["mask"])))
    assert mask.shape[:2] == (HEIGHT, WIDTH) and mask.max() == 255 and mask.std() > 0  # soft, peak 1
    maps = np.asarray(Image.open(inprocess_image_path(images["maps"])))
    assert maps.shape[0] > 0 and maps.std() > 0


def test_unsupported_inputs_are_refused_by_name():
    g = _graph("flux", "KSampler")
    g["1"]["inputs"]["family"] = "flux"
    apply_id = next(i for i, n in g.items() if n["class_type"] == "P2PApply")
    g[apply_id]["inputs"]["self_blocks"] = "double 7"
    with pytest.raises(AssertionError, match=r"P2P Apply: self_blocks: this model has no double blocks 7-7 "
                                             r"\(it has double 0-1, single 0-1\)"):
        run_inprocess(g)
