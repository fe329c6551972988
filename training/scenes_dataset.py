"""A synthetic captioned world where the caption says what, not where (issue 24).

32x32 RGB scenes of two flat objects over a textured background. The caption names each object's
colour and shape, in either order, and nothing of the layout: "a red circle and a blue square".
Geometry is coupled to the words, as a real model couples a dog's pose to "dog":
- each colour has its own home: with probability P_HOME the object's centre is drawn around that
  colour's anchor (COLOUR_ANCHORS, +-JITTER px), else anywhere (uniform), so a colour word says
  where the object tends to be, yet every colour is seen everywhere (an edit that keeps the
  source's place asks for something the model has seen);
- each shape has its own typical size (SHAPE_RADII, +-RADIUS_JITTER px) and pulls the object its own
  way from the colour's home (SHAPE_OFFSETS), so a shape swap moves it too;
- the background's hue follows the first-named object's colour (BG_HUE_SHIFT from its hue), its
  gradient angle, saturation, value and texture are drawn per image.
So with the same noise a naive edit of one word moves that object (and its neighbour, which must
not overlap it) and recolours the background; an edit that keeps the source's geometry is what
Prompt-to-Prompt should give. A colour word may be left out ("a circle and a blue square": the
object gets a random colour, drawn at that colour's home), so refine additions make sense.

Also the world's judge (objects found by colour wherever they are) and its edit pairs.
Everything is a pure function of the seed (numpy Generator + PIL drawing).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, replace

import numpy as np
import shapes_dataset

try:
    import shapes_dataset as _shapes
except ImportError:  # imported as training.scenes_dataset
    from training import shapes_dataset as _shapes

COLOURS, SUPERSAMPLE = _shapes.COLOURS, _shapes.SUPERSAMPLE
# The shapes demo's star does not survive the 4x VAE at 32 px (through it the judge saw 160 of 164
# stars as circles): a bar (a wide rectangle) takes its place, a shape that a blur keeps.
SHAPES = ("circle", "square", "triangle", "bar")
BAR_ASPECT = 0.45  # half-height / half-width

SIZE = 32
NAMES = list(COLOURS)
# Each colour's home (pixel centre): a ring of six around the image centre.
COLOUR_ANCHORS: dict[str, tuple[float, float]] = {
    "red": (9.0, 9.5),
    "green": (23.0, 9.5),
    "blue": (9.0, 22.5),
    "yellow": (23.0, 22.5),
    "purple": (16.0, 7.0),
    "white": (16.0, 25.0),
}
JITTER = 2.5
P_HOME = 0.6
SHAPE_RADII = {"circle": 4.5, "square": 6.5, "triangle": 7.0, "bar": 7.0}
SHAPE_OFFSETS = {"circle": (0.0, -2.5), "square": (2.5, 0.0), "triangle": (0.0, 2.5), "bar": (-2.5, 0.0)}
RADIUS_JITTER = 0.6
BG_HUE_SHIFT = 0.5  # background hue = first object's hue + this (+- 0.08)
MIN_GAP = 1.0  # px between the two objects' bounding circles
__all__ = ["SIZE", "COLOURS", "SHAPES", "SUPERSAMPLE", "Obj", "Scene", "make_dataset", "vocabulary"]


@dataclass(frozen=True)
class Obj:
    colour: str
    shape: str
    cx: float
    cy: float
    radius: float
    say_colour: bool = True

    def phrase(self) -> str:
        return "a " + (f"{self.colour} " if self.say_colour else "") + self.shape


@dataclass(frozen=True)
class Scene:
    objs: tuple[Obj, Obj]  # in caption order

    def caption(self) -> str:
        return f"{self.objs[0].phrase()} and {self.objs[1].phrase()}"


def shape_mask(shape: str, cx: float, cy: float, r: float, size: int = SIZE, ss: int = SUPERSAMPLE) -> np.ndarray:
    """Antialiased coverage in [0, 1] (shapes_dataset.shape_mask, plus the bar)."""
    if shape != "bar":
        return _shapes.shape_mask(shape, cx, cy, r, size, ss)
    from PIL import Image, ImageDraw

    im = Image.new("L", (size * ss, size * ss), 0)
    h = BAR_ASPECT * r
    ImageDraw.Draw(im).rectangle([(cx - r) * ss, (cy - h) * ss, (cx + r) * ss, (cy + h) * ss], fill=255)
    return np.asarray(im.resize((size, size), Image.BOX), dtype=np.float32) / 255.0


def template_bbox(shape: str) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) of a unit-radius template centred at 0."""
    return (-1, 1, -BAR_ASPECT, BAR_ASPECT) if shape == "bar" else _shapes_judge_bbox(shape)


