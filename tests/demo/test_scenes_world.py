"""The scenes world (training/scenes_dataset.py, issue 24): captions say what, not where; geometry is
coupled to the words; its judge finds each object by colour wherever it is and scores exact edits
(the ceiling with a lossless VAE) as right."""

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "training"))

import scenes_dataset as sd  # noqa: E402
from scenes_judge import edit_figures, judge, summarise  # noqa: E402


def test_deterministic_and_captions_name_no_place():
    a, ca, _ = sd.make_dataset(64, seed=3)
    b, cb, _ = sd.make_dataset(64, seed=3)
    assert np.array_equal(a, b) and ca == cb
    words = {w for c in ca for w in c.split()}
    assert words <= set(sd.vocabulary())
    assert not words & {"left", "right", "above", "below", "big", "small"}


def test_geometry_follows_the_words():
    """Each colour's objects are at its home (+ the shape's pull) P_HOME of the time; each shape has its size."""
    _, _, scenes = sd.make_dataset(400, seed=1)
    for colour, (ax, ay) in sd.COLOUR_ANCHORS.items():
        cs = [(o.cx - sd.SHAPE_OFFSETS[o.shape][0], o.cy - sd.SHAPE_OFFSETS[o.shape][1])
              for s in scenes for o in s.objs if o.colour == colour]
        near = np.mean([abs(x - ax) <= 4 and abs(y - ay) <= 4 for x, y in cs])
        assert sd.P_HOME - 0.1 < near < sd.P_HOME + 0.2, (colour, near)  # at home, or anywhere
    for shape, r in sd.SHAPE_RADII.items():
        rs = [o.radius for s in scenes for o in s.objs if o.shape == shape]
        assert abs(np.mean(rs) - r) < 0.3, shape


def test_judge_on_ground_truth():
    imgs, caps, _ = sd.make_dataset(200, seed=5)
    s = summarise([judge(i, c) for i, c in zip(imgs, caps)])
    assert s["colour"] == 1.0 and s["shape"] >= 0.95


def test_edit_pairs_and_exact_edits():
    pairs = sd.edit_pairs(16)
    assert len(pairs) == 48 and [p.kind for p in pairs].count("shape") == 16
    for i, p in enumerate(pairs):
        sc = sd.scene_of(p.source, np.random.default_rng(i))
        ed = sd.exact_edit(sc, p)
        assert ed.caption() == p.edit
        x = [sd.render(s, np.random.default_rng(i), bg_colour=sc.objs[0].colour) for s in (sc, ed)]
        f = edit_figures(x[0], x[1], p)
        assert f["success"] and f["iou_other"] > 0.95 and f["psnr"] > 40, (p, f)
