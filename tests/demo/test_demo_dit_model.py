"""The embedded MM-DiT demo model (a tiny Flux.1-schnell architecture): shipped file intact, built
from ComfyUI's classes, seen as Flux by the engine, draws the captioned colours; and its training
script is one deterministic command (two fresh runs write byte-identical weights)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "training"))

from training_runs import train_twice  # noqa: E402

from p2p_models.demo_dit import (  # noqa: E402
    DIT_DEMO_SHA256,
    DIT_DEMO_WEIGHTS,
    T5_MIN_LENGTH,
    load_demo_dit_model,
)
from p2p_models.weights import DemoWeightsError, sha256_of  # noqa: E402


@pytest.fixture(scope="module")
def demo():
    return load_demo_dit_model()


def test_shipped_file_matches_sha256_and_size():
    assert DIT_DEMO_WEIGHTS.is_file()
    assert DIT_DEMO_WEIGHTS.stat().st_size <= 20 * 1000 * 1000
    assert sha256_of(DIT_DEMO_WEIGHTS) == DIT_DEMO_SHA256


def test_damaged_file_is_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    shutil.copy(DIT_DEMO_WEIGHTS, bad)
    with open(bad, "r+b") as f:
        f.seek(-16, 2)
        f.write(b"\x00" * 16)
    with pytest.raises(DemoWeightsError, match="sha256"):
        load_demo_dit_model(bad, expected_sha256=DIT_DEMO_SHA256)


def test_loads_as_a_flux_model(demo):
    import comfy.latent_formats
    import comfy.model_patcher
    import comfy.sd
    import comfy.supported_models

    from p2p_attention.adapters import model_family
    from p2p_attention.dit_blocks import attention_blocks

    model, clip, vae = demo
    assert isinstance(model, comfy.model_patcher.ModelPatcher)
    assert isinstance(model.model.model_config, comfy.supported_models.FluxSchnell)
    assert isinstance(model.model.latent_format, comfy.latent_formats.Flux)
    assert model_family(model).name == "flux"
    assert attention_blocks(model, model_family(model)) == [("double", 0), ("double", 1), ("single", 0), ("single", 1)]
    assert model.model.diffusion_model.vector_in is None  # text reaches the image through attention only
    assert isinstance(clip, comfy.sd.CLIP) and isinstance(vae, comfy.sd.VAE)
    with torch.inference_mode():
        cond, pooled = clip.encode_from_tokens(clip.tokenize("a red circle above a blue square"), return_pooled=True)
        img = vae.decode(torch.zeros(1, 16, 8, 8))
    assert cond.shape == (1, T5_MIN_LENGTH, 64) and torch.isfinite(cond).all()
    assert img.shape == (1, 32, 32, 3)
    assert vae.latent_channels == 16


def test_words_outside_the_vocabulary_are_unknown(demo):
    from p2p_attention.prompts import tokenize_prompts
    from p2p_attention.vocabulary import unknown_words

    _, clip, _ = demo
    prompt = tokenize_prompts(clip, ["a red cat on the left and a blue square on the right"])[1][0]
    assert unknown_words(clip, prompt) == ["cat"]


def test_sampled_images_follow_the_captioned_colours(demo):
    from dit_eval import generation_figures
    from shapes_dataset import EVAL_CAPTIONS

    model, clip, vae = demo
    s, _ = generation_figures(model, clip, vae, EVAL_CAPTIONS, [1000 + i for i in range(len(EVAL_CAPTIONS))])
    print(f"DiT demo on {len(EVAL_CAPTIONS)} captions: {s}")
    assert s["colour_n"] == 48
    for key, value in MEASURED_GENERATION.items():
        assert s[key] >= value - 1e-9, key


# The training eval's figures of the shipped model (euler 20 steps, cfg 4, seeds 1000 + i):
# models/demo/README.md. Guards: raise them with the checkpoint, never lower them.
MEASURED_GENERATION = {"colour": 1.0, "colour_in_place": 1.0, "position": 1.0}  # 48/48 objects each


# ----------------------------------------------------------------------------- the training script
TINY = ["--fresh", "--n-train", "48", "--vae-steps", "3", "--vae-batch", "4", "--dec-steps", "2", "--dit-steps", "3",
        "--batch", "4",
        "--eval-steps", "2", "--eval-captions", "1", "--ckpt-every", "1"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    return train_twice("train_dit_demo.py", TINY, tmp_path_factory, "train_dit")


def test_two_fresh_runs_write_identical_weights(two_runs):
    a, b = two_runs
    assert a.stat().st_size > 1_000_000
    assert sha256_of(a) == sha256_of(b)


def test_every_stage_ran_and_logged_its_figures(two_runs):
    work = two_runs[0].parent
    log = (work / "log.txt").read_text()
    for line in ("vae trained", "block copies vs stock max diff 0.00e+00", "dit trained", "decoder refined",
                 "exported"):
        assert line in log, line
    # the checkpoint after K steps is saved (== --dit-steps K)
    assert (work / "dit_1steps.pt").is_file() and (work / "dit_2steps.pt").is_file()
    metrics = json.loads((work / "metrics.json").read_text())
    assert metrics["colour_n"] == 2
    assert set(metrics["p2p_effect"]) == {"naive", "p2p", "full injection", "attention"}
    model, clip, vae = load_demo_dit_model(two_runs[0], expected_sha256=sha256_of(two_runs[0]))
    assert model.model.diffusion_model is not None and clip is not None and vae is not None
