"""Train the pack's embedded demo model (models/demo/p2p_demo_tiny.safetensors) from scratch.

    OMP_NUM_THREADS=1 .venv/bin/python training/train_demo.py --fresh

Rerun phase 3 (and what follows) from the cached phase 2, or phase 4 from the cached phase 3
(see models/demo/README.md):

    OMP_NUM_THREADS=1 .venv/bin/python training/train_demo.py --stage resume     # or resume4

Inspect a running training's checkpoint: --stage peek [--peek-ckpt <work>/unet3_<K>steps.pt].

One command, fixed seeds, one CPU thread. Stages (each cached in --work, rerun with --fresh):
  1. data:   the synthetic captioned shapes dataset (training/shapes_dataset.py);
  2. vae:    ComfyUI's AutoencoderKL (2x: 32x32x3 <-> 16x16x4), deterministic, L1 + MSE; then an exact reparametrisation so that latent * 0.18215 has zero mean
             and unit variance per channel (SD1's latent convention, stock nodes just work);
  3. unet:   ComfyUI's UNetModel + SD1 CLIP text encoder (width 128) trained jointly (then a
             warm restart from the EMA weights, --unet-steps2), eps
             prediction on SD1's discrete schedule, 10% empty captions for CFG, min-SNR weights;
  3+. resume: phase 3, a second warm restart from phase 2's EMA weights (--unet-steps3 steps at a
             constant --unet-lr3 after a 10-step warmup, so the EMA checkpoint it saves after K
             steps, <work>/unet3_<K>steps.pt, is exactly what --unet-steps3 K gives), plus an
             auxiliary cross-attention loss (--attn-loss weight): each object word's (size,
             colour, shape) head-averaged cross-attention map at 16x16 and 8x8, normalised over
             the image, should put its mass on its own object's pixels (the dataset's shape
             masks): -log(share on the object). `--stage resume` reruns it (and phase 4) from
             the cached stages (then export and eval);
  3++. resume4: phase 4, a third warm restart from phase 3's EMA weights, the same losses, the
             learning rate halving every --lr4-halflife steps (also independent of the run's
             length: <work>/unet4_<K>steps.pt == --unet-steps4 K);
  3b. decoder: post_quant_conv + decoder refined on the frozen encoder's latents (the UNet's
             training data do not change, so this runs after it), with a locality loss so that
             a latent change stays near its region in pixels (local blend); `--stage decoder`
             reruns it from the cached stages (then export and eval);
  4. export: fp16 safetensors; only the token-embedding rows of the vocabulary are stored;
  5. eval:   stock comfy.sample.sample on the fixed caption set, pixel judge figures, and the
             per-token cross-attention maps (object words' mass on their own object).
Logs loss and figures to stdout and <work>/log.txt; figures also to <work>/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # appended: the repo's nodes/ package must never shadow ComfyUI's nodes.py
sys.path.insert(0, str(HERE))

from p2p_attention.comfy_bootstrap import bootstrap  # noqa: E402

bootstrap()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)

import shapes_dataset as ds  # noqa: E402
from judge import judge, summarise  # noqa: E402

from p2p_attention.attention import apply_maps, attention_maps  # noqa: E402
from p2p_attention.demo_model import DEMO_SPEC, TOKEN_KEY  # noqa: E402
from p2p_attention.model_build import build_clip, build_unet, build_vae  # noqa: E402
from p2p_attention.unet_blocks import transformer_block_keys  # noqa: E402

LATENT_SCALE = 0.18215
PHASE3_STEPS = 1400  # default --unet-steps3: phase 3's length (models/demo/README.md)
PHASE4_STEPS = 2000  # default --unet-steps4: the phase-4 checkpoint shipped (models/demo/README.md)
LOG = None
RESUME_STAGE = {3: "resume", 4: "resume4"}  # --stage that reruns a cached phase


def log(*a):
    msg = " ".join(str(x) for x in a)
    print(msg, flush=True)
    if LOG is not None:
        with open(LOG, "a") as f:
            f.write(msg + "\n")


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def cosine_lr(step: int, total: int, base: float, warmup: int = 50, floor: float = 0.1) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


# ----------------------------------------------------------------------------------------- VAE
def train_vae(images: np.ndarray, args) -> dict:
    torch.manual_seed(args.seed + 1)
    vae = build_vae(DEMO_SPEC, seed=args.seed + 2)
    m = vae.first_stage_model.float().train()
    for p in m.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(m.parameters(), lr=args.vae_lr)
    gen = torch.Generator().manual_seed(args.seed + 3)
    n = len(images)
    total = args.vae_steps
    t0 = time.time()
    for step in range(total):
        idx = torch.randint(0, n, (args.vae_batch,), generator=gen)
        x = to_tensor(images[idx.numpy()])
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, total, args.vae_lr, warmup=20)
        mean = m.quant_conv(m.encoder(x)).chunk(2, dim=1)[0]
        rec = m.decoder(m.post_quant_conv(mean))  # deterministic: ComfyUI encodes with the mode
        l1 = (rec - x).abs().mean()
        loss = l1 + 0.5 * F.mse_loss(rec, x) + 1e-6 * mean.square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == total - 1:
            psnr = -10 * math.log10(F.mse_loss(rec, x).item() / 4)
            log(f"vae step {step}/{total} l1 {l1.item():.4f} psnr {psnr:.1f} dB  {time.time() - t0:.0f}s")
    m.eval()
    sd = {k: v.detach().clone() for k, v in m.state_dict().items()}
    return sd


def replace_side(z: torch.Tensor, other: torch.Tensor, side: int, cut: int) -> torch.Tensor:
    """z with one side taken from `other`: columns >= cut after rotating by side x 90 degrees
    (side 0: the right part, then bottom, left, top)."""
    zr = torch.rot90(z, side, dims=(-2, -1)).clone()
    zr[..., cut:] = torch.rot90(other, side, dims=(-2, -1))[..., cut:]
    return torch.rot90(zr, -side, dims=(-2, -1))


def far_from_side(x: torch.Tensor, side: int, n: int) -> torch.Tensor:
    """The first n columns after the same rotation: the part of x farthest from that side."""
    return torch.rot90(x, side, dims=(-2, -1))[..., :n]


def _locality_loss(m, z: torch.Tensor, rec: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """How far a latent change travels in the decoded image: one side of each latent (from a random
    column/row on, a random side) is replaced by another image's; the decoded pixels more than 3
    latent pixels away from that region should not move. Local blend keeps the source's latent
    outside its mask; without this the decoder (its mid-block attention spans the whole 16x16
    latent) moves the untouched half of the image by ~7/255."""
    side = int(torch.randint(0, 4, (1,), generator=gen))
    cut = int(torch.randint(4, 13, (1,), generator=gen))
    rec2 = m.decoder(m.post_quant_conv(replace_side(z, z.roll(1, 0), side, cut)))
    keep = 2 * (cut - 3)  # image columns (2 px per latent px) at least 3 latent px from the change
    return (far_from_side(rec2, side, keep) - far_from_side(rec, side, keep)).abs().mean()


def refine_decoder(vae_sd: dict, latents: torch.Tensor, images: np.ndarray, args) -> dict:
    """Train post_quant_conv + decoder on the frozen encoder's (normalised) latents, L1 + MSE
    plus --dec-local x the locality loss.

    The UNet is trained on those same latents, so this stage may run after it."""
    vae = build_vae(DEMO_SPEC, state_dict=vae_sd)
    m = vae.first_stage_model.float().train()
    params = list(m.post_quant_conv.parameters()) + list(m.decoder.parameters())
    for p in m.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=args.dec_lr)
    gen = torch.Generator().manual_seed(args.seed + 20)
    t0 = time.time()
    for step in range(args.dec_steps):
        idx = torch.randint(0, len(images), (args.vae_batch,), generator=gen)
        x = to_tensor(images[idx.numpy()])
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, args.dec_steps, args.dec_lr, warmup=10)
        z = latents[idx]
        rec = m.decoder(m.post_quant_conv(z))
        l1 = (rec - x).abs().mean()
        loss = l1 + 0.5 * F.mse_loss(rec, x)
        local = _locality_loss(m, z, rec, gen) if args.dec_local > 0 else torch.zeros(())
        loss = loss + args.dec_local * local
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == args.dec_steps - 1:
            psnr = -10 * math.log10(F.mse_loss(rec, x).item() / 4)
            log(f"decoder step {step}/{args.dec_steps} l1 {l1.item():.4f} psnr {psnr:.1f} dB locality "
                f"{local.item():.4f}  {time.time() - t0:.0f}s")
    m.eval()
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


@torch.no_grad()
def encode_all(vae_sd: dict, images: np.ndarray, bs: int = 64) -> torch.Tensor:
    vae = build_vae(DEMO_SPEC, state_dict=vae_sd)
    m = vae.first_stage_model.float().eval()
    out = []
    for i in range(0, len(images), bs):
        h = m.quant_conv(m.encoder(to_tensor(images[i : i + bs])))
        out.append(h.chunk(2, dim=1)[0])
    return torch.cat(out)


def normalise_latents(vae_sd: dict, latents: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Exact reparametrisation z' = (z - mu) * c with c = 1 / (0.18215 * std), per channel."""
    mu = latents.mean(dim=(0, 2, 3))
    std = latents.std(dim=(0, 2, 3))
    c = 1.0 / (LATENT_SCALE * std)
    sd = dict(vae_sd)
    zc = mu.numel()
    w, b = sd["quant_conv.weight"].clone(), sd["quant_conv.bias"].clone()  # [2zc, C, 1, 1]
    w[:zc] *= c[:, None, None, None]
    b[:zc] = (b[:zc] - mu) * c
    b[zc:] = b[zc:] + 2 * torch.log(c)
    sd["quant_conv.weight"], sd["quant_conv.bias"] = w, b
    pw, pb = sd["post_quant_conv.weight"].clone(), sd["post_quant_conv.bias"].clone()  # [C, zc, 1, 1]
    pb = pb + (pw[:, :, 0, 0] @ mu)
    pw = pw / c[None, :, None, None]
    sd["post_quant_conv.weight"], sd["post_quant_conv.bias"] = pw, pb
    return sd, (latents - mu[None, :, None, None]) * c[None, :, None, None]


