"""Is P2P's effect measurable on the MM-DiT demo model (a tiny Flux.1-schnell architecture)? Naive
edit vs the P2P defaults on 24 colour-swap pairs at two seeds, with the pixel judge (training/judge.py):
- colour: the edited object has the new colour (judge colour_in_place);
- layout IoU: object pixels (judge.object_mask) of the edit vs the source, and the unedited object's;
- local blend: outside the mask the edit equals the source in latent space, and in pixels as far as
  the decoder allows (its reach is measured on the same latents).
The procedure is training/dit_eval.py's (the training eval's own); the figures print as a table and
the assertions are the values this model reaches (models/demo/README.md).
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bounds import fp_bound, last_step_bound

REPO = Path(__file__).resolve().parents[2]
sys.path.append(str(REPO / "training"))


@pytest.fixture(scope="module")
def demo():
    from p2p_models.demo_dit import load_demo_dit_model

    return load_demo_dit_model()


@pytest.fixture(scope="module")
def measured(demo):
    """naive, the P2P defaults, and the defaults with Local Blend on the 24 colour swaps at seeds 0 and 1
    (training/dit_controls.py: the procedure of docs/mmdit_controls.md's table)."""
    import dit_controls
    import dit_eval

    cs = {c.name: c for c in dit_controls.controls()}
    shipped = dit_controls.SHIPPED.name
    chosen = [cs["naive"], cs[shipped], cs[f"{shipped} + local blend"]]
    table = dit_controls.measure(demo, dit_eval.colour_swap_pairs(24), chosen, SEEDS)
    print("\n" + dit_controls.markdown(table))
    return {"naive": table["naive"], "p2p": table[shipped], "p2p + local blend": table[f"{shipped} + local blend"]}


def test_pairs_are_24_colour_swaps():
    import dit_eval

    pairs = dit_eval.colour_swap_pairs(24)
    assert len(pairs) == 24 and all(o != n for _, _, o, n in pairs)
    assert all(len(s.split()) == len(e.split()) for s, e, _, _ in pairs)


def test_the_defaults_keep_the_new_colour_and_more_of_the_image(measured):
    """The goal of the MM-DiT controls: the new colour shown in >= 95% of the edits, and with Local Blend
    a layout IoU >= naive + 0.05. The figures are this model's deterministic ones (docs/mmdit_controls.md),
    pinned so that a change of model or mechanism shows up here."""
    naive, p2p, blend = measured["naive"], measured["p2p"], measured["p2p + local blend"]
    for name, (colour, iou, other) in MEASURED.items():
        assert measured[name]["colour"] == pytest.approx(colour, abs=1 / 48 + 1e-9), name
        assert measured[name]["iou"] == pytest.approx(iou, abs=0.01), name
        assert measured[name]["iou_other"] == pytest.approx(other, abs=0.01), name
    assert p2p["colour"] >= 0.95 and blend["colour"] >= 0.95
    assert blend["iou"] >= naive["iou"] + 0.05 and p2p["iou"] >= naive["iou"] + 0.05
    above = sum(a["iou"] > b["iou"] for a, b in zip(p2p["rows"], naive["rows"]))
    assert above >= 40, above  # measured 44 of 48
    assert p2p["psnr_outside"] >= naive["psnr_outside"] + 2.0  # measured +2.3 dB


def test_the_judges_ceiling_through_this_vae(demo):
    """The best a perfect edit can score: each pair's scene and its exact colour swap drawn by the
    dataset's renderer, through the VAE (lossless would be IoU 1.0 on the renders: 0.974)."""
    import dit_eval

    ceiling = dit_eval.vae_swap_ceiling(demo[2], dit_eval.colour_swap_pairs(24))
    print(f"judge ceiling through the VAE: {ceiling}")
    assert ceiling["iou"] == pytest.approx(MEASURED_VAE_CEILING["iou"], abs=0.01)
    assert ceiling["colour"] == MEASURED_VAE_CEILING["colour"]


def test_object_words_attend_to_their_objects(demo):
    """The source's image->text maps (the engine's store) put each object word's mass on its own object
    well above a uniform map's share (the object's area), and on its own half of the image."""
    import dit_eval

    att = dit_eval.measure_pairs(*demo, dit_eval.colour_swap_pairs(24), [dit_eval.P2P])["attention"]
    assert att["own_object"] >= MEASURED_ATTENTION["own_object_over_area"] * att["area"]
    assert att["own_object"] > att["other_object"]
    assert att["own_half"] >= MEASURED_ATTENTION["own_half"]


def test_local_blend_on_the_dit_demo(demo):
    import dit_eval

    from p2p_attention.blend import make_blend

    model, clip, vae = demo
    src, edit, old, new = dit_eval.colour_swap_pairs(1)[0]
    words = f"{old}, {new}"  # the recoloured object's colour word in the source and in the edit
    out, runtime, _ = dit_eval.run_pair(model, clip, src, edit, dit_eval.P2P,
                                        blend=lambda p: make_blend(p, words, "", 0.3, 0.3, 0.2, 1))
    mask = runtime.store.last_masks[0, 0].cpu().bool()  # [8, 8]: the latent's resolution (patch 1)
    frac = mask.float().mean().item()
    outside = (out[1] - out[0]).abs()[:, ~mask].max().item()
    assert 0 < frac < 1
    assert outside <= last_step_bound(out[0])
    assert (out[1] - out[0]).abs()[:, mask].max().item() > fp_bound(out[0], torch.float32, dit_eval.STEPS)
    # pixels: the decoder's reach. The edit's latent is the source's outside the mask, so its pixels
    # there move only as far as the decoder spreads the change inside; measured on the same pair.
    imgs = dit_eval.to_images(vae, out)
    diff = np.abs(imgs[1].astype(int) - imgs[0].astype(int)).max(-1)
    px_mask = mask.repeat_interleave(4, 0).repeat_interleave(4, 1).numpy()
    from scipy import ndimage

    reach = {d: int(diff[~ndimage.binary_dilation(px_mask, iterations=d)].max()) if d else int(diff[~px_mask].max())
             for d in (0, 4, 8)}
    print(f"local blend on '{words}': mask covers {frac:.0%} of the latent, latent outside max abs diff "
          f"{outside:.1e}; pixels outside the mask dilated by 0/4/8 px, max abs diff /255: {reach}")
    for d, value in MEASURED_PIXEL_REACH.items():
        assert reach[d] <= value, d


SEEDS = (0, 1)
# (new colour shown, layout IoU, unedited object's IoU) on 48 edits, measured on the shipped model
# (docs/mmdit_controls.md; before the MM-DiT controls P2P gave 75% / 0.740 / 0.851).
MEASURED = {"naive": (48 / 48, 0.739, 0.806), "p2p": (47 / 48, 0.802, 0.889),
            "p2p + local blend": (46 / 48, 0.809, 0.908)}
MEASURED_ATTENTION = {"own_object_over_area": 9.5, "own_half": 0.98}  # measured 0.882 / 0.092 = 9.6; 0.983
# /255: the decoder's mid-block attention spans the whole latent. 33/29/29 before the MM-DiT controls, when
# this pair's circle came out a red-green mix: the full recolour now spreads further through the decoder.
MEASURED_PIXEL_REACH = {0: 68, 4: 52, 8: 40}
MEASURED_VAE_CEILING = {"iou": 0.913, "colour": 1.0}
