"""PIE-Bench-like evaluation of word edits on the scenes demo model (models/demo/p2p_demo_flux_scenes.safetensors):
naive re-prompt (same noise) against Prompt-to-Prompt with the MM-DiT defaults, P2P + Local Blend,
full injection, and the ceiling (the exact edit rendered by the world's renderer and passed through the
model's VAE), on scenes_dataset.edit_pairs (colour swaps, shape swaps, refine additions) at several seeds.

Per pair (training/scenes_judge.py): edit success by the pixel judge; geometry IoU (each object's
mask, found by its colour, source vs edit, averaged over the two objects); the edited and the other
object's IoU; the edited object's centre shift; PSNR and SSIM outside the edited object (in both
images). Sampling as the demo: euler, simple, 20 steps, cfg 4, one initial noise for source and edit.

    OMP_NUM_THREADS=1 .venv/bin/python training/scenes_eval.py [--model PATH] [--per-kind 16] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass(frozen=True)
class Method:
    name: str
    naive: bool = False
    cross: str = "0.8"
    self_: str = "0.4"  # self_replace: the structure control's window
    structure: str = "values_outside_edit"  # P2P Apply's mmdit_structure
    blend: bool = False
    own_changed: bool = True  # apply_edit's: a changed word keeps its own map (False: the source's column)


NAIVE = Method("naive", naive=True)
P2P = Method("P2P (MM-DiT defaults: cross 0.8, self 0.4, values outside the edit)")
P2P_LB = Method("P2P + local blend", blend=True)
FULL = Method("full injection (cross 1.0, image q/k 1.0)", cross="1.0", self_="1.0", structure="image_qk")
METHODS = [NAIVE, P2P, P2P_LB, FULL]
VARIANTS = [  # --variants: other settings of the same controls, for the record
    Method("P2P, changed word's map from the source (own_changed False)", own_changed=False),
    Method("P2P, own_changed False, no structure", self_="0.0", own_changed=False),
    Method("P2P with image q/k 0.4 instead", structure="image_qk"),
    Method("P2P, own_changed False, image q/k 0.4 instead", structure="image_qk", own_changed=False),
    Method("P2P, cross 1.0", cross="1.0"),
    Method("P2P, values outside 0.6", self_="0.6"),
]
CEILING = "ceiling (exact edit through the VAE)"
KEYS = ("success", "iou", "iou_edited", "iou_other", "shift", "psnr", "ssim")


def blend_words(pair) -> str:
    return pair.new if pair.old is None else f"{pair.old}, {pair.new}"


def run(model, clip, pair, m: Method, seed: int, steps: int = 20, cfg: float = 4.0):
    """Latents [2, 16, 8, 8]: source and edit, one initial noise."""
    import dit_eval

    from p2p_attention.apply import apply_edit
    from p2p_attention.blend import make_blend
    from p2p_attention.conditioning import encode_prompt_set
    from p2p_attention.edits import make_plan, with_blend

    cond, prompts = encode_prompt_set(clip, pair.source, [pair.edit])
    neg = dit_eval._encode(clip, "")
    if m.naive and not m.blend:
        return dit_eval._sample(model, cond, neg, 2, seed, steps, cfg)
    mode = "refine" if pair.kind == "refine" else "swap"
    plan = None if m.naive else make_plan(prompts, None, mode, m.cross, m.self_)
    if m.blend:
        plan = with_blend(plan, prompts, make_blend(prompts, blend_words(pair), "", 0.3, 0.3, 0.2, 1))
    patched, _ = apply_edit(model, plan, self_blocks="all", mmdit_structure=m.structure,
                            own_changed=m.own_changed)
    return dit_eval._sample(patched, cond, neg, 2, seed, steps, cfg)


def ceiling_images(vae, pair, seed: int, i: int):
    """The source scene drawn for the pair's caption and its exact edit (same background, same
    geometry), each encoded and decoded by `vae`: uint8 [2, 32, 32, 3]."""
    import scenes_dataset as sd
    import torch

    sc = sd.scene_of(pair.source, np.random.default_rng(100_000 * seed + i))
    ed = sd.exact_edit(sc, pair)
    x = np.stack([sd.render(s, np.random.default_rng(200_000 * seed + i), bg_colour=sc.objs[0].colour)
                  for s in (sc, ed)])
    with torch.inference_mode():
        rec = vae.decode(vae.encode(torch.from_numpy(x).float() / 255)).clamp(0, 1).numpy()
    return (rec * 255 + 0.5).astype(np.uint8), x


def measure(model, clip, vae, pairs, methods, seeds, ceiling=True, keep_images=False, steps=20, cfg=4.0) -> dict:
    import dit_eval
    from scenes_judge import edit_figures

    table, images = {}, {}
    if ceiling:
        rows = []
        for seed in seeds:
            for i, p in enumerate(pairs):
                rec, _ = ceiling_images(vae, p, seed, i)
                rows.append(edit_figures(rec[0], rec[1], p))
        table[CEILING] = rows
    for m in methods:
        rows = []
        for seed in seeds:
            for i, p in enumerate(pairs):
                imgs = dit_eval.to_images(vae, run(model, clip, p, m, seed, steps, cfg))
                rows.append(edit_figures(imgs[0], imgs[1], p))
                if keep_images:
                    images[(m.name, seed, i)] = imgs
        table[m.name] = rows
    return {"table": table, "images": images, "pairs": pairs, "seeds": seeds}


def _mean(rows, key, kind=None):
    vals = [r[key] for r, k in rows if (kind is None or k == kind) and not np.isnan(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


def summary(result) -> dict:
    kinds = [p.kind for _ in result["seeds"] for p in result["pairs"]]
    out = {}
    for name, rows in result["table"].items():
        rk = list(zip(rows, kinds))
        out[name] = {k: _mean(rk, k) for k in KEYS}
        for kind in ("colour", "shape", "refine"):
            out[name][f"success_{kind}"] = _mean(rk, "success", kind)
            out[name][f"iou_{kind}"] = _mean(rk, "iou", kind)
        out[name]["n"] = len(rows)
    return out


def markdown(s: dict) -> str:
    lines = ["| method | edit success (colour / shape / refine) | geometry IoU (colour / shape / refine) | "
             "edited object IoU | other object IoU | edited centre shift (px) | PSNR outside (dB) | SSIM outside |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in s.items():
        lines.append(f"| {name} | {r['success']:.0%} ({r['success_colour']:.0%} / {r['success_shape']:.0%} / "
                     f"{r['success_refine']:.0%}) | {r['iou']:.3f} ({r['iou_colour']:.2f} / {r['iou_shape']:.2f} / "
                     f"{r['iou_refine']:.2f}) | {r['iou_edited']:.3f} | {r['iou_other']:.3f} | {r['shift']:.1f} | "
                     f"{r['psnr']:.1f} | {r['ssim']:.3f} |")
    return "\n".join(lines)


def goals(s: dict) -> list[str]:
    """The issue's goals for P2P (the MM-DiT defaults) against naive."""
    n, p = s[NAIVE.name], s[P2P.name]
    return [f"edit success >= 95%: {p['success']:.1%} {'met' if p['success'] >= 0.95 else 'NOT met'}",
            f"PSNR outside >= naive + 6 dB ({n['psnr'] + 6:.1f}): {p['psnr']:.1f} "
            f"{'met' if p['psnr'] >= n['psnr'] + 6 else 'NOT met'}",
            f"geometry IoU >= 0.9 and >= naive + 0.15 ({n['iou'] + 0.15:.3f}): {p['iou']:.3f} "
            f"{'met' if p['iou'] >= max(0.9, n['iou'] + 0.15) else 'NOT met'}"]