@torch.no_grad()
def vae_psnr(vae_sd: dict, images: np.ndarray) -> float:
    vae = build_vae(DEMO_SPEC, state_dict=vae_sd)
    x = torch.from_numpy(images).float() / 255.0  # comfy layout [B, H, W, C] in [0, 1]
    rec = vae.decode(vae.encode(x))
    return float(-10 * torch.log10(F.mse_loss(rec.float().clamp(0, 1), x)))


# ---------------------------------------------------------------------------- text encoder
def text_model_of(clip):
    return clip.cond_stage_model.clip_l.transformer.text_model


def text_forward(tm, ids: torch.Tensor) -> torch.Tensor:
    """Out-of-place copy of ComfyUI's CLIPTextModel_ forward (causal, layer 'last', final LN)."""
    x = tm.embeddings.token_embedding.weight[ids] + tm.embeddings.position_embedding.weight[: ids.shape[1]]
    for layer in tm.encoder.layers:
        h = layer.layer_norm1(x)
        att = layer.self_attn
        b, n, d = h.shape
        q, k, v = (t.view(b, n, att.heads, d // att.heads).transpose(1, 2) for t in (att.q_proj(h), att.k_proj(h), att.v_proj(h)))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + att.out_proj(o.transpose(1, 2).reshape(b, n, d))
        x = x + layer.mlp(layer.layer_norm2(x))
    return tm.final_layer_norm(x)


def tokenize(clip, caption: str) -> list[int]:
    return [t for t, _w in clip.tokenize(caption)["l"][0]]


# ------------------------------------------------------------------------------------ UNet
class AttnCapture:
    """attn2 replace patch for training: explicit softmax attention (differentiable), keeps the
    head-averaged maps [B, Nq, 77] of the layers whose query count is in `keep`."""

    def __init__(self, keep=(256, 64)):
        self.keep = keep
        self.maps = []

    def __call__(self, q, k, v, extra):
        attn = attention_maps(q, k, extra["n_heads"])
        if q.shape[1] in self.keep:
            self.maps.append(attn.mean(1))
        return apply_maps(attn, v, extra["n_heads"])


def object_targets(scenes, captions, clip) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: token positions of each object's size/colour/shape words [N, 6] (-1 pad), the
    object they name [N, 6], and the objects' coverage masks at 16x16 [N, 2, 256]."""
    n = len(scenes)
    pos = torch.full((n, 6), -1, dtype=torch.long)
    obj = torch.zeros((n, 6), dtype=torch.long)
    masks = torch.zeros((n, 2, 256))
    for i, (sc, cap) in enumerate(zip(scenes, captions)):
        words = cap.split()
        split = words.index("above") if sc.relation == "above" else words.index("and")
        j = 0
        for wi, w in enumerate(words):
            if w in ds.COLOURS or w in ds.SHAPES or w in ds.SIZES:
                pos[i, j], obj[i, j] = wi + 1, int(wi > split)  # BOS is token 0
                j += 1
        for k, o in enumerate(sc.objs):
            m = torch.from_numpy(ds.shape_mask(o.shape, o.cx, o.cy, o.radius, ss=4))
            masks[i, k] = F.avg_pool2d(m[None, None], 2).flatten()
    tok = tokenize(clip, captions[0])
    assert tok[len(captions[0].split()) + 1] == tok[-1] and tok[len(captions[0].split())] != tok[-1], "one token per word"
    return pos, obj, masks


def attention_loss(maps: list[torch.Tensor], pos, obj, masks16, valid) -> torch.Tensor:
    """Mean over layers and object words of -log(share of the word's normalised map on its object)."""
    if not valid.any():
        return torch.zeros(())
    b = pos.shape[0]
    losses = []
    for a in maps:  # [B, Nq, 77]
        nq = a.shape[1]
        side = int(round(nq**0.5))
        m = masks16 if side == 16 else F.adaptive_avg_pool2d(masks16.view(b * 2, 1, 16, 16), side).view(b, 2, nq)
        at = a.gather(2, pos.clamp(min=0)[:, None, :].expand(b, nq, pos.shape[1]))  # [B, Nq, 6]
        at = at / at.sum(1, keepdim=True)
        mk = m.gather(1, obj[:, :, None].expand(b, obj.shape[1], nq))  # [B, 6, Nq]
        share = (at * mk.transpose(1, 2)).sum(1)  # [B, 6]
        losses.append(-(share + 1e-4).log()[valid])
    return torch.cat(losses).mean()


def train_unet(latents: torch.Tensor, captions: list[str], args, init=None, steps=None, phase=1, scenes=None) -> tuple[dict, dict]:
    """Phase 1 from scratch; phase 2 (warm restart) from phase 1's EMA weights `init`; phase 3 from
    phase 2's, at a constant learning rate, with the auxiliary cross-attention loss; phase 4 from
    phase 3's, the same losses with an exponentially decaying learning rate."""
    steps = steps or args.unet_steps
    torch.manual_seed(args.seed + 10 * phase)
    patcher = build_unet(DEMO_SPEC, seed=args.seed + 11, state_dict=None if init is None else init[0])
    clip = build_clip(DEMO_SPEC, seed=args.seed + 12, state_dict=None if init is None else init[1])
    dm = patcher.model.diffusion_model.float().train()
    enc = clip.cond_stage_model.float().train()
    tm = text_model_of(clip)
    if init is None:  # smaller init for the token/position tables, zero-init UNet output
        with torch.no_grad():
            tm.embeddings.token_embedding.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(args.seed + 13))
            tm.embeddings.position_embedding.weight.normal_(0, 0.01, generator=torch.Generator().manual_seed(args.seed + 14))
            dm.out[-1].weight.zero_()
            dm.out[-1].bias.zero_()
    params = [p for p in dm.parameters()] + [p for p in tm.parameters()]
    for p in params:
        p.requires_grad_(True)
    base_lr = args.unet_lr3 if phase >= 3 else args.unet_lr
    opt = torch.optim.Adam(params, lr=base_lr)
    ema = [p.detach().clone() for p in params]
    lam = args.attn_loss if phase >= 3 else 0.0
    if lam > 0:
        pos_all, obj_all, masks_all = object_targets(scenes, captions, clip)
        keys = transformer_block_keys(dm)

    cache: dict[str, list[int]] = {}
    ids = torch.tensor([cache.setdefault(c, tokenize(clip, c)) for c in captions])
    empty = torch.tensor(tokenize(clip, ""))
    sigmas = patcher.model.model_sampling.sigmas.float()
    abar = 1.0 / (1.0 + sigmas**2)  # alphas_cumprod of SD1's discrete schedule
    x0_all = latents * LATENT_SCALE
    gen = torch.Generator().manual_seed(args.seed + 15 + 100 * (phase - 1))
    n = len(latents)
    t0 = time.time()
    run = arun = 0.0
    for step in range(steps):
        idx = torch.randint(0, n, (args.batch,), generator=gen)
        x0 = x0_all[idx]
        tok = ids[idx].clone()
        drop = torch.rand(args.batch, generator=gen) < args.p_uncond
        tok[drop] = empty
        t = torch.randint(0, len(abar), (args.batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a = abar[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        for g in opt.param_groups:
            # Phases 3-4 use schedules that do not depend on the run's length, so the
            # checkpoint after K steps is exactly a K-step run.
            if phase == 3:  # constant after warmup
                g["lr"] = base_lr * min(1.0, (step + 1) / 10)
            elif phase == 4:  # halves every --lr4-halflife steps
                g["lr"] = base_lr * min(1.0, (step + 1) / 10) * 0.5 ** (step / args.lr4_halflife)
            else:
                g["lr"] = cosine_lr(step, steps, args.unet_lr, warmup=40 if phase == 1 else 10)
        ctx = text_forward(tm, tok)
        if lam > 0:
            capture = AttnCapture()
            topts = {"patches_replace": {"attn2": {key: capture for key in keys}}}
            pred = dm(xt, t.float(), context=ctx, transformer_options=topts)
        else:
            pred = dm(xt, t.float(), context=ctx)
        snr = a.view(-1) / (1 - a.view(-1))
        w = torch.clamp(snr, max=5.0) / snr
        per = (pred - eps).square().mean(dim=(1, 2, 3))
        loss = (w * per).mean()
        if lam > 0:
            valid = (pos_all[idx] >= 0) & ~drop[:, None]
            la = attention_loss(capture.maps, pos_all[idx], obj_all[idx], masks_all[idx], valid)
            arun = la.item() if step == 0 else 0.98 * arun + 0.02 * la.item()
            loss = loss + lam * la
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p.detach(), 1 - decay)
        run = per.mean().item() if step == 0 else 0.98 * run + 0.02 * per.mean().item()
        if phase >= 3 and args.ckpt_every and (step + 1) % args.ckpt_every == 0 and step + 1 < steps:
            save_ema_ckpt(dm, enc, params, ema, Path(args.work) / f"unet{phase}_{step + 1}steps.pt")
            log(f"unet phase {phase}: EMA checkpoint after {step + 1} steps saved (== --unet-steps{phase} {step + 1})")
        elif phase < 3 and args.ckpt_every and step > 0 and step % args.ckpt_every == 0:
            save_ema_ckpt(dm, enc, params, ema, Path(args.work) / "unet_ckpt.pt")
            log(f"unet step {step}: EMA checkpoint saved")
        if step % 25 == 0 or step == steps - 1:
            extra = f" attn-loss(avg) {arun:.3f}" if lam > 0 else ""
            log(f"unet phase {phase} step {step}/{steps} loss {loss.item():.4f} eps-mse(avg) {run:.4f}{extra} lr {opt.param_groups[0]['lr']:.2e} {time.time() - t0:.0f}s")
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    unet_sd = {k: v.detach().clone() for k, v in dm.state_dict().items()}
    clip_sd = {k: v.detach().clone() for k, v in enc.state_dict().items()}
    return unet_sd, clip_sd


def save_ema_ckpt(dm, enc, params, ema, path: Path) -> None:
    """Save the EMA weights (for inspecting a run while it trains) without disturbing training."""
    with torch.no_grad():
        live = [p.detach().clone() for p in params]
        for e, p in zip(ema, params):
            p.copy_(e)
        torch.save(({k: v.clone() for k, v in dm.state_dict().items()}, {k: v.clone() for k, v in enc.state_dict().items()}), path)
        for lv, p in zip(live, params):
            p.copy_(lv)


# ---------------------------------------------------------------------------------- export
def used_token_ids(captions: list[str] | None = None) -> list[int]:
    """Token ids of the vocabulary (+ start/end); with captions, checks they use no others."""
    clip = build_clip(DEMO_SPEC, seed=0)
    used = {tok for w in ds.vocabulary() + [""] for tok in tokenize(clip, w)}
    if captions is not None:
        extra = {tok for c in set(captions) for tok in tokenize(clip, c)} - used
        assert not extra, f"captions use tokens outside the vocabulary: {extra}"
    return sorted(used)


def export(unet_sd: dict, clip_sd: dict, vae_sd: dict, used_ids: list[int], out: Path) -> None:
    import safetensors.torch

    sd = {}
    for k, v in unet_sd.items():
        sd["unet." + k] = v.half().contiguous()
    for k, v in clip_sd.items():
        if k == TOKEN_KEY or k.endswith("position_ids"):
            continue
        sd["clip." + k] = v.half().contiguous() if v.is_floating_point() else v.contiguous()
    ids = torch.tensor(sorted(set(used_ids)), dtype=torch.int32)
    sd["clip.token_ids"] = ids
    sd["clip.token_rows"] = clip_sd[TOKEN_KEY][ids.long()].half().contiguous()
    for k, v in vae_sd.items():
        sd["vae." + k] = v.half().contiguous()
    out.parent.mkdir(parents=True, exist_ok=True)
    # One metadata entry: safetensors writes its metadata map in hash order, so two entries
    # would make reruns differ in bytes (and sha256) with identical tensors.
    safetensors.torch.save_file(sd, str(out), metadata={"model": "p2p_demo_tiny"})


# ------------------------------------------------------------------------------------ eval
class AttnStore:
    """attn2 replace patch computing softmax maps; stores per-token maps of the cond branch."""

    def __init__(self):
        self.maps = {}  # Nq -> list of head-averaged [B, Nq, Nk] maps of the cond branch

    def __deepcopy__(self, memo):  # ModelPatcher.clone() deep-copies model_options: stay shared
        return self

    def __call__(self, q, k, v, extra):
        attn = attention_maps(q, k, extra["n_heads"])
        cu = extra["cond_or_uncond"]
        per = q.shape[0] // len(cu)
        if 0 in cu:
            ci = cu.index(0)
            self.maps.setdefault(q.shape[1], []).append(attn[ci * per : (ci + 1) * per].mean(1))
        return apply_maps(attn, v, extra["n_heads"])


def attach_store(patcher, store):
    """Register `store` as the attn2 replace of every transformer block of the UNet."""
    m = patcher.clone()
    for key in transformer_block_keys(m.get_model_object("diffusion_model")):
        m.set_model_attn2_replace(store, *key)
    return m


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

    from p2p_attention.demo_model import load_demo_model

    patcher, clip, vae = load_demo_model(model_path, expected_sha256=None)
    caps = ds.EVAL_CAPTIONS[: args.eval_captions or None]
    # seed 1000 + i + len(caps) * s for caption i, round s: the same images as tests/test_demo_model.py
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


def attention_localisation(patcher, clip, vae, caps, args) -> dict:
    """Share of each object word's cross-attention (16x16 maps, cond branch, all steps) that
    falls on its own half of the image, and on its own object's pixels (judge mask).
    Uniform maps give 0.5 and the object's area fraction respectively."""
    from judge import _NAMES, label_pixels

    half_share, obj_share, obj_area, other_obj_share = [], [], [], []
    for i, cap in enumerate(caps):
        store = AttnStore()
        m = attach_store(patcher, store)
        img = sample(m, clip, vae, [cap], [2000 + i], steps=args.eval_steps, cfg=args.cfg)[0]
        maps = torch.stack([a[0] for a in store.maps[256]]).mean(0)  # [256, 77]
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


# ------------------------------------------------------------------------------------ main
def main():
    global LOG
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "models" / "demo" / "p2p_demo_tiny.safetensors"))
    p.add_argument("--work", default=str(HERE / "_work"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=8000)
    p.add_argument("--vae-steps", type=int, default=200)
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--dec-steps", type=int, default=600, help="decoder refinement on frozen latents")
    p.add_argument("--dec-lr", type=float, default=1e-3)
    p.add_argument("--dec-local", type=float, default=3.0, help="decoder refinement: locality loss weight")
    p.add_argument("--unet-steps", type=int, default=400)
    p.add_argument("--unet-steps2", type=int, default=250, help="phase 2: warm restart from phase 1's EMA")
    p.add_argument("--unet-steps3", type=int, default=PHASE3_STEPS, help="phase 3: warm restart from phase 2's EMA, + attention loss")
    p.add_argument("--unet-lr3", type=float, default=1e-3, help="phase 3's constant learning rate")
    p.add_argument("--attn-loss", type=float, default=0.05, help="phases 3-4's cross-attention localisation loss weight")
    p.add_argument("--unet-steps4", type=int, default=PHASE4_STEPS, help="phase 4: warm restart from phase 3's EMA, decaying learning rate")
    p.add_argument("--lr4-halflife", type=float, default=400.0, help="phase 4's learning rate (from --unet-lr3) halves every this many steps")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--unet-lr", type=float, default=1e-3)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--p-uncond", type=float, default=0.1)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--eval-steps", type=int, default=20)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--stage", default="all", choices=["all", "vae", "unet", "resume", "resume4", "decoder", "export", "eval", "peek"])
    p.add_argument("--peek-ckpt", default=None, help="checkpoint for --stage peek (default <work>/unet_ckpt.pt)")
    p.add_argument("--eval-seeds", type=int, default=4, help="rounds of the fixed captions (seeds 1000 + i + 24 s)")
    p.add_argument("--eval-captions", type=int, default=0, help="evaluate the first K fixed captions only (0: all)")
    p.add_argument("--fresh", action="store_true", help="ignore cached stages in --work")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    LOG = work / "log.txt"
    log(f"== train_demo {time.strftime('%Y-%m-%d %H:%M:%S')} args {vars(args)}")
    T0 = time.time()

    if args.stage == "peek":  # evaluate the running training's last EMA checkpoint
        unet_sd, clip_sd = torch.load(args.peek_ckpt or work / "unet_ckpt.pt")
        peek = work / "peek.safetensors"
        vae_file = work / "vae_refined.pt" if (work / "vae_refined.pt").exists() else work / "vae.pt"
        export(unet_sd, clip_sd, torch.load(vae_file), used_token_ids(), peek)
        summary = evaluate(peek, args, n_seeds=args.eval_seeds)
        log("peek: " + json.dumps(summary, indent=1))
        return

    t = time.time()
    images, captions, scenes = ds.make_dataset(args.n_train, seed=args.seed)
    log(f"data: {len(images)} images in {time.time() - t:.1f}s, e.g. {captions[0]!r}")

    vae_path = work / "vae.pt"
    if vae_path.exists() and not args.fresh:
        vae_sd = torch.load(vae_path)
    else:
        t = time.time()
        raw = train_vae(images, args)
        lat = encode_all(raw, images)
        vae_sd, _ = normalise_latents(raw, lat)
        torch.save(vae_sd, vae_path)
        log(f"vae trained in {time.time() - t:.0f}s")
    held = ds.make_dataset(256, seed=args.seed + 999)[0]
    log(f"vae psnr on held-out images: {vae_psnr(vae_sd, held):.2f} dB")
    if args.stage == "vae":
        return

    lat_path = work / "latents.pt"
    if lat_path.exists() and not args.fresh and lat_path.stat().st_mtime >= vae_path.stat().st_mtime:
        latents = torch.load(lat_path)
    else:
        latents = encode_all(vae_sd, images)
        torch.save(latents, lat_path)
    log(f"latents {tuple(latents.shape)} mean {latents.mean():.3f} std*{LATENT_SCALE} {latents.std() * LATENT_SCALE:.3f}")

    unet_path = work / "unet.pt"
    if args.stage == "resume":
        for f in (vae_path, lat_path, unet_path, work / "unet2.pt"):
            assert f.exists(), f"--stage resume needs the cached {f}"
    retrained = False  # once a phase is retrained, the cached later phases are stale
    if unet_path.exists() and not args.fresh and args.stage not in ("unet",):
        unet_sd, clip_sd = torch.load(unet_path)
    else:
        retrained = True
        t = time.time()
        unet_sd, clip_sd = train_unet(latents, captions, args)
        torch.save((unet_sd, clip_sd), unet_path)
        log(f"unet + text encoder trained in {time.time() - t:.0f}s")
    # Warm restarts, each from the previous phase's EMA weights; "resume"/"resume4" rerun phase 3/4.
    for phase, steps, name in (
        (2, args.unet_steps2, "unet2.pt"),
        (3, args.unet_steps3, f"unet3_{args.unet_steps3}steps.pt"),
        (4, args.unet_steps4, f"unet4_{args.unet_steps4}steps.pt"),
    ):
        if steps <= 0:
            continue
        path = work / name
        if path.exists() and not args.fresh and not retrained and args.stage != RESUME_STAGE.get(phase):
            unet_sd, clip_sd = torch.load(path)
        else:
            retrained = True
            t = time.time()
            unet_sd, clip_sd = train_unet(latents, captions, args, init=(unet_sd, clip_sd), steps=steps, phase=phase, scenes=scenes)
            torch.save((unet_sd, clip_sd), path)
            log(f"unet phase {phase} trained in {time.time() - t:.0f}s")

    dec_path = work / "vae_refined.pt"
    if dec_path.exists() and not args.fresh and args.stage != "decoder":
        vae_sd = torch.load(dec_path)
    elif args.dec_steps > 0:
        t = time.time()
        vae_sd = refine_decoder(vae_sd, latents, images, args)
        torch.save(vae_sd, dec_path)
        log(f"decoder refined in {time.time() - t:.0f}s; held-out psnr {vae_psnr(vae_sd, held):.2f} dB")

    out = Path(args.out)
    if args.stage in ("all", "unet", "resume", "resume4", "decoder", "export"):
        export(unet_sd, clip_sd, vae_sd, used_token_ids(captions), out)
        from p2p_attention.demo_model import sha256_of

        log(f"exported {out} ({out.stat().st_size / 2**20:.2f} MiB) sha256 {sha256_of(out)}")
    log(f"training wall time {time.time() - T0:.0f}s")

    summary = evaluate(out, args, n_seeds=args.eval_seeds)
    log("eval: " + json.dumps(summary, indent=1))
    (work / "metrics.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
