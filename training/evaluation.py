"""The eval: stock comfy.sample.sample on the fixed caption set, the pixel judge's figures, and
the per-token cross-attention maps read with the engine's AttentionStore (how much of each object
word's map falls on its own object / half of the image)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import shapes_dataset as ds
import torch
import torch.nn.functional as F
from judge import judge, summarise

from p2p_attention.attention import apply_maps, attention_maps
from p2p_attention.batch import batch_layout
from p2p_attention.prompts import tokenize_prompts
from p2p_attention.store import AttentionStore
from p2p_attention.unet_blocks import block_downsample, transformer_block_keys
from p2p_attention.unet_runtime import MapRecorder


@torch.inference_mode()  # training stages leave grad mode on
def sample(patcher, clip, vae, captions, seeds, steps=20, cfg=5.0, sampler="euler", scheduler="normal"):
    import comfy.sample

    out = []
    for cap, seed in zip(captions, seeds):
        cond, pooled = clip.encode_from_tokens(clip.tokenize(cap), return_pooled=True)
        uncond, upooled = clip.encode_from_tokens(clip.tokenize(""), return_pooled=True)
        latent = torch.zeros(1, 4, 16, 16)  # 32x32 image
        noise = comfy.sample.prepare_noise(latent, seed)
        s = comfy.sample.sample(
            patcher, noise, steps, cfg, sampler, scheduler,
            [[cond, {"pooled_output": pooled}]], [[uncond, {"pooled_output": upooled}]],
            latent, disable_pbar=True, seed=seed,
        )
        img = vae.decode(s)[0].clamp(0, 1).numpy()
        out.append((img * 255 + 0.5).astype(np.uint8))
    return out


def evaluate(model_path: Path, args, n_seeds: int = 2, with_maps: bool = True) -> dict:
    from PIL import Image

    from p2p_models.demo_unet import load_demo_model

    patcher, clip, vae = load_demo_model(model_path, expected_sha256=None)
    caps = ds.EVAL_CAPTIONS[: args.eval_captions or None]
    # seed 1000 + i + len(caps) * s for caption i, round s: the same images as tests/demo/test_demo_model.py
    all_caps = [c for _ in range(n_seeds) for c in caps]
    seeds = [1000 + i for i in range(len(all_caps))]
    t0 = time.time()
    imgs = sample(patcher, clip, vae, all_caps, seeds, steps=args.eval_steps, cfg=args.cfg)
    dt = (time.time() - t0) / len(all_caps)
    res = [judge(i, c) for i, c in zip(imgs, all_caps)]
    summary = summarise(res)
    summary["sec_per_image"] = dt
    summary["n_images"] = len(all_caps)
    summary["cfg"], summary["steps"] = args.cfg, args.eval_steps
    cols = min(8, len(imgs))
    grid = np.concatenate([np.concatenate(imgs[r * cols : (r + 1) * cols], axis=1) for r in range(len(imgs) // cols)], axis=0)
    Image.fromarray(grid).save(Path(args.work) / "eval_grid.png")
    if with_maps:
        summary.update(attention_localisation(patcher, clip, vae, caps, args))
    return summary


# ------------------------------------------------------------------------ attention maps
class MapProbe:
    """attn2 replace patch of the eval: attention from explicit softmax maps (as in training), and
    the engine's AttentionStore reading each call's cond map at the latent's resolution (16x16).

    The store is read and reset after every call so the maps are averaged over the calls at the
    end, as this eval always did (the store's own running sum adds in another order: its
    figures can differ in the last bits)."""

    def __init__(self, diffusion_model, prompt):
        keys = {key for key, f in block_downsample(diffusion_model).items() if f == 1}
        self.store = AttentionStore(prompt)
        self.recorder = MapRecorder(self.store, keys, 1)
        self.calls: list[torch.Tensor] = []  # per call: [16, 16, tokens]

    def __deepcopy__(self, memo):  # ModelPatcher.clone() deep-copies model_options: stay shared
        return self

    def __call__(self, q, k, v, extra):
        self.recorder(q, k, extra, batch_layout(q.shape[0], extra["cond_or_uncond"], n_edits=0))
        if self.store.layer_calls:
            self.calls.append(self.store.maps()[0])
            self.store.reset()
        return apply_maps(attention_maps(q, k, extra["n_heads"]), v, extra["n_heads"])

    def mean_maps(self) -> torch.Tensor:
        """The cond branch's maps averaged over layers and steps: [16 * 16, tokens]."""
        maps = torch.stack(self.calls).mean(0)
        return maps.reshape(-1, maps.shape[-1])


def attach_probe(patcher, probe):
    """Register `probe` as the attn2 replace of every transformer block of the UNet."""
    m = patcher.clone()
    for key in transformer_block_keys(m.get_model_object("diffusion_model")):
        m.set_model_attn2_replace(probe, *key)
    return m


def attention_localisation(patcher, clip, vae, caps, args) -> dict:
    """Share of each object word's cross-attention (16x16 maps, cond branch, all steps) that
    falls on its own half of the image, and on its own object's pixels (judge mask).
    Uniform maps give 0.5 and the object's area fraction respectively."""
    from judge import _NAMES, label_pixels

    half_share, obj_share, obj_area, other_obj_share = [], [], [], []
    for i, cap in enumerate(caps):
        probe = MapProbe(patcher.get_model_object("diffusion_model"), tokenize_prompts(clip, [cap])[1][0])
        img = sample(attach_probe(patcher, probe), clip, vae, [cap], [2000 + i], steps=args.eval_steps, cfg=args.cfg)[0]
        maps = probe.mean_maps()  # [256, 77]
        scene = ds.parse_caption(cap)
        words = cap.split()
        lab = label_pixels(img)
        # object k's pixel mask at 16x16 (mean-pool of its colour's 64x64 mask)
        masks = []
        for o in scene.objs:
            mk = torch.from_numpy((lab == _NAMES.index(o.colour)).astype(np.float32))
            masks.append(F.avg_pool2d(mk[None, None], mk.shape[-1] // 16)[0, 0].flatten())
        split = words.index("above") if scene.relation == "above" else words.index("and")
        for wi, w in enumerate(words):
            if w not in ds.COLOURS and w not in ds.SHAPES:
                continue
            k = 0 if wi < split else 1
            amap = maps[:, wi + 1]  # BOS is token 0
            amap = amap / amap.sum()
            grid = amap.view(16, 16)
            if scene.relation == "left":
                own = grid[:, :8].sum() if k == 0 else grid[:, 8:].sum()
            else:
                own = grid[:8].sum() if k == 0 else grid[8:].sum()
            half_share.append(float(own))
            if masks[k].sum() > 0:
                obj_share.append(float((amap * masks[k]).sum() / 1.0))
                obj_area.append(float(masks[k].mean()))
                other_obj_share.append(float((amap * masks[1 - k]).sum()))
    return {
        "attn_own_half_share": float(np.mean(half_share)),
        "attn_own_object_share": float(np.mean(obj_share)),
        "attn_object_area_fraction": float(np.mean(obj_area)),
        "attn_other_object_share": float(np.mean(other_obj_share)),
    }