def generation_figures(model, clip, vae, n: int = 24, seed0: int = 1000, steps: int = 20, cfg: float = 4.0) -> dict:
    """The judge on n sampled captions of the pairs' sources and edits (colour drawn, shape)."""
    import dit_eval
    import scenes_dataset as sd
    from scenes_judge import judge, summarise

    caps = [c for p in sd.edit_pairs(16) for c in (p.source, p.edit)][:n]
    neg = dit_eval._encode(clip, "")
    res = []
    for i, c in enumerate(caps):
        img = dit_eval.to_images(vae, dit_eval._sample(model, dit_eval._encode(clip, c), neg, 1, seed0 + i, steps,
                                                        cfg))[0]
        res.append(judge(img, c))
    return summarise(res)


def vae_probe(vae) -> str:
    """For the decoder stage's log: the ceiling on 48 pairs through this VAE."""
    import scenes_dataset as sd

    r = summary(measure(None, None, vae, sd.edit_pairs(16), [], [0]))[CEILING]
    return f"ceiling success {r['success']:.2f} iou {r['iou']:.3f} psnr {r['psnr']:.1f}"


def evaluate(model_path: Path, args) -> dict:
    """train_dit_demo.py's eval (and --stage peek): generation figures and the edit table."""
    import scenes_dataset as sd

    from p2p_models.demo_dit import load_demo_dit_model

    model, clip, vae = load_demo_dit_model(model_path, expected_sha256=None)
    t0 = time.time()
    out = {"generation": generation_figures(model, clip, vae, args.eval_captions, steps=args.eval_steps, cfg=args.cfg)}
    names = getattr(args, "eval_methods", None)
    methods = [m for m in METHODS if names is None or m.name.split(" ")[0].lower() in names]
    per_kind = getattr(args, "eval_pairs", 16)
    s = summary(measure(model, clip, vae, sd.edit_pairs(per_kind), methods, getattr(args, "eval_seeds", [0]),
                        steps=args.eval_steps, cfg=args.cfg))
    out["edits"] = s
    out["eval_s"] = time.time() - t0
    print(markdown(s), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="default: the shipped scenes demo (sha256-checked)")
    ap.add_argument("--per-kind", type=int, default=16, help="pairs per kind (colour, shape, refine)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--methods", nargs="*", default=None, help="first words of method names (naive p2p full)")
    ap.add_argument("--variants", action="store_true", help="also the VARIANTS (other settings of the controls)")
    ap.add_argument("--sheet", default=None, help="write a source / naive / P2P sheet (png) of the first seed")
    args = ap.parse_args()
    from p2p_models.comfy_bootstrap import bootstrap

    bootstrap()
    import scenes_dataset as sd

    from p2p_models.demo_dit import load_demo_dit_model, load_demo_scenes_model

    if args.model:
        model, clip, vae = load_demo_dit_model(args.model, expected_sha256=None)
    else:
        model, clip, vae = load_demo_scenes_model()
    methods = [m for m in METHODS if args.methods is None or m.name.split(" ")[0].lower() in args.methods]
    methods += VARIANTS if args.variants else []
    pairs = sd.edit_pairs(args.per_kind)
    t0 = time.time()
    res = measure(model, clip, vae, pairs, methods, args.seeds, keep_images=bool(args.sheet))
    s = summary(res)
    print(f"{len(pairs)} pairs ({args.per_kind} colour swaps, shape swaps, refine additions) x seeds {args.seeds}; "
          f"euler/simple 20 steps, cfg 4; {time.time() - t0:.0f} s\n")
    print(markdown(s))
    if NAIVE in methods and P2P in methods:
        print("\nGoals (P2P vs naive):\n- " + "\n- ".join(goals(s)))
    if args.sheet:
        write_sheet(res, methods, Path(args.sheet))


def write_sheet(res, methods, path: Path, scale: int = 4) -> None:
    from PIL import Image

    seed = res["seeds"][0]
    rows = []
    for i, _p in enumerate(res["pairs"]):
        tiles = [res["images"][(methods[0].name, seed, i)][0]] + [res["images"][(m.name, seed, i)][1] for m in methods]
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST).save(path)


if __name__ == "__main__":
    main()
