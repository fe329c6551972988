"""`make demo` (scripts/demo.py) end to end: a real ComfyUI server, the demo workflows through
POST /prompt, per-edit PNGs and the contact sheet; P2P leaves the source untouched and changes the
edits; the real-image demo's inversion gives the photo back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DEMOS = {"word_swap": 2, "refine": 1, "reweight": 1, "local_blend": 1}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_out")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "contact_sheet.png  <- open this first" in proc.stdout
    return out


def _px(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def test_every_demo_wrote_source_and_edits_and_the_sheet(demo_out):
    for name, n_edits in DEMOS.items():
        for run in ("naive", "p2p"):
            for label in ["source", *[f"edit{i + 1}" for i in range(n_edits)]]:
                img = _px(demo_out / f"{name}_{run}_{label}.png")
                assert img.shape == (32, 32, 3)
    assert (demo_out / "local_blend_maps_maps.png").is_file() and (demo_out / "local_blend_mask_mask.png").is_file()
    sheet = Image.open(demo_out / "contact_sheet.png")
    assert sheet.width > 500 and sheet.height > 14 * 160


def test_p2p_keeps_the_source_and_changes_the_edits(demo_out):
    for name, n_edits in DEMOS.items():
        naive_src, p2p_src = _px(demo_out / f"{name}_naive_source.png"), _px(demo_out / f"{name}_p2p_source.png")
        # Item 0 is the plain source run: equal up to float32 noise (its attention runs in another batch),
        # far below one grey level, yet SaveImage's truncation to uint8 can turn it into one.
        assert np.abs(naive_src - p2p_src).max() <= 1, name
        for i in range(n_edits):
            p2p_edit = _px(demo_out / f"{name}_p2p_edit{i + 1}.png")
            naive_edit = _px(demo_out / f"{name}_naive_edit{i + 1}.png")
            assert np.abs(p2p_edit - naive_edit).max() > 10, f"{name} edit{i + 1}: P2P changed nothing"


def _vae_round_trip(photo: np.ndarray) -> np.ndarray:
    """The demo VAE's decode(encode(photo)), saved as SaveImage saves (x 255, truncated to uint8)."""
    import torch

    from p2p_models.demo_unet import load_demo_model

    vae = load_demo_model()[2]
    with torch.inference_mode():
        out = vae.decode(vae.encode(torch.from_numpy(photo).float()[None] / 255))[0].numpy()
    return np.clip(255.0 * out, 0, 255).astype(np.uint8).astype(np.int16)


def test_real_image_demo_inverts_the_photo_and_edits_it(demo_out):
    photo = _px(demo_out / "real_image_photo_photo.png")
    assert photo.shape == (32, 32, 3)
    assert (demo_out / "real_image_mask_mask.png").is_file()
    run = {f"{r}_{label}": _px(demo_out / f"real_image_{r}_{label}.png")
           for r in ("naive", "p2p") for label in ("source", "edit1")}
    # Direct inversion holds the source on the inversion path: P2P's source is the photo exactly as the
    # VAE's round trip gives it; the naive run (the same inverted noise, no P2P) drifts at cfg 5.
    trip = _vae_round_trip(photo)
    assert np.abs(run["p2p_source"] - trip).max() <= 1
    assert np.abs(run["naive_source"] - trip).max() > 30
    assert np.abs(run["p2p_edit1"] - run["p2p_source"]).max() > 60, "the edit changed nothing"
    assert np.abs(run["p2p_edit1"] - run["naive_edit1"]).max() > 10


def test_readme_contact_sheet_is_what_make_demo_draws(demo_out):
    """docs/demo_contact_sheet.png (shown in the README) must be regenerated when the demo changes."""
    made, shown = _px(demo_out / "contact_sheet.png"), _px(REPO / "docs" / "demo_contact_sheet.png")
    assert made.shape == shown.shape, "copy demo_out/contact_sheet.png to docs/demo_contact_sheet.png"
    assert np.abs(made - shown).mean() < 1.0, "copy demo_out/contact_sheet.png to docs/demo_contact_sheet.png"
