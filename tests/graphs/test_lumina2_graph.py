"""The pack's nodes on the tiny Lumina 2 (p2p_models.tiny_lumina2) in a real ComfyUI graph, as ComfyUI's
Lumina 2 example samples it: ModelSamplingAuraFlow (shift 6), the stock samplers (KSampler with euler and
res_multistep, SamplerCustomAdvanced), cfg 4, the negative through ComfyUI's CLIP Text Encode (Lumina 2);
the Prompt Pair's source written as that node encodes it ('<system prompt> <Prompt Start> <prompt>'), the
edit without the system prompt; word swap + reweight + local blend + attention maps, the edit equal to
the source outside the local blend's mask, and the error a graph that keeps the node as its positive gets."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.torch
import torch
from harness import Graph, inprocess_image_path, output_images, run_inprocess
from PIL import Image

WIDTH, HEIGHT = 96, 64
SYSTEM = ("You are an assistant designed to generate superior images with the superior degree of image-text "
          "alignment based on textual prompts or user prompts.")
USER = "a red circle on the left"
SRC = f"{SYSTEM} <Prompt Start> {USER}"
EDIT = "a green circle on the left"


def _graph(blend: bool = True, sampler: str = "euler", custom: bool = False, node_positive: bool = False) -> Graph:
    g = Graph()
    m = g.node("P2PTestTinyDiTModel", family="lumina2", seed=0)
    model = g.node("ModelSamplingAuraFlow", model=m[0], shift=6.0)
    pair = g.node("P2PPromptPair", clip=m[1], source=SRC, edits=EDIT)
    neg = g.node("CLIPTextEncodeLumina2", clip=m[1], system_prompt="superior", user_prompt="blurry")
    positive = (g.node("CLIPTextEncodeLumina2", clip=m[1], system_prompt="superior", user_prompt=USER)
                if node_positive else pair[0])
    lat = g.node("P2PLatentBatch", latent=g.node("EmptySD3LatentImage", width=WIDTH, height=HEIGHT, batch_size=1),
                 prompts=pair[1])
    edit = g.node("P2PWordSwap", prompts=pair[1], cross_replace="0.8", self_replace="0.5")
    edit = g.node("P2PReweight", prompts=pair[1], weights="green: 2", cross_replace="0.8", self_replace="0.5",
                  edit=edit)
    if blend:
        edit = g.node("P2PLocalBlend", prompts=pair[1], words="circle", subtract="", threshold=0.5,
                      subtract_threshold=0.3, start_blend=0.0, dilation=0, edit=edit)
    applied = g.node("P2PApply", model=model, edit=edit, self_blocks="auto")
    if custom:
        guider = g.node("CFGGuider", model=applied[0], positive=positive, negative=neg, cfg=4.0)
        sigmas = g.node("BasicScheduler", model=applied[0], scheduler="simple", steps=4, denoise=1.0)
        out = g.node("SamplerCustomAdvanced", noise=g.node("RandomNoise", noise_seed=2), guider=guider,
                     sampler=g.node("KSamplerSelect", sampler_name=sampler), sigmas=sigmas, latent_image=lat)
    else:
        out = g.node("KSampler", model=applied[0], positive=positive, negative=neg, latent_image=lat, cfg=4.0,
                     seed=2, steps=4, sampler_name=sampler, scheduler="simple", denoise=1.0)
    g.node("SaveLatent", _id="lat", samples=out[0], filename_prefix="lumina2_p2p")
    img = g.node("VAEDecode", samples=out[0], vae=m[2])
    g.node("SaveImage", _id="img", images=img, filename_prefix="lumina2_p2p")
    maps = g.node("P2PAttentionMaps", attention_store=applied[1], samples=out[0], prompt_index=1, words="circle",
                  threshold=0.0, image=img)
    g.node("SaveImage", _id="maps", images=maps[0], filename_prefix="lumina2_p2p_maps")
    g.node("SaveImage", _id="mask", images=g.node("MaskToImage", mask=maps[1]), filename_prefix="lumina2_p2p_mask")
    return g


def _latent(outputs) -> torch.Tensor:
    (saved,) = outputs["lat"]["latents"]
    return safetensors.torch.load_file(str(inprocess_image_path(saved)))["latent_tensor"]


@pytest.mark.parametrize("sampler, custom", [("euler", False), ("res_multistep", False), ("euler", True)])
def test_p2p_nodes_run_on_lumina2_with_the_stock_samplers_and_aura_flow_sampling(sampler, custom):
    outputs = run_inprocess(_graph(sampler=sampler, custom=custom))
    images = dict(output_images(outputs))
    assert sorted(images) == ["img", "maps", "mask"]
    latent = _latent(outputs)
    assert latent.shape == (2, 16, HEIGHT // 8, WIDTH // 8) and torch.isfinite(latent).all()
    diff = (latent[1] - latent[0]).abs()
    mask = np.asarray(Image.open(inprocess_image_path(images["mask"])).convert("L"))
    assert mask.shape == (HEIGHT, WIDTH) and mask.max() == 255 and mask.std() > 0
    unblended = _latent(run_inprocess(_graph(blend=False, sampler=sampler, custom=custom)))
    assert (unblended[1] - unblended[0]).abs().max() > 0.05  # without the blend the edit changes the image
    # the local blend's mask is binary at the latent's 8x12 cells: each cell is either the source's, up to
    # the last step's float32 rounding, or the edit's own (the engine test reads the mask itself)
    cell = diff.amax(0)
    kept = cell <= 1e-5 * latent.abs().max()
    assert 0 < float(kept.float().mean()) < 1
    assert cell[~kept].min() > 1e-3


def test_a_positive_from_comfyuis_lumina2_node_is_refused_with_the_fix():
    with pytest.raises(AssertionError, match=r"P2P Apply: the sampler's positive conditioning does not come from the "
                                             r"prompts .*in place of CLIP Text Encode \(Lumina 2\).*<Prompt Start>"):
        run_inprocess(_graph(blend=False, node_positive=True))
