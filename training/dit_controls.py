"""The MM-DiT edit controls measured on the DiT demo model: naive re-prompt against each control and
their combinations, on the colour-swap pairs of dit_eval at several seeds (euler 20, cfg 4).

Per pair: colour (judge colour_in_place of the edited object), layout IoU (every object pixel, source
vs edit), IoU of the edited and of the unedited object (object pixels in each object's half), and the
PSNR outside the edited object (pixels outside both images' edited-object masks).

    .venv/bin/python training/dit_controls.py [--pairs 24] [--seeds 0 1] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Control:
    name: str
    cross: str = "0.8"
    self_: str = "0.4"  # self_replace: the structure control's window
    structure: str = "values_outside_edit"  # P2P Apply's mmdit_structure
    self_blocks: str = "auto"
    region: dict = field(default_factory=dict)  # joint_injection.RegionSpec fields
    own_changed: bool = True  # changed words keep their own image->text maps
    blend: bool = False  # P2P Local Blend on the old and new colour words
    naive: bool = False


SHIPPED = Control("P2P defaults (Word Swap 0.8 / 0.4, values outside the edit)")


def controls() -> list[Control]:
    v = "values outside the edit"
    return [
        Control("naive", naive=True),
        Control("P2P before this change (source column, self maps 0.6)", "0.8", "0.6", "self_maps", "all",
                own_changed=False),
        Control("changed word's own column, no structure", "0.8", "0.0"),
        Control("own column + self maps 0.6", "0.8", "0.6", "self_maps", "all"),
        Control("own column + image q/k 0.2", "0.8", "0.2", "image_qk"),
        Control("own column + image q/k 0.4", "0.8", "0.4", "image_qk"),
        SHIPPED,
        Control(f"{v} 0.2", "0.8", "0.2"),
        Control(f"{v} 0.6", "0.8", "0.6"),
        Control(f"{v} 1.0", "0.8", "1.0"),
        Control(f"{v} 0.4, threshold 0.3", region={"threshold": 0.3}),
        Control(f"{v} 0.4, threshold 0.7", region={"threshold": 0.7}),
        Control(f"{v} 0.4, dilation 0", region={"dilation": 0}),
        Control(f"{v} 0.4, dilation 2", region={"dilation": 2}),
        Control(f"{v} 0.4, keys too", region={"keys": True}),
        Control(f"{v} 0.4, double blocks only", self_blocks="double 0-1"),
        Control(f"{v} 0.4, single blocks only", self_blocks="single 0-1"),
        Control(f"{v} 0.4, cross 0", "0.0"),
        Control(f"{v} 0.4, cross 0.4", "0.4"),
        Control("naive + local blend", naive=True, blend=True),
        Control("P2P before this change + local blend", "0.8", "0.6", "self_maps", "all", own_changed=False,
                blend=True),
        Control("image q/k 0.2 + local blend", "0.8", "0.2", "image_qk", blend=True),
        Control(f"{SHIPPED.name} + local blend", blend=True),
    ]


def run(model, clip, src, edit, old, new, c: Control, seed: int):
    import dit_eval

    from p2p_attention.apply import apply_edit
    from p2p_attention.blend import make_blend
    from p2p_attention.conditioning import encode_prompt_set
    from p2p_attention.edits import make_plan, with_blend
    from p2p_attention.joint_injection import RegionSpec

    cond, prompts = encode_prompt_set(clip, src, [edit])
    neg = dit_eval._encode(clip, "")
    if c.naive and not c.blend:
        return dit_eval._sample(model, cond, neg, 2, seed)
    blend = make_blend(prompts, f"{old}, {new}", "", 0.3, 0.3, 0.2, 1) if c.blend else None
    if c.naive:  # the blend alone: no attention control
        plan = with_blend(None, prompts, blend)
    else:
        plan = make_plan(prompts, None, "swap", c.cross, c.self_)
        if blend is not None:
            plan = with_blend(plan, prompts, blend)
    patched, _ = apply_edit(model, plan, self_blocks=c.self_blocks, mmdit_structure=c.structure,
                            region=RegionSpec(**c.region), own_changed=c.own_changed)
    return dit_eval._sample(patched, cond, neg, 2, seed)


def pair_figures(imgs, src: str, edit: str) -> dict:
    import shapes_dataset as ds
    from dit_eval import iou
    from judge import _half, judge, object_mask

    scene = ds.parse_caption(src)
    h, w = imgs[0].shape[:2]
    objs = [object_mask(i) for i in imgs]
    halves = [_half(scene.relation, k, h, w) for k in (0, 1)]
    edited = objs[0] & halves[0], objs[1] & halves[0]
    keep = ~(edited[0] | edited[1])
    mse = float(((imgs[0].astype(float) - imgs[1].astype(float))[keep] ** 2).mean()) if keep.any() else 0.0
    return {
        "colour": bool(judge(imgs[1], edit)[0]["colour_in_place"]),
        "iou": iou(objs[0], objs[1]),
        "iou_edited": iou(*edited),
        "iou_other": iou(objs[0] & halves[1], objs[1] & halves[1]),
        "psnr_outside": 10 * np.log10(255 ** 2 / max(mse, 1e-3)),
    }


def measure(demo, pairs, cs, seeds) -> dict:
    import dit_eval

    model, clip, vae = demo
    table = {}
    for c in cs:
        rows = [pair_figures(dit_eval.to_images(vae, run(model, clip, *p, c, seed)), p[0], p[1])
                for seed in seeds for p in pairs]
        table[c.name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        table[c.name]["rows"] = rows
    return table


def markdown(table: dict, naive: str = "naive") -> str:
    base = table.get(naive)
    lines = ["| control | new colour shown | layout IoU | edited object IoU | other object IoU | PSNR outside the "
             "edited object (dB) | IoU above naive (pairs) |", "|---|---|---|---|---|---|---|"]
    for name, r in table.items():
        above = "" if base is None or name == naive else \
            f"{sum(a['iou'] > b['iou'] for a, b in zip(r['rows'], base['rows']))}/{len(r['rows'])}"
        lines.append(f"| {name} | {r['colour']:.0%} | {r['iou']:.3f} | {r['iou_edited']:.3f} | {r['iou_other']:.3f} | "
                     f"{r['psnr_outside']:.1f} | {above} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import train_common  # noqa: F401  first: the repo on sys.path after ComfyUI, ComfyUI bootstrapped

    # isort: split
    import dit_eval

    from p2p_models.demo_dit import load_demo_dit_model

    demo = load_demo_dit_model()
    cs = [c for c in controls() if args.only is None or c.name in args.only or c.naive and not c.blend]
    t0 = time.time()
    table = measure(demo, dit_eval.colour_swap_pairs(args.pairs), cs, args.seeds)
    print(markdown(table))
    print(f"({len(args.seeds)} seeds x {args.pairs} pairs, {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
