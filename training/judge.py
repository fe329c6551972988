"""Pixel judge for the shapes demo model: colour / position / size / shape of each captioned object.

Works on uint8 [32, 32, 3] images (or float [H, W, 3] in [0, 1]) and captions of
`shapes_dataset`. Each pixel is labelled with the nearest palette colour when it is close
enough to one, else background (backgrounds are muted and dark, objects saturated/bright).

Per object (first-named object: left half / top half; second: right / bottom):
- colour:   the captioned colour is one of the image's two most common object colours (every
            scene has two objects), wherever it is: does the model draw the colours it is told;
- colour_in_place: the most common object colour in the object's half is the captioned colour
            (needs the layout right too: stricter, shares its failures with position);
- position: the captioned colour's pixels (whole image) have their centroid on the object's
            side of the centre line;
- size:     the bounding box of that colour's largest blob in the object's half is wider than
            9.5 px ("big") or not ("small");
- shape:    the template (circle/square/triangle/star) fitted to that blob's bounding box with
            the best IoU is the captioned shape.
Attributes a caption does not state are not judged (None).
"""

from __future__ import annotations

import numpy as np

try:
    from shapes_dataset import COLOURS, SHAPES, parse_caption, shape_mask
except ImportError:  # imported as training.judge
    from training.shapes_dataset import COLOURS, SHAPES, parse_caption, shape_mask

_NAMES = list(COLOURS)
_PALETTE = np.array([COLOURS[n] for n in _NAMES], np.float32)
COLOUR_THRESHOLD = 90.0  # RGB distance to a palette entry for an object pixel
MIN_PIXELS = 5
BIG_EXTENT = 9.5


def _as_uint8(img) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:
        a = a.transpose(1, 2, 0)
    return a


def label_pixels(img) -> np.ndarray:
    """int [H, W]: palette index, or -1 for background."""
    a = _as_uint8(img).astype(np.float32)
    d = np.linalg.norm(a[:, :, None, :] - _PALETTE[None, None], axis=-1)
    lab = d.argmin(-1)
    lab[d.min(-1) > COLOUR_THRESHOLD] = -1
    return lab


OBJECT_VALUE = 0.62  # HSV value: backgrounds reach at most 0.5 + texture (0.59), palette colours 0.78+


def object_mask(img) -> np.ndarray:
    """bool [H, W]: object pixels, whatever their colour (brighter than any background can be).

    The layout measure for edits: unlike `label_pixels`, a recoloured object that misses the
    palette by a little still counts as the object."""
    return _as_uint8(img).max(-1) > OBJECT_VALUE * 255


def _half(relation: str, k: int, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    if relation == "left":
        m[:, : w // 2] = k == 0
        m[:, w // 2 :] = k == 1
    else:
        m[: h // 2] = k == 0
        m[h // 2 :] = k == 1
    return m


def _largest_blob(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    counts = np.bincount(lab.ravel())[1:]
    return lab == (counts.argmax() + 1)


def _template_bbox(shape: str) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) of a unit-radius template centred at 0, in multiples of r."""
    if shape == "circle":
        return (-1, 1, -1, 1)
    if shape == "square":
        return (-0.85, 0.85, -0.85, 0.85)
    if shape == "triangle":
        return (-1, 1, -1, 0.8)
    if shape == "star":
        return (-0.951, 0.951, -0.9, 0.909)
    raise ValueError(shape)


def classify_shape(blob: np.ndarray, shapes=SHAPES, bbox=None, mask=None) -> tuple[str, dict]:
    """Best-IoU template fitted to the blob's bounding box (over another world's shapes with its
    shapes, template bbox and mask functions)."""
    bbox, mask = bbox or _template_bbox, mask or shape_mask
    ys, xs = np.nonzero(blob)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    scores = {}
    for s in shapes:
        tx0, tx1, ty0, ty1 = bbox(s)
        r = ((x1 - x0) / (tx1 - tx0) + (y1 - y0) / (ty1 - ty0)) / 2
        cx = (x0 + x1) / 2 - r * (tx0 + tx1) / 2
        cy = (y0 + y1) / 2 - r * (ty0 + ty1) / 2
        t = mask(s, cx, cy, r, size=blob.shape[0], ss=4) > 0.5
        scores[s] = float((t & blob).sum() / max(1, (t | blob).sum()))
    return max(scores, key=scores.get), scores


def judge(img, caption: str) -> list[dict]:
    """One dict per object: colour/position/size/shape -> True/False/None, plus measured values."""
    lab = label_pixels(img)
    h, w = lab.shape
    scene = parse_caption(caption)
    total = np.bincount(lab[lab >= 0], minlength=len(_NAMES))
    drawn = {_NAMES[i] for i in np.argsort(-total, kind="stable")[:2] if total[i] >= MIN_PIXELS}
    out = []
    for k, o in enumerate(scene.objs):
        half = _half(scene.relation, k, h, w)
        res = {"colour": None, "colour_in_place": None, "position": None, "size": None, "shape": None}
        counts = np.bincount(lab[half & (lab >= 0)], minlength=len(_NAMES))
        dominant = _NAMES[int(counts.argmax())] if counts.max() >= MIN_PIXELS else None
        res["dominant"] = dominant
        colour = o.colour if o.say_colour else dominant
        if o.say_colour:
            res["colour"] = o.colour in drawn
            res["colour_in_place"] = dominant == o.colour
        if colour is None:
            res.update(position=False if o.say_colour else None, size=False, shape=False)
            out.append(res)
            continue
        cmask = lab == _NAMES.index(colour)
        if o.say_colour:
            if cmask.sum() < MIN_PIXELS:
                res["position"] = False
            else:
                ys, xs = np.nonzero(cmask)
                c = xs.mean() if scene.relation == "left" else ys.mean()
                mid = (w if scene.relation == "left" else h) / 2 - 0.5
                res["position"] = bool(c < mid) if k == 0 else bool(c > mid)
        blob_src = cmask & half
        if blob_src.sum() < MIN_PIXELS:
            res["size"] = False if o.say_size else None
            res["shape"] = False
            out.append(res)
            continue
        blob = _largest_blob(blob_src)
        ys, xs = np.nonzero(blob)
        extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        res["extent"] = int(extent)
        if o.say_size:
            res["size"] = ("big" if extent > BIG_EXTENT else "small") == o.size
        shape, scores = classify_shape(blob)
        res["shape_pred"] = shape
        res["shape"] = shape == o.shape
        out.append(res)
    return out


def summarise(results: list[list[dict]]) -> dict:
    """Accuracy per attribute over all judged objects, plus whole-caption colour accuracy."""
    summary = {}
    for key in ("colour", "colour_in_place", "position", "size", "shape"):
        vals = [r[key] for objs in results for r in objs if r[key] is not None]
        summary[key] = float(np.mean(vals)) if vals else float("nan")
        summary[f"{key}_n"] = len(vals)
    cap = [all(r["colour"] for r in objs if r["colour"] is not None) for objs in results]
    summary["caption_colour"] = float(np.mean(cap)) if cap else float("nan")
    return summary


if __name__ == "__main__":
    from shapes_dataset import make_dataset

    imgs, caps, _ = make_dataset(500, seed=123)
    res = [judge(i, c) for i, c in zip(imgs, caps)]
    print("judge on ground-truth images:", summarise(res))
