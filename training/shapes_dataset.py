"""Deterministic synthetic captioned dataset for the pack's tiny demo model.

32x32 RGB scenes: two flat, saturated shapes over a muted gradient background with a
low-frequency texture. The caption fixes the layout: "X on the left and Y on the right" or
"X above Y" (the first-named object is always left / on top). Each object has a colour, a shape
and a size word; either may be left out of a caption (then it is drawn at random), so
refine-style edits ("a circle" -> "a red circle") make sense to the model.

Everything is a pure function of the seed (numpy Generator + PIL drawing).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 32
SUPERSAMPLE = 8

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (40, 200, 60),
    "blue": (40, 90, 235),
    "yellow": (240, 220, 40),
    "purple": (165, 60, 225),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle", "star")
SIZES = {"small": 4.0, "big": 6.5}  # half-extent in pixels (bounding box ~ 2r)
RELATIONS = ("left", "above")


@dataclass(frozen=True)
class Obj:
    colour: str
    shape: str
    size: str
    cx: float
    cy: float
    say_colour: bool = True
    say_size: bool = True

    @property
    def radius(self) -> float:
        return SIZES[self.size]

    def phrase(self) -> str:
        words = ["a"]
        if self.say_size:
            words.append(self.size)
        if self.say_colour:
            words.append(self.colour)
        words.append(self.shape)
        return " ".join(words)


@dataclass(frozen=True)
class Scene:
    relation: str  # "left": objs[0] left of objs[1]; "above": objs[0] above objs[1]
    objs: tuple[Obj, Obj]

    def caption(self) -> str:
        a, b = self.objs
        if self.relation == "left":
            return f"{a.phrase()} on the left and {b.phrase()} on the right"
        return f"{a.phrase()} above {b.phrase()}"


def vocabulary() -> list[str]:
    """Every word a caption can contain."""
    return sorted(set(["a", "on", "the", "left", "and", "right", "above", *COLOURS, *SHAPES, *SIZES]))


def parse_caption(caption: str) -> Scene:
    """Caption -> Scene with the stated attributes (unstated ones are None-like: say_* False).

    Positions are the nominal ones of the layout (what the judge checks against).
    """
    words = caption.strip().split()
    if "above" in words:
        i = words.index("above")
        parts, relation = (words[:i], words[i + 1 :]), "above"
    elif words[-3:] == ["on", "the", "right"] and "left" in words:
        i = words.index("left")
        parts, relation = (words[: i - 2], words[i + 2 : -3]), "left"
        assert words[i + 1] == "and", caption
    else:
        raise ValueError(f"not a caption of this dataset: {caption!r}")
    objs = []
    for k, p in enumerate(parts):
        if not p or p[0] != "a" or p[-1] not in SHAPES:
            raise ValueError(f"bad object phrase {p!r} in {caption!r}")
        colour = next((w for w in p if w in COLOURS), None)
        size = next((w for w in p if w in SIZES), None)
        cx, cy = nominal_centre(relation, k)
        objs.append(Obj(colour or "", p[-1], size or "", cx, cy, colour is not None, size is not None))
    return Scene(relation, (objs[0], objs[1]))


def nominal_centre(relation: str, k: int) -> tuple[float, float]:
    c = SIZE / 2
    off = 7.5
    if relation == "left":
        return (c - off if k == 0 else c + off, c)
    return (c, c - off if k == 0 else c + off)


def shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """Polygon vertices in pixel units (None for the circle)."""
    if shape == "circle":
        return None
    if shape == "square":
        s = 0.85 * r
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)]
    if shape == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else 0.45 * r
            ang = -math.pi / 2 + i * math.pi / 5
            pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang) + 0.1 * r))
        return pts
    raise ValueError(shape)


def shape_mask(shape: str, cx: float, cy: float, r: float, size: int = SIZE, ss: int = SUPERSAMPLE) -> np.ndarray:
    """Antialiased coverage in [0, 1], shape [size, size]."""
    im = Image.new("L", (size * ss, size * ss), 0)
    d = ImageDraw.Draw(im)
    if shape == "circle":
        d.ellipse([(cx - r) * ss, (cy - r) * ss, (cx + r) * ss, (cy + r) * ss], fill=255)
    else:
        d.polygon([(x * ss, y * ss) for x, y in shape_polygon(shape, cx, cy, r)], fill=255)
    im = im.resize((size, size), Image.BOX)
    return np.asarray(im, dtype=np.float32) / 255.0


def _background(rng: np.random.Generator) -> np.ndarray:
    """Muted two-colour gradient plus a low-frequency texture, float [H, W, 3] in [0, 1]."""
    cols = []
    for _ in range(2):
        h = rng.random()
        s = rng.uniform(0.05, 0.3)
        v = rng.uniform(0.2, 0.5)
        cols.append(np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32))
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / (SIZE - 1)
    t = (xx - 0.5) * math.cos(ang) + (yy - 0.5) * math.sin(ang)
    t = np.clip(t / 1.0 + 0.5, 0, 1)[..., None]
    img = cols[0] * (1 - t) + cols[1] * t
    tex = np.zeros((SIZE, SIZE), np.float32)
    for _ in range(3):
        f = rng.uniform(1.5, 5.0)
        a = rng.uniform(0, 2 * math.pi)
        ph = rng.uniform(0, 2 * math.pi)
        tex += np.sin(2 * math.pi * f * (xx * math.cos(a) + yy * math.sin(a)) + ph)
    img = img + 0.03 * tex[..., None]
    return np.clip(img, 0, 1)


def sample_scene(rng: np.random.Generator, p_drop_size: float = 0.15, p_drop_colour: float = 0.1) -> Scene:
    relation = RELATIONS[rng.integers(len(RELATIONS))]
    colours = rng.choice(len(COLOURS), size=2, replace=False)
    names = list(COLOURS)
    objs = []
    for k in range(2):
        shape = SHAPES[rng.integers(len(SHAPES))]
        size = list(SIZES)[rng.integers(len(SIZES))]
        ncx, ncy = nominal_centre(relation, k)
        # jitter: along the layout axis +-1.5 px, across it +-4 px
        along, across = rng.uniform(-1.5, 1.5), rng.uniform(-4, 4)
        if relation == "left":
            cx, cy = ncx + along, ncy + across
        else:
            cx, cy = ncx + across, ncy + along
        objs.append(
            Obj(
                names[colours[k]],
                shape,
                size,
                float(cx),
                float(cy),
                say_colour=bool(rng.random() >= p_drop_colour),
                say_size=bool(rng.random() >= p_drop_size),
            )
        )
    return Scene(relation, (objs[0], objs[1]))


def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """uint8 [32, 32, 3]."""
    img = _background(rng)
    for o in scene.objs:
        base = np.array(COLOURS[o.colour], np.float32) / 255.0
        col = np.clip(base + rng.uniform(-0.04, 0.04, size=3).astype(np.float32), 0, 1)
        m = shape_mask(o.shape, o.cx, o.cy, o.radius)[..., None]
        img = img * (1 - m) + col * m
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def make_dataset(n: int, seed: int = 0, sample=None, draw=None) -> tuple[np.ndarray, list[str], list]:
    """n images (uint8 [n, 64, 64, 3]), their captions and scenes; deterministic in seed (another
    world: its sample_scene and render)."""
    sample_scene_, render_ = sample or sample_scene, draw or render
    rng = np.random.default_rng(seed)
    images = np.empty((n, SIZE, SIZE, 3), np.uint8)
    captions, scenes = [], []
    for i in range(n):
        sc = sample_scene_(rng)
        images[i] = render_(sc, rng)
        scenes.append(sc)
        captions.append(sc.caption())
    return images, captions, scenes


# A fixed evaluation set of captions (full specification; every colour, shape and size appears).
EVAL_CAPTIONS = [
    "a big red circle on the left and a small blue square on the right",
    "a small green triangle above a big yellow star",
    "a big blue square on the left and a big white circle on the right",
    "a small purple star above a big red triangle",
    "a big yellow circle on the left and a small green triangle on the right",
    "a big white square above a small purple circle",
    "a small red star on the left and a big green square on the right",
    "a big blue triangle above a small yellow circle",
    "a small white triangle on the left and a big purple star on the right",
    "a big green circle above a small red square",
    "a small yellow square on the left and a big blue star on the right",
    "a big purple triangle above a small white square",
    "a big red square on the left and a small yellow circle on the right",
    "a small blue circle above a big green star",
    "a big green star on the left and a small white triangle on the right",
    "a small yellow triangle above a big purple square",
    "a big white star on the left and a small red circle on the right",
    "a big purple circle above a small blue triangle",
    "a small red triangle on the left and a big white square on the right",
    "a big yellow square above a small green circle",
    "a small purple square on the left and a big yellow triangle on the right",
    "a big blue star above a small red circle",
    "a big white circle on the left and a small green star on the right",
    "a small green square above a big blue circle",
]


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    imgs, caps, _ = make_dataset(n, seed=0)
    for c in caps[:8]:
        print(c)
    grid = imgs[:16].reshape(4, 4, SIZE, SIZE, 3).transpose(0, 2, 1, 3, 4).reshape(4 * SIZE, 4 * SIZE, 3)
    Image.fromarray(grid).resize((16 * SIZE, 16 * SIZE), Image.NEAREST).save("/tmp/shapes_grid.png")
    print("wrote /tmp/shapes_grid.png")
