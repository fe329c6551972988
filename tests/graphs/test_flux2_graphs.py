"""The pack's nodes on a tiny Flux.2 klein (p2p_models.tiny_flux2) in real ComfyUI graphs: the stock
KSampler and SamplerCustomAdvanced with Flux.2's own nodes (EmptyFlux2LatentImage, Flux2Scheduler),
word swap, refine, reweight, local blend and attention maps; the edit differs from the source. ComfyUI 0.3.75 has no klein text encoder: skipped there."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.torch
import torch
from bounds import last_step_bound
from harness import Graph, inprocess_image_path, output_images, run_inprocess
from PIL import Image

from p2p_models.tiny_flux2 import klein_available

pytestmark = pytest.mark.skipif(not klein_available(), reason="this ComfyUI (0.3.75) has no Flux.2 klein text encoder")

WIDTH, HEIGHT = 96, 64  # latent 128 x 4 x 6: 24 image tokens
SRC = "a red circle on the left"


def _graph(sampler: str, control: str) -> Graph:
    g = Graph()
    m = g.node("P2PTestTinyDiTModel", family="flux2_klein", seed=0)
    edits = {"swap": "a green circle on the left", "refine": "a big red circle on the left",
             "reweight": SRC}[control]
    pair = g.node("P2PPromptPair", clip=m[1], source=SRC, edits=edits)
    lat = g.node("P2PLatentBatch", latent=g.node("EmptyFlux2LatentImage", width=WIDTH, height=HEIGHT, batch_size=1),
                 prompts=pair[1])
    if control == "swap":
        edit = g.node("P2PWordSwap", prompts=pair[1], cross_replace="0.8", self_replace="0.5")
    elif control == "refine":
        edit = g.node("P2PRefine", prompts=pair[1], cross_replace="0.8", self_replace="0.5")
    else:
        edit = g.node("P2PReweight", prompts=pair[1], weights="red: 3", cross_replace="0.8", self_replace="0.5")
    edit = g.node("P2PLocalBlend", prompts=pair[1], words="circle", subtract="", threshold=0.5,
                  subtract_threshold=0.3, start_blend=0.0, dilation=0, edit=edit)
    applied = g.node("P2PApply", model=m[0], edit=edit, self_blocks="auto")
    if sampler == "KSampler":
        out = g.node("KSampler", model=applied[0], positive=pair[0], negative=pair[0], latent_image=lat, cfg=1.0,
                     seed=2, steps=4, sampler_name="euler", scheduler="simple", denoise=1.0)
    else:
        out = g.node("SamplerCustomAdvanced", noise=g.node("RandomNoise", noise_seed=2),
                     guider=g.node("BasicGuider", model=applied[0], conditioning=pair[0]),
                     sampler=g.node("KSamplerSelect", sampler_name="euler"),
                     sigmas=g.node("Flux2Scheduler", steps=4, width=WIDTH, height=HEIGHT), latent_image=lat)
    g.node("SaveLatent", _id="lat", samples=out[0], filename_prefix="flux2_p2p")
    img = g.node("VAEDecode", samples=out[0], vae=m[2])
    g.node("SaveImage", _id="img", images=img, filename_prefix="flux2_p2p")
    maps = g.node("P2PAttentionMaps", attention_store=applied[1], samples=out[0], prompt_index=1, words="circle",
                  threshold=0.0, image=img)
    g.node("SaveImage", _id="maps", images=maps[0], filename_prefix="flux2_p2p_maps")
    g.node("SaveImage", _id="mask", images=g.node("MaskToImage", mask=maps[1]), filename_prefix="flux2_p2p_mask")
    return g


@pytest.mark.parametrize("sampler,control", [("KSampler", "swap"), ("KSampler", "refine"),
                                             ("KSampler", "reweight"), ("SamplerCustomAdvanced", "swap")])
def test_p2p_nodes_run_on_flux2_klein_with_stock_samplers(sampler, control):
    outputs = run_inprocess(_graph(sampler, control))
    images = dict(output_images(outputs))
    assert sorted(images) == ["img", "maps", "mask"]
    (saved,) = outputs["lat"]["latents"]
    latent = safetensors.torch.load_file(str(inprocess_image_path(saved)))["latent_tensor"]
    assert latent.shape == (2, 128, HEIGHT // 16, WIDTH // 16) and torch.isfinite(latent).all()
    diff = (latent[1] - latent[0]).abs()
    # (exactness outside the local blend's mask: tests/engine/test_flux2.py)
    assert diff.max() > 4 * last_step_bound(latent[0])  # the edit is not the source (a random model: weak text)
    mask = np.asarray(Image.open(inprocess_image_path(images["mask"])))  # the word's soft map, peak 1
    assert mask.shape[:2] == (HEIGHT, WIDTH) and mask.max() == 255 and mask.std() > 0
    maps = np.asarray(Image.open(inprocess_image_path(images["maps"])))
    assert maps.shape[0] > 0 and maps.std() > 0
