"""The DiT demo's eval, shared with tests/test_demo_dit_p2p.py: stock comfy.sample.sample on the
fixed captions with the pixel judge; the P2P effect on colour-swap pairs (naive edit, P2P, and full
injection: every map from the source, the ceiling) with the judge's colour and layout IoU; the
object words' image->text attention on their objects, read with the engine's AttentionStore."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapes_dataset as ds
import torch
import torch.nn.functional as F
from judge import _NAMES, judge, label_pixels, object_mask, summarise

from p2p_models.demo_dit import LATENT_HW

STEPS, CFG, SAMPLER, SCHEDULER, SEED = 20, 4.0, "euler", "simple", 0


@dataclass(frozen=True)
class EditConfig:
    name: str
    cross: str  # cross_replace window
    self_: str  # self_replace window
    self_blocks: str = "auto"
    structure: str = "values_outside_edit"  # P2P Apply's mmdit_structure
    own_changed: bool = True  # changed words keep their own image->text maps (the MM-DiT rule)


NAIVE = EditConfig("naive", "", "")
P2P = EditConfig("p2p", "0.8", "0.4")  # the nodes' defaults (docs/mmdit_controls.md)
# every map from the source: the official rule for every word, the source's self maps in every block
FULL = EditConfig("full injection", "1.0", "1.0", "all", "self_maps", own_changed=False)


def colour_swap_pairs(n: int = 24) -> list[tuple[str, str, str, str]]:
    """(source, edit, old colour, new colour): the first object's colour swapped (as the SD1 demo's
    tests/test_demo_p2p_effect.py)."""
    names = list(ds.COLOURS)
    pairs = []
    for i, cap in enumerate(ds.EVAL_CAPTIONS[:n]):
        words = cap.split()
        k = next(j for j, w in enumerate(words) if w in ds.COLOURS)
        other = next(w for w in words[k + 1:] if w in ds.COLOURS)
        new = next(c for c in names[(names.index(words[k]) + 1 + i % 3):] + names if c not in (words[k], other))
        pairs.append((cap, " ".join(words[:k] + [new] + words[k + 1:]), words[k], new))
    return pairs


def _encode(clip, text):
    out = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True, return_dict=True)
    cond = out.pop("cond")
    return [[cond, out]]


def _sample(model, pos, neg, items, seed=SEED, steps=STEPS, cfg=CFG):
    import comfy.sample

    latent = torch.zeros(1, 16, LATENT_HW, LATENT_HW).repeat(items, 1, 1, 1)
    noise = comfy.sample.prepare_noise(latent, seed, [0] * items)  # one initial noise for every item
    with torch.inference_mode():
        return comfy.sample.sample(model, noise, steps, cfg, SAMPLER, SCHEDULER, pos, neg, latent,
                                   disable_pbar=True, seed=seed)


def to_images(vae, latents) -> list[np.ndarray]:
    with torch.inference_mode():
        imgs = vae.decode(latents).clamp(0, 1).numpy()
    return [(i * 255 + 0.5).astype(np.uint8) for i in imgs]


def run_pair(model, clip, src, edit, config: EditConfig, blend=None, seed=SEED, steps=STEPS, cfg=CFG):
    """(latents [2, 16, 8, 8], runtime or None, prompts) of source + edit under `config`."""
    from p2p_attention.apply import apply_edit
    from p2p_attention.conditioning import encode_prompt_set
    from p2p_attention.edits import make_plan, with_blend

    cond, prompts = encode_prompt_set(clip, src, [edit])
    neg = _encode(clip, "")
    if config.name == "naive" and blend is None:
        return _sample(model, cond, neg, 2, seed, steps, cfg), None, prompts
    plan = make_plan(prompts, None, "swap", config.cross or "0.0", config.self_ or "0.0")
    if blend is not None:
        plan = with_blend(plan, prompts, blend(prompts))
    patched, runtime = apply_edit(model, plan, self_blocks=config.self_blocks, mmdit_structure=config.structure,
                                  own_changed=config.own_changed)
    return _sample(patched, cond, neg, 2, seed, steps, cfg), runtime, prompts


def iou(a, b) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def attention_on_objects(maps: torch.Tensor, prompt, caption: str, img) -> dict[str, list[float]]:
    """Per object word (size, colour, shape) of `caption`: the share of its map (`maps` [h, w, L],
    normalised over the image) on its own object's pixels (the judge's colour mask of the image,
    pooled to the map), on its own half, and that object's area fraction (a uniform map's share)."""
    scene = ds.parse_caption(caption)
    words = caption.split()
    lab = label_pixels(img)
    h, w = maps.shape[:2]
    masks = []
    for o in scene.objs:
        mk = torch.from_numpy((lab == _NAMES.index(o.colour)).astype(np.float32))
        masks.append(F.adaptive_avg_pool2d(mk[None, None], (h, w))[0, 0])
    split = words.index("above") if scene.relation == "above" else words.index("and")
    out = {"own_object": [], "other_object": [], "area": [], "own_half": []}
    for wi, word in enumerate(words):
        if word not in ds.COLOURS and word not in ds.SHAPES and word not in ds.SIZES:
            continue
        k = int(wi > split)
        amap = maps[..., list(prompt.word_positions[wi])].sum(-1).float()
        amap = amap / amap.sum()
        half = amap[:, : w // 2].sum() if scene.relation == "left" else amap[: h // 2].sum()
        out["own_half"].append(float(half if k == 0 else 1 - half))
        if masks[k].sum() > 0:
            out["own_object"].append(float((amap * masks[k]).sum()))
            out["other_object"].append(float((amap * masks[1 - k]).sum()))
            out["area"].append(float(masks[k].mean()))
    return out


def measure_pairs(model, clip, vae, pairs, configs, seed=SEED, steps=STEPS, cfg=CFG) -> dict:
    """Per config: colour swap recognised (judge colour_in_place of the edited object), mean layout
    IoU (judge.object_mask, source vs edit); plus the source's attention localisation."""
    rows = {c.name: {"colour": [], "iou": []} for c in configs}
    att: dict[str, list[float]] = {}
    for src, edit, _old, _new in pairs:
        for c in configs:
            lat, runtime, prompts = run_pair(model, clip, src, edit, c, seed=seed, steps=steps, cfg=cfg)
            imgs = to_images(vae, lat)
            rows[c.name]["colour"].append(bool(judge(imgs[1], edit)[0]["colour_in_place"]))
            rows[c.name]["iou"].append(iou(object_mask(imgs[0]), object_mask(imgs[1])))
            if runtime is not None and c.name == configs[-1].name:
                for k, v in attention_on_objects(runtime.store.maps()[0], prompts.source, src, imgs[0]).items():
                    att.setdefault(k, []).extend(v)
    out = {name: {"colour": float(np.mean(r["colour"])), "iou": float(np.mean(r["iou"]))} for name, r in rows.items()}
    out["attention"] = {k: float(np.mean(v)) for k, v in att.items()}
    return out


