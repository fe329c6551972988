"""training/train_dit_demo.py --world scenes runs every stage (tiny budgets) and is deterministic: two
fresh runs with the same seed write byte-identical weights (what makes the shipped
p2p_demo_flux_scenes.safetensors reproducible)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

from training_runs import train_twice  # noqa: E402

from p2p_models.weights import sha256_of  # noqa: E402

TINY = [
    "--world", "scenes", "--fresh", "--n-train", "48", "--vae-steps", "3", "--vae-batch", "4", "--dec-steps", "2",
    "--dit-steps", "3", "--batch", "4", "--eval-steps", "2", "--eval-captions", "1", "--eval-pairs", "1",
    "--ckpt-every", "1",
]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    return train_twice("train_dit_demo.py", TINY, tmp_path_factory, "scenes")


def test_two_fresh_runs_write_identical_weights(two_runs):
    a, b = two_runs
    assert a.stat().st_size > 1_000_000
    assert sha256_of(a) == sha256_of(b)


def test_every_stage_ran_and_the_eval_has_every_method(two_runs):
    work = two_runs[0].parent
    log = (work / "log.txt").read_text()
    for line in ("vae trained", "dit trained", "decoder refined", "locality", "exported"):
        assert line in log, line
    edits = json.loads((work / "metrics.json").read_text())["edits"]
    assert len(edits) == 5 and all(r["n"] == 3 for r in edits.values())


def test_scenes_loader_reads_the_trained_file(two_runs):
    from p2p_models.demo_dit import load_demo_scenes_model

    model, clip, vae = load_demo_scenes_model(two_runs[0], expected_sha256=sha256_of(two_runs[0]))
    assert model.model.diffusion_model is not None and clip is not None and vae is not None
