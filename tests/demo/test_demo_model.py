"""The embedded demo model: shipped file intact, loads from ComfyUI's classes, follows colours."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "training"))

from judge import judge, summarise  # noqa: E402
from shapes_dataset import EVAL_CAPTIONS  # noqa: E402
from train_demo import sample  # noqa: E402

from p2p_models.demo_unet import (  # noqa: E402
    DEMO_SHA256,
    DEMO_WEIGHTS,
    load_demo_model,
)
from p2p_models.weights import DemoWeightsError, sha256_of  # noqa: E402

# The fixed set: the 24 captions, 4 rounds (seed 1000 + i + 24 s), 192 objects: the same images as
# train_demo.py's eval. Issue 8's goal is colour >= 0.9. Measured on the shipped checkpoint with exactly
# this procedure (models/demo/README.md): colour 180/192, colour in place 180/192, position 182/192.
# The pins guard those figures; raise them with the checkpoint, never lower them.
GOAL_COLOUR = 0.9
MEASURED = {"colour": 180 / 192, "colour_in_place": 180 / 192, "position": 182 / 192}
ROUNDS, SEED0 = 4, 1000


@pytest.fixture(scope="module")
def demo():
    return load_demo_model()


def test_shipped_file_matches_sha256_and_size():
    assert DEMO_WEIGHTS.is_file()
    assert DEMO_WEIGHTS.stat().st_size <= 20 * 1000 * 1000
    assert sha256_of(DEMO_WEIGHTS) == DEMO_SHA256


def test_damaged_file_is_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    shutil.copy(DEMO_WEIGHTS, bad)
    with open(bad, "r+b") as f:
        f.seek(-16, 2)
        f.write(b"\x00" * 16)
    with pytest.raises(DemoWeightsError, match="sha256"):
        load_demo_model(bad, expected_sha256=DEMO_SHA256)


def test_loads_as_comfy_objects(demo):
    import comfy.model_patcher
    import comfy.sd

    model, clip, vae = demo
    assert isinstance(model, comfy.model_patcher.ModelPatcher)
    assert isinstance(clip, comfy.sd.CLIP)
    assert isinstance(vae, comfy.sd.VAE)
    with torch.inference_mode():
        cond, pooled = clip.encode_from_tokens(clip.tokenize("a red circle above a blue square"), return_pooled=True)
        img = vae.decode(torch.zeros(1, 4, 16, 16))
    assert cond.shape == (1, 77, 128) and torch.isfinite(cond).all()
    assert img.shape == (1, 32, 32, 3)


def test_sampled_images_follow_the_captioned_colours(demo):
    model, clip, vae = demo
    n = len(EVAL_CAPTIONS)
    caps = [cap for _ in range(ROUNDS) for cap in EVAL_CAPTIONS]
    images = sample(model, clip, vae, caps, [SEED0 + i for i in range(len(caps))])  # the training eval's own
    results = [judge(img, cap) for img, cap in zip(images, caps)]
    s = summarise(results)
    print(f"demo model on {n} captions x {ROUNDS} seeds: {s}")
    assert n == 24 and s["colour_n"] == 192
    assert s["colour"] >= GOAL_COLOUR
    for key, value in MEASURED.items():
        assert s[key] >= value - 1e-9, key


def test_decoder_keeps_a_latent_change_local(demo):
    """Local blend keeps the source's latent outside its mask; the decoder must then keep its pixels.
    A quarter-to-half of each latent (from column/row 10 on, each side in turn) is replaced by another
    image's: the decoded pixels at least 4 latent pixels away move by MEASURED_LOCALITY/255 at most
    on average (the decoder before training for locality moved them by 5.5-7.7)."""
    from shapes_dataset import make_dataset
    from train_demo import far_from_side, replace_side  # the training loss's own construction

    _, _, vae = demo
    images = torch.from_numpy(make_dataset(32, seed=4242)[0]).float() / 255
    with torch.inference_mode():
        z = vae.encode(images)
        base = vae.decode(z)
        moved = []
        for side in range(4):
            out = vae.decode(replace_side(z, z.roll(1, 0), side, 10))  # [B, H, W, 3]
            diff = (out - base).abs().mean(-1)
            moved.append(far_from_side(diff, side, 12).mean().item() * 255)
    print(f"decoded change 4+ latent px from the edited region, per side: {[round(m, 2) for m in moved]}")
    assert max(moved) <= MEASURED_LOCALITY


MEASURED_LOCALITY = 2.0  # measured 1.5-1.9
