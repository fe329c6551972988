"""The pack's nodes on a tiny Flux.2 dev (p2p_models.tiny_flux2: guidance embedding, Mistral 3 Small on a
tiny tekken vocabulary) in real ComfyUI graphs, on both ComfyUIs: Flux.2's own nodes (EmptyFlux2LatentImage,
FluxGuidance, Flux2Scheduler; ComfyUI has no Flux.2 ModelSampling node: the model's own sampling) with the
stock KSampler and SamplerCustomAdvanced; word swap, refine with prompts of unequal length, reweight, local
blend and attention maps; a photo edit through P2P Invert (direct) and KSamplerAdvanced; the inversions on
the negative branch refused by name with the methods that work."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.torch
import torch
from bounds import last_step_bound
from harness import Graph, inprocess_image_path, output_images, run_inprocess
from PIL import Image

WIDTH, HEIGHT = 96, 64  # latent 128 x 4 x 6: 24 image tokens
SRC = "a red circle on the left"
EDITS = {"swap": "a green circle on the left", "refine": "a big red circle on the left", "reweight": SRC}


def _latent(saved) -> torch.Tensor:
    return safetensors.torch.load_file(str(inprocess_image_path(saved)))["latent_tensor"]


def _graph(sampler: str, control: str) -> Graph:
    g = Graph()
    m = g.node("P2PTestTinyDiTModel", family="flux2_dev", seed=0)
    pair = g.node("P2PPromptPair", clip=m[1], source=SRC, edits=EDITS[control])
    positive = g.node("FluxGuidance", conditioning=pair[0], guidance=4.0)
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
        out = g.node("KSampler", model=applied[0], positive=positive, negative=positive, latent_image=lat, cfg=1.0,
                     seed=2, steps=4, sampler_name="euler", scheduler="simple", denoise=1.0)
    else:
        out = g.node("SamplerCustomAdvanced", noise=g.node("RandomNoise", noise_seed=2),
                     guider=g.node("BasicGuider", model=applied[0], conditioning=positive),
                     sampler=g.node("KSamplerSelect", sampler_name="euler"),
                     sigmas=g.node("Flux2Scheduler", steps=4, width=WIDTH, height=HEIGHT), latent_image=lat)
    g.node("SaveLatent", _id="lat", samples=out[0], filename_prefix="flux2_dev_p2p")
    img = g.node("VAEDecode", samples=out[0], vae=m[2])
    g.node("SaveImage", _id="img", images=img, filename_prefix="flux2_dev_p2p")
    maps = g.node("P2PAttentionMaps", attention_store=applied[1], samples=out[0], prompt_index=1, words="circle",
                  threshold=0.0, image=img)
    g.node("SaveImage", _id="maps", images=maps[0], filename_prefix="flux2_dev_p2p_maps")
    g.node("SaveImage", _id="mask", images=g.node("MaskToImage", mask=maps[1]), filename_prefix="flux2_dev_p2p_mask")
    return g


@pytest.mark.parametrize("sampler,control", [("KSampler", "swap"), ("KSampler", "refine"),
                                             ("KSampler", "reweight"), ("SamplerCustomAdvanced", "refine")])
def test_p2p_nodes_run_on_flux2_dev_with_stock_samplers(sampler, control):
    outputs = run_inprocess(_graph(sampler, control))
    images = dict(output_images(outputs))
    assert sorted(images) == ["img", "maps", "mask"]
    (saved,) = outputs["lat"]["latents"]
    latent = _latent(saved)
    assert latent.shape == (2, 128, HEIGHT // 16, WIDTH // 16) and torch.isfinite(latent).all()
    # (exactness outside the local blend's mask, fast = reference: tests/engine/test_flux2_dev.py)
    assert (latent[1] - latent[0]).abs().max() > 4 * last_step_bound(latent[0])  # the edit is not the source
    mask = np.asarray(Image.open(inprocess_image_path(images["mask"])))  # the word's soft map, peak 1
    assert mask.shape[:2] == (HEIGHT, WIDTH) and mask.max() == 255 and mask.std() > 0
    maps = np.asarray(Image.open(inprocess_image_path(images["maps"])))
    assert maps.shape[0] > 0 and maps.std() > 0


def _photo_graph(method: str) -> Graph:
    g = Graph()
    m = g.node("P2PTestTinyDiTModel", family="flux2_dev", seed=0)
    pair = g.node("P2PPromptPair", clip=m[1], source=SRC, edits=EDITS["refine"])
    positive = g.node("FluxGuidance", conditioning=pair[0], guidance=4.0)
    photo = g.node("VAEEncode", pixels=g.node("EmptyImage", width=WIDTH, height=HEIGHT, batch_size=1, color=0x8040C0),
                   vae=m[2])
    g.node("SaveLatent", _id="photo", samples=photo, filename_prefix="flux2_dev_photo")
    inv = g.node("P2PInvert", model=m[0], prompts=pair[1], negative=g.node("CLIPTextEncode", clip=m[1], text=""),
                 latent=photo, method=method, steps=6, guidance=1.0, inner_iterations=2)
    edit = g.node("P2PRefine", prompts=pair[1], cross_replace="0.8", self_replace="0.4")
    applied = g.node("P2PApply", model=m[0], edit=edit, inversion=inv[1])
    out = g.node("KSamplerAdvanced", model=applied[0], positive=positive, negative=positive,
                 latent_image=g.node("P2PLatentBatch", latent=inv[0], prompts=pair[1]), add_noise="disable",
                 noise_seed=1, steps=6, cfg=1.0, sampler_name="euler", scheduler="simple", start_at_step=0,
                 end_at_step=10000, return_with_leftover_noise="disable")
    g.node("SaveLatent", _id="lat", samples=out, filename_prefix="flux2_dev_edit")
    return g


def test_a_photo_edit_through_p2p_invert_reconstructs_the_source_item():
    """direct inversion under the Prompt Pair's source (FluxGuidance 4 when sampling: direct inversion
    corrects the source's prediction at sampling time): the source item is the photo's latent."""
    outputs = run_inprocess(_photo_graph("direct"))
    photo = _latent(outputs["photo"]["latents"][0])
    latent = _latent(outputs["lat"]["latents"][0])
    assert latent.shape == (2, *photo.shape[1:])
    assert (latent[0] - photo[0]).abs().max() <= last_step_bound(photo)
    assert (latent[1] - latent[0]).abs().max() > 4 * last_step_bound(photo)


@pytest.mark.parametrize("method", ["null_text", "negative_prompt"])
def test_the_negative_branch_inversions_are_refused_with_the_methods_that_work(method):
    with pytest.raises(AssertionError) as e:
        run_inprocess(_photo_graph(method))
    msg = str(e.value)
    assert "P2P Invert: " in msg and f"method {method} works on the unconditional" in msg and "Flux.2 dev" in msg
    assert all(m in msg for m in ("direct", "fixed_point", "ddim")), msg
