"""The family templates on separate model files (`p2p_dit_*`): the ComfyUI each one needs (template_order.MIN_COMFYUI,
the one declaration the template tests, the listing and the browser test read), and what the templates take from
ComfyUI's own template of each family (the comfyui-workflow-templates package ComfyUI 0.33.0 installs), run on the
tiny models in-process.

- Flux.2 klein needs ComfyUI 0.9.2 (its Qwen3 text encoder): the declaration agrees with what the ComfyUI under test
  has (0.33.0: it, 0.3.75: not), the listing leaves the template out where it cannot run, and on 0.33.0 its tiny
  version samples an edit through ComfyUI's Flux.2 nodes (EmptyFlux2LatentImage, Flux2Scheduler,
  SamplerCustomAdvanced with CFGGuider).
- Flux.2 dev runs on both ComfyUIs (its Mistral 3 Small text encoder and the Flux.2 nodes are in 0.3.75): no declared
  minimum; its tiny version samples an edit through ComfyUI's Flux.2 dev example's nodes (FluxGuidance on the prompts,
  BasicGuider at cfg 1, no negative).
- Lumina 2 runs on both ComfyUIs (CLIP Text Encode (Lumina 2) and its Gemma 2 text encoder are in 0.3.75): no declared
  minimum; its tiny version samples an edit as ComfyUI's Lumina 2 example samples (shift 6, res_multistep at cfg 4),
  the source written with that example's system prompt, the negative through CLIP Text Encode (Lumina 2).
- Chroma's T5 Tokenizer Options 0 / 0, as ComfyUI's Chroma example: it changes nothing on Chroma's unpadded T5 (the
  template's note says "no padding"), measured by sampling the template with and without the node.
"""

from __future__ import annotations

import copy
import importlib.util
import random
import re

import numpy as np
import pytest
import safetensors.torch
import tomllib
import torch
from bounds import last_step_bound
from harness import inprocess_image_path, output_images, run_inprocess
from PIL import Image
from workflow_util import (
    REPO,
    WORKFLOWS,
    comfyui_version,
    load_api,
    load_ui,
    template_params,
    tiny_api,
    unavailable_reason,
)

from p2p_models.tiny_flux2 import klein_available

KLEIN = "p2p_dit_flux2klein_blend"
FLUX2_DEV = "p2p_dit_flux2dev_blend"
LUMINA2 = "p2p_dit_lumina2_blend"


def _order_module():
    spec = importlib.util.spec_from_file_location("p2p_template_order_t", REPO / "template_order.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_declared_minimum_names_a_template_and_is_newer_than_the_pack_s():
    order = _order_module()
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["comfy"]["requires-comfyui"]
    pack_min = order.version_tuple(requires.removeprefix(">="))
    assert order.MIN_COMFYUI, "no template declares a minimum"
    for name, (version, why) in order.MIN_COMFYUI.items():
        assert name in WORKFLOWS, name
        assert version > pack_min and why.strip(), (name, version, pack_min)
        # the template's note and the README say it
        note = next(n["widgets_values"][0] for n in load_ui(name)["nodes"] if n["type"] == "MarkdownNote")
        shown = ".".join(map(str, version))
        assert f"ComfyUI {shown} or newer" in note, note
        assert re.search(rf"`{name}` \([^)]*ComfyUI {re.escape(shown)} or newer", (REPO / "README.md").read_text())


def test_the_klein_minimum_agrees_with_this_comfyui():
    """The declared version is right for the ComfyUI under test: 0.33.0 has klein's text encoder and runs the
    template, 0.3.75 has neither."""
    reason = unavailable_reason(KLEIN)
    assert (reason is None) == klein_available(), (comfyui_version(), reason)
    if reason is not None:
        assert "needs ComfyUI 0.9.2 or newer" in reason and "text encoder" in reason, reason


@pytest.mark.parametrize("version,hidden", [((0, 3, 75), True), ((0, 9, 1), True), ((0, 9, 2), False),
                                            ((0, 33, 0), False), (None, False)])
def test_the_listing_leaves_out_what_a_comfyui_cannot_run(version, hidden):
    """The middleware's rewrite of GET /workflow_templates: this pack's entry sorted and without the templates that
    version cannot run; another pack's entry untouched (an unknown version hides nothing)."""
    order = _order_module()
    ours = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
    shuffled = ours[:]
    random.Random(0).shuffle(shuffled)
    other = ["b_template", "a_template"]
    out = order.sorted_listing({"comfyui-prompt-to-prompt": shuffled, "other-pack": other}, version)
    want = order.template_order(n for n in ours if not (hidden and n == KLEIN))
    assert out["comfyui-prompt-to-prompt"] == want and out["other-pack"] == other
    assert (KLEIN in out["comfyui-prompt-to-prompt"]) is not hidden
    assert order.sorted_listing({"comfyui-prompt-to-prompt": want}, version) is None  # nothing left to change


@pytest.mark.parametrize("text,want", [("0.3.75", (0, 3, 75)), ("0.33.0", (0, 33, 0)), ("0.9.2rc1", (0, 9, 2)),
                                       ("1.0", (1, 0))])
def test_version_parsing(text, want):
    assert _order_module().version_tuple(text) == want


def _with_latent_and_mask(api: dict) -> dict:
    """The tiny API with the sampler's LATENT and the mask preview saved (SaveLatent, SaveImage)."""
    out = copy.deepcopy(api)
    sampler = next(nid for nid, n in out.items() if n["class_type"] in ("KSampler", "SamplerCustomAdvanced"))
    out["900"] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler, 0], "filename_prefix": "family_tpl"}}
    mask = next(nid for nid, n in out.items() if n["class_type"] == "MaskToImage")
    out["901"] = {"class_type": "SaveImage", "inputs": {"images": [mask, 0], "filename_prefix": "family_tpl_mask"}}
    return out


