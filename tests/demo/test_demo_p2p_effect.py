"""Is P2P's effect measurable on the demo model? Naive edit vs P2P on a fixed set of caption pairs.

For each of 24 captions the first object's colour is swapped (red -> green, ...). Naive: the same
batch with shared noise, no P2P. P2P: Word Swap. Measured by the pixel judge (training/judge.py):
- colour: the edited object has the new colour;
- layout IoU: object pixels (judge.object_mask: brighter than any background, any colour) of
  the edit vs the source;
- local blend: outside the mask the edit equals the source.
The figures print as a table; the assertions are the values this model reaches (see README).
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bounds import fp_bound, last_step_bound
from sampling import encode, sample

REPO = Path(__file__).resolve().parents[2]
sys.path.append(str(REPO / "training"))

STEPS, CFG, SEED = 20, 5.0, 0
CROSS, SELF = "0.8", "0.6"


def _pairs():
    from shapes_dataset import COLOURS, EVAL_CAPTIONS

    names = list(COLOURS)
    pairs = []
    for i, cap in enumerate(EVAL_CAPTIONS[:24]):
        words = cap.split()
        k = next(j for j, w in enumerate(words) if w in COLOURS)
        other = next(w for w in words[k + 1:] if w in COLOURS)
        new = next(c for c in names[(names.index(words[k]) + 1 + i % 3):] + names
                   if c not in (words[k], other))
        pairs.append((cap, " ".join(words[:k] + [new] + words[k + 1:]), words[k], new))
    return pairs


def _iou(a, b) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def _decode(vae, latent):
    with torch.inference_mode():
        return vae.decode(latent).cpu().numpy()


@pytest.fixture(scope="module")
def demo():
    from p2p_models.demo_unet import load_demo_model

    return load_demo_model()


@pytest.fixture(scope="module")
def measured(demo):
    from judge import judge, object_mask

    from p2p_attention.apply import apply_edit
    from p2p_attention.conditioning import encode_prompt_set, latent_batch
    from p2p_attention.edits import make_plan

    model, clip, vae = demo
    neg = encode(clip, "")
    rows = []
    for src, edit, _old, _new in _pairs():
        cond, prompts = encode_prompt_set(clip, src, [edit])
        lat = latent_batch({"samples": torch.zeros(1, 4, 16, 16)}, 2)
        naive = _decode(vae, sample(model, cond, neg, lat, sampler="ddim", scheduler="ddim_uniform",
                                    steps=STEPS, cfg=CFG, seed=SEED))
        plan = make_plan(prompts, None, "swap", CROSS, SELF)
        patched, _ = apply_edit(model, plan, self_attn_min_downsample=1)
        p2p = _decode(vae, sample(patched, cond, neg, lat, sampler="ddim", scheduler="ddim_uniform",
                                  steps=STEPS, cfg=CFG, seed=SEED))
        row = {"pair": (src, edit)}
        for name, imgs in (("naive", naive), ("p2p", p2p)):
            judged = judge(imgs[1], edit)
            row[f"{name}_colour"] = bool(judged[0]["colour_in_place"])
            row[f"{name}_iou"] = _iou(object_mask(imgs[0]), object_mask(imgs[1]))
        rows.append(row)
    n = len(rows)
    table = {
        name: (sum(r[f"{name}_colour"] for r in rows) / n, float(np.mean([r[f"{name}_iou"] for r in rows])))
        for name in ("naive", "p2p")
    }
    print(f"\n{n} colour-swap pairs, ddim {STEPS} steps, cfg {CFG}, cross {CROSS}, self {SELF}")
    print("| run | colour swap recognised | layout IoU (source vs edit) |")
    print("|---|---|---|")
    for name, (acc, iou) in table.items():
        print(f"| {name} | {acc:.0%} | {iou:.3f} |")
    return rows, table


def test_pairs_are_24_colour_swaps():
    pairs = _pairs()
    assert len(pairs) == 24 and all(o != n for _, _, o, n in pairs)
    assert all(len(s.split()) == len(e.split()) for s, e, _, _ in pairs)


def test_figures_are_what_the_shipped_model_reaches(measured):
    """The goal (issue 9): P2P colour >= 90% and layout IoU >= 0.9, clearly above naive. The shipped
    model does not reach it (the edit keeps about two thirds of the source's object pixels): these are its
    deterministic figures, pinned so a change of model or mechanism shows up here."""
    _, table = measured
    for name, (acc, iou) in MEASURED.items():
        got_acc, got_iou = table[name]
        assert got_acc == pytest.approx(acc, abs=1 / 24 + 1e-9), name
        assert got_iou == pytest.approx(iou, abs=0.02), name
    goal_met = table["p2p"][0] >= 0.9 and table["p2p"][1] >= 0.9 and table["p2p"][1] > table["naive"][1]
    print(f"issue 9 goal met: {goal_met}")


def test_local_blend_on_the_demo_model(demo):
    from p2p_attention.apply import apply_edit
    from p2p_attention.blend import make_blend
    from p2p_attention.conditioning import encode_prompt_set, latent_batch
    from p2p_attention.edits import make_plan, with_blend

    model, clip, _ = demo
    src, edit, old, new = _pairs()[0]
    cond, prompts = encode_prompt_set(clip, src, [edit])
    swap = make_plan(prompts, None, "swap", CROSS, SELF)
    words = f"{old}, {new}"  # the recoloured object's colour word in the source and in the edit
    blend = make_blend(prompts, words, "", 0.3, 0.3, 0.2, 1)
    patched, runtime = apply_edit(model, with_blend(swap, prompts, blend),
                                  self_attn_min_downsample=1, map_downsample=2)
    out = sample(patched, cond, encode(clip, ""), latent_batch({"samples": torch.zeros(1, 4, 16, 16)}, 2),
                 sampler="ddim", scheduler="ddim_uniform", steps=STEPS, cfg=CFG, seed=SEED)
    mask = runtime.store.last_masks[0, 0].cpu().bool()
    frac = mask.float().mean().item()
    outside = (out[1] - out[0]).abs()[:, ~mask].max().item()
    print(f"local blend on '{words}': mask covers {frac:.0%} of the latent, outside max abs diff {outside:.1e}")
    assert 0 < frac < 1
    assert outside <= last_step_bound(out[0])
    assert (out[1] - out[0]).abs()[:, mask].max().item() > fp_bound(out[0], torch.float32, STEPS)


# (colour swap recognised, mean layout IoU) measured on the shipped model; README shows the table.
MEASURED = {"naive": (19 / 24, 0.560), "p2p": (20 / 24, 0.637)}