def _shapes_judge_bbox(shape: str):
    try:
        from judge import _template_bbox
    except ImportError:
        from training.judge import _template_bbox
    return _template_bbox(shape)


def vocabulary() -> list[str]:
    return sorted({"a", "and", *COLOURS, *SHAPES})


def parse_caption(caption: str) -> list[tuple[str | None, str]]:
    """[(colour or None, shape)] per object, in caption order."""
    words = caption.strip().split()
    if "and" not in words:
        raise ValueError(f"not a caption of this world: {caption!r}")
    i = words.index("and")
    out = []
    for p in (words[:i], words[i + 1:]):
        if not p or p[0] != "a" or p[-1] not in SHAPES or len(p) > 3 or (len(p) == 3 and p[1] not in COLOURS):
            raise ValueError(f"bad object phrase {p!r} in {caption!r}")
        out.append((p[1] if len(p) == 3 else None, p[-1]))
    return out


def object_words(caption: str) -> list[tuple[int, int]]:
    """(word index, object index) of each colour and shape word."""
    words = caption.split()
    split = words.index("and")
    return [(i, int(i > split)) for i, w in enumerate(words) if w in COLOURS or w in SHAPES]


def _hue(colour: str) -> float:
    return colorsys.rgb_to_hsv(*(c / 255 for c in COLOURS[colour]))[0]


def place(rng: np.random.Generator, specs: list[tuple[str, str]]) -> list[tuple[float, float, float]]:
    """(cx, cy, r) per (colour, shape): with probability P_HOME around the colour's anchor + the
    shape's offset (else uniform), the shape's radius; the two
    bounding circles kept MIN_GAP apart (resampled, then pushed apart along their axis)."""
    radii = [SHAPE_RADII[s] + rng.uniform(-RADIUS_JITTER, RADIUS_JITTER) for _, s in specs]
    home = [bool(rng.random() < P_HOME) for _ in specs]
    for _ in range(20):
        cs = [np.array(COLOUR_ANCHORS[c]) + np.array(SHAPE_OFFSETS[s]) + rng.uniform(-JITTER, JITTER, 2) if h
              else rng.uniform(r, SIZE - r, 2) for (c, s), h, r in zip(specs, home, radii)]
        if np.linalg.norm(cs[0] - cs[1]) >= radii[0] + radii[1] + MIN_GAP:
            break
    else:
        d = cs[1] - cs[0]
        n = np.linalg.norm(d) + 1e-6
        push = (radii[0] + radii[1] + MIN_GAP - n) / 2
        cs = [cs[0] - d / n * push, cs[1] + d / n * push]
    return [(float(np.clip(c[0], r, SIZE - r)), float(np.clip(c[1], r, SIZE - r)), r)
            for c, r in zip(cs, radii)]


def sample_scene(rng: np.random.Generator, p_drop_colour: float = 0.15) -> Scene:
    ci = rng.choice(len(NAMES), size=2, replace=False)
    specs = [(NAMES[ci[k]], SHAPES[rng.integers(len(SHAPES))]) for k in range(2)]
    geo = place(rng, specs)
    say = [bool(rng.random() >= p_drop_colour) for _ in range(2)]
    return Scene(tuple(Obj(c, s, *g, say_colour=sc) for (c, s), g, sc in zip(specs, geo, say)))


def background(rng: np.random.Generator, first_colour: str) -> np.ndarray:
    """A muted gradient (hue tied to the first-named object's colour) with a sinusoid texture."""
    h0 = (_hue(first_colour) + BG_HUE_SHIFT + rng.uniform(-0.08, 0.08)) % 1.0
    cols = [np.array(colorsys.hsv_to_rgb((h0 + dh) % 1, rng.uniform(0.15, 0.4), rng.uniform(0.2, 0.45)), np.float32)
            for dh in (0.0, rng.uniform(-0.1, 0.1))]
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / (SIZE - 1)
    t = np.clip((xx - 0.5) * math.cos(ang) + (yy - 0.5) * math.sin(ang) + 0.5, 0, 1)[..., None]
    img = cols[0] * (1 - t) + cols[1] * t
    tex = np.zeros((SIZE, SIZE), np.float32)
    for _ in range(3):
        f, a, ph = rng.uniform(1.5, 4.0), rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)
        tex += np.sin(2 * math.pi * f * (xx * math.cos(a) + yy * math.sin(a)) + ph)
    return np.clip(img + 0.03 * tex[..., None], 0, 1)