def _latent(outputs: dict) -> torch.Tensor:
    (saved,) = outputs["900"]["latents"]
    return safetensors.torch.load_file(str(inprocess_image_path(saved)))["latent_tensor"]


def _sampled(graph: dict, shape: tuple) -> tuple[dict, torch.Tensor]:
    """Run the tiny graph; its latent (source + one edit at 64 px) has this shape and is finite."""
    outputs = run_inprocess(graph)
    latent = _latent(outputs)
    assert latent.shape == shape and torch.isfinite(latent).all()
    return outputs, latent


def _assert_word_map(outputs: dict):
    """The mask preview is the blend word's map: 64 px, peak 1 (255), not flat."""
    mask = np.asarray(Image.open(inprocess_image_path(dict(output_images(outputs))["901"])))
    assert mask.shape[:2] == (64, 64) and mask.max() == 255 and mask.std() > 0


@pytest.mark.parametrize("name", template_params([KLEIN]))
def test_klein_template_samples_an_edit_with_comfyui_s_flux2_nodes(name):
    api = load_api(name)
    types = {n["class_type"] for n in api.values()}
    # ComfyUI's Flux.2 klein example's loaders and sampling nodes
    assert {"UNETLoader", "CLIPLoader", "VAELoader", "EmptyFlux2LatentImage", "Flux2Scheduler", "CFGGuider",
            "KSamplerSelect", "RandomNoise", "SamplerCustomAdvanced"} <= types and "KSampler" not in types
    clip = next(n for n in api.values() if n["class_type"] == "CLIPLoader")["inputs"]
    assert (clip["clip_name"], clip["type"]) == ("qwen_3_4b.safetensors", "flux2")
    outputs, latent = _sampled(_with_latent_and_mask(tiny_api(api, WORKFLOWS[name])), (2, 128, 4, 4))  # 16x
    assert (latent[1] - latent[0]).abs().max() > 1e-3  # the edit is not the source
    _assert_word_map(outputs)


def test_flux2_dev_needs_no_newer_comfyui():
    """Flux.2 dev's text encoder (CLIPLoader type flux2 on Mistral 3 Small) and nodes are in both ComfyUIs under test:
    no declared minimum, listed and run everywhere."""
    assert FLUX2_DEV not in _order_module().MIN_COMFYUI and unavailable_reason(FLUX2_DEV) is None


