"""training/train_demo.py runs every stage end to end and is deterministic: two fresh runs with
the same seed write byte-identical weights (what makes the shipped checkpoint reproducible)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "training"))

from training_runs import train_twice  # noqa: E402

from p2p_models.weights import sha256_of  # noqa: E402

# Every stage, a few steps each (phase 3 and 4 with the attention loss), one eval caption.
TINY = [
    "--fresh", "--n-train", "48", "--vae-steps", "3", "--vae-batch", "4", "--dec-steps", "2",
    "--unet-steps", "3", "--unet-steps2", "2", "--unet-steps3", "2", "--unet-steps4", "2",
    "--batch", "4", "--eval-steps", "2", "--eval-captions", "1", "--ckpt-every", "1",
]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    return train_twice("train_demo.py", TINY, tmp_path_factory, "train")


def test_two_fresh_runs_write_identical_weights(two_runs):
    a, b = two_runs
    assert a.stat().st_size > 1_000_000
    assert sha256_of(a) == sha256_of(b)


def test_every_stage_ran_and_logged_its_figures(two_runs):
    work = two_runs[0].parent
    log = (work / "log.txt").read_text()
    for line in ("vae trained", "unet + text encoder trained", "unet phase 2 trained", "unet phase 3 trained",
                 "unet phase 4 trained", "decoder refined", "exported"):
        assert line in log, line
    # phase 3's checkpoint after 1 step is saved (== --unet-steps3 1); phase 4's likewise
    assert (work / "unet3_1steps.pt").is_file() and (work / "unet4_1steps.pt").is_file()
    metrics = json.loads((work / "metrics.json").read_text())
    assert metrics["n_images"] == 4 and metrics["colour_n"] == 8  # 1 caption x 4 seed rounds
    for key in ("colour", "position", "size", "shape", "attn_own_object_share"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert (work / "eval_grid.png").is_file()


def test_demo_model_loader_reads_the_trained_file(two_runs):
    from p2p_models.demo_unet import load_demo_model

    model, clip, vae = load_demo_model(two_runs[0], expected_sha256=sha256_of(two_runs[0]))
    assert model.model.diffusion_model is not None and clip is not None and vae is not None