def generation_figures(model, clip, vae, captions, seeds, steps=STEPS, cfg=CFG) -> tuple[dict, list]:
    neg = _encode(clip, "")
    imgs = []
    for cap, seed in zip(captions, seeds):
        imgs += to_images(vae, _sample(model, _encode(clip, cap), neg, 1, seed, steps, cfg))
    return summarise([judge(i, c) for i, c in zip(imgs, captions)]), imgs


def evaluate(model_path: Path, args) -> dict:
    from PIL import Image

    from p2p_models.demo_dit import load_demo_dit_model

    model, clip, vae = load_demo_dit_model(model_path, expected_sha256=None)
    caps = ds.EVAL_CAPTIONS[: args.eval_captions]
    t0 = time.time()
    summary, imgs = generation_figures(model, clip, vae, caps, [1000 + i for i in range(len(caps))],
                                       steps=args.eval_steps, cfg=args.cfg)
    summary["sec_per_image"] = (time.time() - t0) / len(caps)
    cols = 8
    rows = [np.concatenate(imgs[r * cols:(r + 1) * cols], axis=1) for r in range(len(imgs) // cols)]
    if rows:
        Image.fromarray(np.concatenate(rows, axis=0)).save(Path(args.work) / "eval_grid.png")
    pairs = colour_swap_pairs(args.eval_captions)
    summary["p2p_effect"] = measure_pairs(model, clip, vae, pairs, [NAIVE, P2P, FULL], steps=args.eval_steps,
                                          cfg=args.cfg)
    return summary


def vae_swap_ceiling(vae, pairs) -> dict:
    """The judge's ceiling through this VAE: each pair's source scene and its exact colour swap, drawn
    by the dataset's renderer (same background, same shapes), encoded and decoded: layout IoU and
    colour of the recoloured object (1.0 / 1.0 would need a lossless VAE)."""
    from dataclasses import replace

    ious, cols = [], []
    for i, (src, edit, _old, new) in enumerate(pairs):
        sc = ds.parse_caption(src)
        swapped = ds.Scene(sc.relation, (replace(sc.objs[0], colour=new), sc.objs[1]))
        x = np.stack([ds.render(s, np.random.default_rng(i)) for s in (sc, swapped)])
        with torch.inference_mode():
            rec = vae.decode(vae.encode(torch.from_numpy(x).float() / 255)).clamp(0, 1).numpy()
        rec = (rec * 255 + 0.5).astype(np.uint8)
        ious.append(iou(object_mask(rec[0]), object_mask(rec[1])))
        cols.append(bool(judge(rec[1], edit)[0]["colour_in_place"]))
    return {"iou": float(np.mean(ious)), "colour": float(np.mean(cols))}
