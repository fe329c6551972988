"""The pack's nodes on a tiny Qwen-Image (p2p_models.tiny_qwen) in real ComfyUI graphs: ModelSamplingAuraFlow
(ComfyUI's Qwen-Image example), the stock samplers (KSampler, KSamplerAdvanced, SamplerCustomAdvanced with
CFGGuider), EmptySD3LatentImage (4-d; the sampler makes it a 1-frame 5-d latent), the Wan 2.1 VAE's decode,
and every control: word swap, refine, reweight, local blend, attention maps."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.torch
import torch
from harness import Graph, inprocess_image_path, output_images, run_inprocess
from PIL import Image

WIDTH, HEIGHT = 96, 64  # latent 12x8, 6x4 = 24 image tokens
SRC = "a red circle on the left"
EDITS = {"swap": "a green circle on the left", "refine": "a big red circle on the left"}


def _graph(sampler: str, mode: str, blend: bool = True) -> Graph:
    g = Graph()
    m = g.node("P2PTestTinyQwenImage", seed=0)
    model = g.node("ModelSamplingAuraFlow", model=m[0], shift=3.1)
    pair = g.node("P2PPromptPair", clip=m[1], source=SRC, edits=EDITS[mode])
    neg = g.node("CLIPTextEncode", clip=m[1], text="")
    lat = g.node("P2PLatentBatch", latent=g.node("EmptySD3LatentImage", width=WIDTH, height=HEIGHT, batch_size=1),
                 prompts=pair[1])
    edit = (g.node("P2PWordSwap", prompts=pair[1], cross_replace="0.8", self_replace="0.5") if mode == "swap"
            else g.node("P2PRefine", prompts=pair[1], cross_replace="0.8", self_replace="0.5"))
    edit = g.node("P2PReweight", prompts=pair[1], weights="circle: 2", cross_replace="0.8", self_replace="0.5",
                  edit=edit)
    if blend:
        edit = g.node("P2PLocalBlend", prompts=pair[1], words="circle", subtract="", threshold=0.5,
                      subtract_threshold=0.3, start_blend=0.0, dilation=0, edit=edit)
    applied = g.node("P2PApply", model=model, edit=edit, self_blocks="auto")
    cfg = 2.5
    common = {"model": applied[0], "positive": pair[0], "negative": neg, "latent_image": lat, "cfg": cfg}
    if sampler == "KSampler":
        out = g.node("KSampler", **common, seed=2, steps=4, sampler_name="euler", scheduler="simple", denoise=1.0)
    elif sampler == "KSamplerAdvanced":
        out = g.node("KSamplerAdvanced", **common, add_noise="enable", noise_seed=2, steps=4, sampler_name="euler",
                     scheduler="beta", start_at_step=0, end_at_step=10000, return_with_leftover_noise="disable")
    else:
        guider = g.node("CFGGuider", model=applied[0], positive=pair[0], negative=neg, cfg=cfg)
        out = g.node("SamplerCustomAdvanced", noise=g.node("RandomNoise", noise_seed=2), guider=guider,
                     sampler=g.node("KSamplerSelect", sampler_name="euler"),
                     sigmas=g.node("BasicScheduler", model=applied[0], scheduler="simple", steps=4, denoise=1.0),
                     latent_image=lat)
    g.node("SaveLatent", _id="lat", samples=out[0], filename_prefix="qwen_p2p")
    img = g.node("VAEDecode", samples=out[0], vae=m[2])
    g.node("SaveImage", _id="img", images=img, filename_prefix="qwen_p2p")
    maps = g.node("P2PAttentionMaps", attention_store=applied[1], samples=out[0], prompt_index=1, words="circle",
                  threshold=0.0, image=img)
    g.node("SaveImage", _id="maps", images=maps[0], filename_prefix="qwen_p2p_maps")
    g.node("SaveImage", _id="mask", images=g.node("MaskToImage", mask=maps[1]), filename_prefix="qwen_p2p_mask")
    return g


def _latent(outputs) -> torch.Tensor:
    (saved,) = outputs["lat"]["latents"]
    return safetensors.torch.load_file(str(inprocess_image_path(saved)))["latent_tensor"]


@pytest.mark.parametrize("sampler,mode", [("KSampler", "swap"), ("KSampler", "refine"),
                                          ("KSamplerAdvanced", "swap"), ("SamplerCustomAdvanced", "refine")])
def test_p2p_nodes_run_on_qwen_image_with_stock_samplers(sampler, mode):
    outputs = run_inprocess(_graph(sampler, mode))
    images = dict(output_images(outputs))
    assert sorted(images) == ["img", "maps", "mask"]
    latent = _latent(outputs)
    assert latent.shape == (2, 16, 1, HEIGHT // 8, WIDTH // 8) and torch.isfinite(latent).all()
    img = np.asarray(Image.open(inprocess_image_path(images["img"])))
    assert img.shape == (HEIGHT, WIDTH, 3)
    mask = np.asarray(Image.open(inprocess_image_path(images["mask"])))
    assert mask.shape[:2] == (HEIGHT, WIDTH) and mask.max() == 255 and mask.std() > 0
    maps = np.asarray(Image.open(inprocess_image_path(images["maps"])))
    assert maps.shape[0] > 0 and maps.std() > 0


def test_the_local_blend_keeps_the_source_outside_its_mask_in_a_graph():
    """With the blend, the edit differs from the source only inside the blend's region; without it,
    everywhere the edit reaches (the same graph otherwise)."""
    blended, free = (_latent(run_inprocess(_graph("KSampler", "swap", blend=b))) for b in (True, False))
    assert torch.equal(blended[0], free[0])  # the source item is the same image
    inside = (blended[1] - blended[0]).abs().amax((0, 1)) > 1e-4  # [H, W] where the blended edit moved
    assert 0 < inside.float().mean() < 1
    assert (free[1] - free[0]).abs().amax((0, 1))[~inside].max() > 1e-3  # the free edit moves there too