def render(scene: Scene, rng: np.random.Generator, bg_colour: str | None = None) -> np.ndarray:
    """uint8 [32, 32, 3]; the background's hue from `bg_colour` if given (an exact edit keeps the
    source's background), else from the first object's colour."""
    img = background(rng, bg_colour or scene.objs[0].colour)
    for o in scene.objs:
        col = np.clip(np.array(COLOURS[o.colour], np.float32) / 255 + rng.uniform(-0.04, 0.04, 3), 0, 1)
        m = shape_mask(o.shape, o.cx, o.cy, o.radius)[..., None]
        img = img * (1 - m) + col * m
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def object_coverage(scene: Scene, k: int, ss: int = 4) -> np.ndarray:
    o = scene.objs[k]
    return shape_mask(o.shape, o.cx, o.cy, o.radius, ss=ss)


def make_dataset(n: int, seed: int = 0) -> tuple[np.ndarray, list[str], list[Scene]]:
    """n images (uint8 [n, 32, 32, 3]), their captions and scenes; deterministic in seed."""
    assert SIZE == shapes_dataset.SIZE
    return shapes_dataset.make_dataset(n, seed, sample_scene, render)


# ----------------------------------------------------------------------------- edit pairs
@dataclass(frozen=True)
class EditPair:
    kind: str  # "colour" | "shape" | "refine"
    source: str
    edit: str
    obj: int  # the edited object (caption order)
    old: str | None  # the replaced word (None for a refine addition)
    new: str


def edit_pairs(n_per_kind: int = 16, seed: int = 7) -> list[EditPair]:
    """n colour swaps, n shape swaps, n refine additions (a colour word added), on fully specified
    captions (refine: the edited object's colour left out in the source); deterministic."""
    rng = np.random.default_rng(seed)
    out: list[EditPair] = []
    for kind in ("colour", "shape", "refine"):
        for i in range(n_per_kind):
            ci = rng.choice(len(NAMES), size=3, replace=False)
            sh = [SHAPES[rng.integers(len(SHAPES))] for _ in range(2)]
            k = i % 2
            cols = [NAMES[ci[0]], NAMES[ci[1]]]
            src_objs = [f"a {c} {s}" for c, s in zip(cols, sh)]
            edit_objs = list(src_objs)
            if kind == "colour":
                old, new = cols[k], NAMES[ci[2]]
                edit_objs[k] = f"a {new} {sh[k]}"
            elif kind == "shape":
                old = sh[k]
                new = SHAPES[(SHAPES.index(old) + 1 + rng.integers(len(SHAPES) - 1)) % len(SHAPES)]
                edit_objs[k] = f"a {cols[k]} {new}"
            else:
                old, new = None, cols[k]
                src_objs[k] = f"a {sh[k]}"
            out.append(EditPair(kind, " and ".join(src_objs), " and ".join(edit_objs), k, old, new))
    return out


def exact_edit(scene: Scene, pair: EditPair) -> Scene:
    """The ideal edit of a rendered source scene: the word changed, every geometry kept (a shape
    swap keeps the centre and the radius offset from the old shape's typical radius)."""
    o = scene.objs[pair.obj]
    if pair.kind == "shape":
        o = replace(o, shape=pair.new, radius=o.radius - SHAPE_RADII[o.shape] + SHAPE_RADII[pair.new])
    else:
        o = replace(o, colour=pair.new, say_colour=True)
    objs = list(scene.objs)
    objs[pair.obj] = o
    return Scene(tuple(objs))


def scene_of(caption: str, rng: np.random.Generator) -> Scene:
    """A scene drawn for a caption (unstated colours drawn, other than the stated one)."""
    parsed = parse_caption(caption)
    stated = {c for c, _ in parsed if c}
    free = [c for c in NAMES if c not in stated]
    specs = []
    for c, s in parsed:
        if c is None:
            c = free.pop(int(rng.integers(len(free))))
        specs.append((c, s))
    geo = place(rng, specs)
    return Scene(tuple(Obj(c, s, *g, say_colour=pc is not None) for (c, s), g, (pc, _) in zip(specs, geo, parsed)))


if __name__ == "__main__":
    from PIL import Image

    imgs, caps, _ = make_dataset(16, seed=0)
    for c in caps[:8]:
        print(c)
    grid = imgs.reshape(4, 4, SIZE, SIZE, 3).transpose(0, 2, 1, 3, 4).reshape(4 * SIZE, 4 * SIZE, 3)
    Image.fromarray(grid).resize((16 * SIZE, 16 * SIZE), Image.NEAREST).save("/tmp/scenes_grid.png")
    print("wrote /tmp/scenes_grid.png")