@pytest.mark.parametrize("name", template_params([FLUX2_DEV]))
def test_flux2_dev_template_samples_an_edit_with_comfyui_s_flux2_dev_nodes(name):
    api = load_api(name)
    types = {n["class_type"] for n in api.values()}
    # ComfyUI's Flux.2 dev example's loaders and sampling nodes: guidance-distilled, FluxGuidance and BasicGuider
    assert {"UNETLoader", "CLIPLoader", "VAELoader", "EmptyFlux2LatentImage", "Flux2Scheduler", "FluxGuidance",
            "BasicGuider", "KSamplerSelect", "RandomNoise", "SamplerCustomAdvanced"} <= types
    assert not types & {"KSampler", "CFGGuider", "CLIPTextEncode", "ConditioningZeroOut"}  # no negative at cfg 1
    clip = next(n for n in api.values() if n["class_type"] == "CLIPLoader")["inputs"]
    assert (clip["clip_name"], clip["type"]) == ("mistral_3_small_flux2_bf16.safetensors", "flux2")
    guidance = next(n for n in api.values() if n["class_type"] == "FluxGuidance")["inputs"]
    pair = next(nid for nid, n in api.items() if n["class_type"] == "P2PPromptPair")
    assert guidance["conditioning"] == [pair, 0] and guidance["guidance"] == 4.0
    tiny = _with_latent_and_mask(tiny_api(api, WORKFLOWS[name]))
    outputs, latent = _sampled(tiny, (2, 128, 4, 4))  # 16x
    # The edit is not the source. The tiny Mistral's one changed word among ~140 tokens (its system prompt, rare words
    # byte by byte) moves the random model's latent little (~4e-5), so measured against the same graph with the edit
    # prompt = the source (the items then differ by rounding alone) and against the last step's rounding bound.
    same = copy.deepcopy(tiny)
    pair = next(n for n in same.values() if n["class_type"] == "P2PPromptPair")["inputs"]
    pair["edits"] = pair["source"]
    next(n for n in same.values() if n["class_type"] == "P2PLocalBlend")["inputs"]["words"] = "cat"
    rounding = _latent(run_inprocess(same))
    moved = (latent[1] - latent[0]).abs().max()
    assert moved > 4 * last_step_bound(latent[0]) and moved > 20 * (rounding[1] - rounding[0]).abs().max(), moved
    _assert_word_map(outputs)


def test_lumina2_needs_no_newer_comfyui():
    """Lumina 2's text encoder (CLIPLoader type lumina2 on Gemma 2 2B) and CLIP Text Encode (Lumina 2) are in both
    ComfyUIs under test: no declared minimum, listed and run everywhere."""
    assert LUMINA2 not in _order_module().MIN_COMFYUI and unavailable_reason(LUMINA2) is None


@pytest.mark.parametrize("name", template_params([LUMINA2]))
def test_lumina2_template_samples_an_edit_as_comfyui_s_lumina2_example(name):
    """ComfyUI's Lumina 2 example's files, shift 6, res_multistep / simple at cfg 4 and its system prompt: the
    Prompt Pair's source written as CLIP Text Encode (Lumina 2) writes a prompt, the negative through that node."""
    from comfy_extras.nodes_lumina2 import CLIPTextEncodeLumina2

    api = load_api(name)
    by_type = {n["class_type"]: n["inputs"] for n in api.values()}
    clip = by_type["CLIPLoader"]
    assert (by_type["UNETLoader"]["unet_name"], clip["clip_name"], clip["type"], by_type["VAELoader"]["vae_name"]) == (
        "lumina_2_model_bf16.safetensors", "gemma_2_2b_fp16.safetensors", "lumina2", "ae.safetensors")
    assert by_type["ModelSamplingAuraFlow"]["shift"] == 6.0
    ks = by_type["KSampler"]
    assert (ks["sampler_name"], ks["scheduler"], ks["cfg"]) == ("res_multistep", "simple", 4.0)
    neg = by_type["CLIPTextEncodeLumina2"]
    pair = by_type["P2PPromptPair"]
    system = CLIPTextEncodeLumina2.SYSTEM_PROMPT[neg["system_prompt"]]
    assert pair["source"].startswith(f"{system} <Prompt Start> ") and "<Prompt Start>" not in pair["edits"]
    outputs, latent = _sampled(_with_latent_and_mask(tiny_api(api, WORKFLOWS[name])), (2, 16, 8, 8))  # 8x
    assert (latent[1] - latent[0]).abs().max() > 1e-3  # the edit is not the source
    _assert_word_map(outputs)


@pytest.mark.parametrize("name", template_params(["p2p_dit_chroma_blend"]))
def test_chroma_tokenizer_options_as_comfyui_s_example_change_nothing(name):
    """T5 Tokenizer Options 0 / 0 (ComfyUI's Chroma example) sets no padding on a T5 that pads nothing: the
    template samples the same latents to the bit with the node taken out (its consumers on CLIPLoader's CLIP)."""
    api = tiny_api(load_api(name), WORKFLOWS[name])
    (opts,) = [nid for nid, n in api.items() if n["class_type"] == "T5TokenizerOptions"]
    assert {k: v for k, v in api[opts]["inputs"].items() if not isinstance(v, list)} == {"min_padding": 0,
                                                                                          "min_length": 0}
    without = copy.deepcopy(api)
    source = without.pop(opts)["inputs"]["clip"]
    for node in without.values():
        for key, v in node["inputs"].items():
            if v == [opts, 0]:
                node["inputs"][key] = source
    a = _latent(run_inprocess(_with_latent_and_mask(api)))
    b = _latent(run_inprocess(_with_latent_and_mask(without)))
    assert a.shape[0] == 2 and (a[1] - a[0]).abs().max() > 0
    assert torch.equal(a, b)
