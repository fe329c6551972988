"""Pixel judge for the scenes world (training/scenes_dataset.py): each object is found by its colour
wherever it is (judge.label_pixels: nearest palette colour within COLOUR_THRESHOLD, else background).

- colours(img): the palette colours drawn (>= MIN_PIXELS pixels), most pixels first;
- object_mask(img, colour): that colour's largest blob (the object, wherever it is);
- judge(img, caption): per captioned object, is its stated colour drawn, and its shape (the
  best-IoU template fitted to the blob's bounding box, judge.classify_shape);
- edit_figures(src, edit, pair): edit success, per-object geometry IoU (source's object vs the
  edit's same object, found by its colour in each), the edited object's centre shift, and PSNR /
  SSIM outside the edited object (pixels outside that object's mask in both images, dilated 1 px;
  3 px for SSIM, so that no 5x5 window reaches the object).
"""

from __future__ import annotations

import numpy as np
from judge import MIN_PIXELS, _largest_blob, label_pixels
from judge import classify_shape as classify_any
from judge import object_mask as bright_mask
from scenes_dataset import NAMES, SHAPES, EditPair, parse_caption, shape_mask, template_bbox
from scipy import ndimage


def classify_shape(blob: np.ndarray) -> tuple[str, dict]:
    """judge.classify_shape over this world's shapes."""
    return classify_any(blob, SHAPES, template_bbox, shape_mask)


def colours(img) -> list[str]:
    lab = label_pixels(img)
    counts = np.bincount(lab[lab >= 0], minlength=len(NAMES))
    return [NAMES[i] for i in np.argsort(-counts, kind="stable") if counts[i] >= MIN_PIXELS]


def object_mask(img, colour: str | None, lab=None) -> np.ndarray:
    """The object of this colour: its colour's largest blob, grown by the bright (judge.object_mask)
    unlabelled pixels touching it, so that the outline does not depend on how close each colour's antialiased
    edge is to the palette."""
    lab = label_pixels(img) if lab is None else lab
    if colour is None:
        return np.zeros(lab.shape, bool)
    m = lab == NAMES.index(colour)
    if m.sum() < MIN_PIXELS:
        return np.zeros(lab.shape, bool)
    blob = _largest_blob(m)
    return blob | (bright_mask(img) & ndimage.binary_dilation(blob) & (lab < 0))  # not another object's colour


def judge(img, caption: str) -> list[dict]:
    """Per captioned object: colour (stated colour drawn), shape (its blob's shape; for an unstated
    colour, the blob of the drawn colour that no other object states)."""
    drawn = colours(img)
    parsed = parse_caption(caption)
    stated = {c for c, _ in parsed if c}
    lab = label_pixels(img)
    out = []
    for c, s in parsed:
        col = c if c else next((d for d in drawn if d not in stated), None)
        res = {"colour": (c in drawn) if c else None, "found": col}
        blob = _largest_blob(lab == NAMES.index(col)) if col else np.zeros(lab.shape, bool)
        res["shape"] = bool(blob.sum() >= MIN_PIXELS and classify_shape(blob)[0] == s)
        out.append(res)
    return out


def summarise(results: list[list[dict]]) -> dict:
    out = {}
    for key in ("colour", "shape"):
        vals = [r[key] for objs in results for r in objs if r[key] is not None]
        out[key] = float(np.mean(vals)) if vals else float("nan")
        out[f"{key}_n"] = len(vals)
    return out


def iou(a, b) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def _centre(m):
    ys, xs = np.nonzero(m)
    return np.array([xs.mean(), ys.mean()]) if len(xs) else None


def ssim_map(a: np.ndarray, b: np.ndarray, win: int = 5) -> np.ndarray:
    """Per-pixel SSIM (uniform win x win windows, per channel, averaged), images uint8 [H, W, 3]."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    f = lambda x: ndimage.uniform_filter(x, size=(win, win, 1), mode="reflect")  # noqa: E731
    ma, mb = f(a), f(b)
    va, vb, cov = f(a * a) - ma ** 2, f(b * b) - mb ** 2, f(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    return s.mean(-1)


def source_colours(src_img, pair: EditPair) -> list[str | None]:
    """The colour of each object in the source image (an unstated one: the drawn colour no other
    object states)."""
    parsed = parse_caption(pair.source)
    stated = {c for c, _ in parsed if c}
    drawn = colours(src_img)
    return [c if c else next((d for d in drawn if d not in stated), None) for c, _ in parsed]


def edit_figures(src_img, edit_img, pair: EditPair) -> dict:
    k, o = pair.obj, 1 - pair.obj
    cols_src = source_colours(src_img, pair)
    cols_edit = list(cols_src)
    if pair.kind in ("colour", "refine"):
        cols_edit[k] = pair.new
    ls, le = label_pixels(src_img), label_pixels(edit_img)
    ms = [object_mask(src_img, c, ls) for c in cols_src]
    me = [object_mask(edit_img, c, le) for c in cols_edit]
    drawn = colours(edit_img)
    other_ok = cols_edit[o] in drawn
    if pair.kind == "colour":
        success = pair.new in drawn and (le == NAMES.index(pair.old)).sum() < MIN_PIXELS and other_ok
    elif pair.kind == "refine":
        success = pair.new in drawn and other_ok
    else:
        blob = _largest_blob(le == NAMES.index(cols_edit[k])) if cols_edit[k] else me[k]
        success = bool(blob.sum() >= MIN_PIXELS and classify_shape(blob)[0] == pair.new and other_ok)
    cs, ce = _centre(ms[k]), _centre(me[k])
    shift = float(np.linalg.norm(cs - ce)) if cs is not None and ce is not None else float("nan")
    edited = ms[k] | me[k]
    keep = ~ndimage.binary_dilation(edited)
    keep_ssim = ~ndimage.binary_dilation(edited, iterations=3)  # no 5x5 window reaches the object
    diff = src_img.astype(np.float64) - edit_img.astype(np.float64)
    mse = float((diff[keep] ** 2).mean()) if keep.any() else 0.0
    return {
        "success": bool(success),
        "iou": (iou(ms[0], me[0]) + iou(ms[1], me[1])) / 2,
        "iou_edited": iou(ms[k], me[k]),
        "iou_other": iou(ms[o], me[o]),
        "shift": shift,
        "psnr": 10 * np.log10(255 ** 2 / max(mse, 1e-2)),
        "ssim": float(ssim_map(src_img, edit_img)[keep_ssim].mean()) if keep_ssim.any() else 1.0,
    }
