"""The demo model's pixel judge (training/judge.py) on images whose truth is known."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "training"))

from judge import judge, object_mask, summarise  # noqa: E402
from shapes_dataset import make_dataset, shape_mask  # noqa: E402


def test_ground_truth_images_are_judged_right():
    imgs, caps, _ = make_dataset(200, seed=7)
    s = summarise([judge(i, c) for i, c in zip(imgs, caps)])
    assert s["colour"] == 1.0 and s["colour_in_place"] == 1.0 and s["position"] == 1.0
    assert s["size"] == 1.0 and s["shape"] >= 0.95
    assert s["colour_n"] > 150


def _two_objects_caption(imgs, caps):
    for img, cap in zip(imgs, caps):
        words = cap.split()
        if "left" in words and sum(w in ("red", "green", "blue", "yellow", "purple", "white") for w in words) == 2:
            return img, cap
    raise AssertionError("no left/right caption with two colours")


def test_mirrored_layout_keeps_colour_but_not_colour_in_place_or_position():
    img, cap = _two_objects_caption(*make_dataset(200, seed=7)[:2])
    mirrored = np.ascontiguousarray(img[:, ::-1])
    right, wrong = judge(img, cap), judge(mirrored, cap)
    assert all(r["colour"] and r["colour_in_place"] and r["position"] for r in right)
    assert all(r["colour"] for r in wrong)
    assert not any(r["colour_in_place"] or r["position"] for r in wrong)


def test_wrong_colours_are_caught():
    img, cap = _two_objects_caption(*make_dataset(200, seed=7)[:2])
    grey = img.copy()
    grey[:] = img.mean(-1, keepdims=True).astype(np.uint8) // 3  # no palette colour left
    assert not any(r["colour"] or r["colour_in_place"] for r in judge(grey, cap))


def test_object_mask_finds_the_drawn_shapes_whatever_their_colour():
    imgs, _, scenes = make_dataset(200, seed=7)
    ious = []
    for img, scene in zip(imgs, scenes):
        truth = np.zeros(img.shape[:2], bool)
        for o in scene.objs:
            truth |= shape_mask(o.shape, o.cx, o.cy, o.radius) > 0.5
        for im in (img, img[:, :, ::-1]):  # channels swapped: other colours, the same layout
            got = object_mask(im)
            ious.append((got & truth).sum() / (got | truth).sum())
    assert np.mean(ious) > 0.93 and np.min(ious) > 0.6
