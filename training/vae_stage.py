"""The VAE stages: ComfyUI's AutoencoderKL trained deterministically (L1 + MSE), the exact
reparametrisation that gives SD1's latent convention, and the decoder refinement on the frozen
encoder's latents with the locality loss (a latent change stays near its region in pixels)."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from train_common import LATENT_SCALE, cosine_lr, log, to_tensor

from p2p_models.demo_unet import DEMO_SPEC
from p2p_models.tiny_unet import build_vae


def _psnr(rec: torch.Tensor, x: torch.Tensor) -> float:
    return -10 * math.log10(F.mse_loss(rec, x).item() / 4)  # images in [-1, 1]: peak-to-peak 2


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
            log(f"vae step {step}/{total} l1 {l1.item():.4f} psnr {_psnr(rec, x):.1f} dB  {time.time() - t0:.0f}s")
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


# ---------------------------------------------------------------------- decoder refinement
def replace_side(z: torch.Tensor, other: torch.Tensor, side: int, cut: int) -> torch.Tensor:
    """z with one side taken from `other`: columns >= cut after rotating by side x 90 degrees
    (side 0: the right part, then bottom, left, top)."""
    zr = torch.rot90(z, side, dims=(-2, -1)).clone()
    zr[..., cut:] = torch.rot90(other, side, dims=(-2, -1))[..., cut:]
    return torch.rot90(zr, -side, dims=(-2, -1))


def far_from_side(x: torch.Tensor, side: int, n: int) -> torch.Tensor:
    """The first n columns after the same rotation: the part of x farthest from that side."""
    return torch.rot90(x, side, dims=(-2, -1))[..., :n]


def locality_loss(m, z: torch.Tensor, rec: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
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
        local = locality_loss(m, z, rec, gen) if args.dec_local > 0 else torch.zeros(())
        loss = loss + args.dec_local * local
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == args.dec_steps - 1:
            log(f"decoder step {step}/{args.dec_steps} l1 {l1.item():.4f} psnr {_psnr(rec, x):.1f} dB locality "
                f"{local.item():.4f}  {time.time() - t0:.0f}s")
    m.eval()
    return {k: v.detach().clone() for k, v in m.state_dict().items()}
