"""Is P2P's effect measurable on the MM-DiT demo model (a tiny Flux.1-schnell architecture)? Naive
edit vs P2P on 24 colour-swap pairs, with the pixel judge (training/judge.py), as
tests/test_demo_p2p_effect.py does on the SD1 demo:
- colour: the edited object has the new colour (judge colour_in_place);
- layout IoU: object pixels (judge.object_mask) of the edit vs the source;
- full injection (every map from the source: cross 1, self 1 in every block): the ceiling;
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

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "training"))


@pytest.fixture(scope="module")
def demo():
    from p2p_attention.demo_dit_model import load_demo_dit_model

    return load_demo_dit_model()


@pytest.fixture(scope="module")
def measured(demo):
    import dit_eval

    pairs = dit_eval.colour_swap_pairs(24)
    table = dit_eval.measure_pairs(*demo, pairs, [dit_eval.NAIVE, dit_eval.P2P, dit_eval.FULL])
    p2p = dit_eval.P2P
    print(f"\n{len(pairs)} colour-swap pairs, {dit_eval.SAMPLER} {dit_eval.STEPS} steps, cfg {dit_eval.CFG}; P2P: "
          f"cross {p2p.cross}, self {p2p.self_} in blocks '{p2p.self_blocks}'")
    print("| run | colour swap recognised | layout IoU (source vs edit) |")
    print("|---|---|---|")
    for name in ("naive", "p2p", "full injection"):
        print(f"| {name} | {table[name]['colour']:.0%} | {table[name]['iou']:.3f} |")
    print("source's object-word attention:", {k: round(v, 3) for k, v in table["attention"].items()})
    return table


def test_pairs_are_24_colour_swaps():
    import dit_eval

    pairs = dit_eval.colour_swap_pairs(24)
    assert len(pairs) == 24 and all(o != n for _, _, o, n in pairs)
    assert all(len(s.split()) == len(e.split()) for s, e, _, _ in pairs)


def test_figures_are_what_the_shipped_model_reaches(measured):
    """The goal: P2P colour >= 90% and layout IoU >= 0.9, clearly above naive. The pins are this
    model's deterministic figures, so that a change of model or mechanism shows up here."""
    for name, (acc, iou) in MEASURED.items():
        assert measured[name]["colour"] == pytest.approx(acc, abs=1 / 24 + 1e-9), name
        assert measured[name]["iou"] == pytest.approx(iou, abs=0.02), name
    p2p, naive = measured["p2p"], measured["naive"]
    goal_met = p2p["colour"] >= 0.9 and p2p["iou"] >= 0.9 and p2p["iou"] > naive["iou"]
    print(f"goal met: {goal_met}")


def test_the_judges_ceiling_through_this_vae(demo):
    """The best a perfect edit can score: each pair's scene and its exact colour swap drawn by the
    dataset's renderer, through the VAE (lossless would be IoU 1.0 on the renders: 0.974)."""
    import dit_eval

    ceiling = dit_eval.vae_swap_ceiling(demo[2], dit_eval.colour_swap_pairs(24))
    print(f"judge ceiling through the VAE: {ceiling}")
    assert ceiling["iou"] == pytest.approx(MEASURED_VAE_CEILING["iou"], abs=0.01)
    assert ceiling["colour"] == MEASURED_VAE_CEILING["colour"]


def test_object_words_attend_to_their_objects(measured):
    """The source's image->text maps (the engine's store) put each object word's mass on its own object
    well above a uniform map's share (the object's area), and on its own half of the image."""
    att = measured["attention"]
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


# (colour swap recognised, mean layout IoU) measured on the shipped model; README shows the table.
# Not the goal: P2P is no better than the naive edit here (its colour swap ends as a mix of the two colours
# in 9 of 24 pairs, and the duller object loses pixels in the judge's mask), full injection no better.
MEASURED = {"naive": (24 / 24, 0.754), "p2p": (15 / 24, 0.744), "full injection": (15 / 24, 0.710)}
MEASURED_ATTENTION = {"own_object_over_area": 9.5, "own_half": 0.98}  # measured 0.882 / 0.092 = 9.6; 0.983
MEASURED_PIXEL_REACH = {0: 33, 4: 29, 8: 29}  # /255: the decoder's mid-block attention spans the whole latent
MEASURED_VAE_CEILING = {"iou": 0.913, "colour": 1.0}
