"""The DiT demo's VAE: ComfyUI's AutoencoderKL at 4x with 16 latent channels (32x32x3 <-> 8x8x16),
trained deterministically (L1 + MSE on the encoder's mean; half of each batch decodes slightly
noised latents, so that it tolerates a sampler's imperfect ones), then reparametrised exactly so that
ComfyUI's Flux latent format (process_in: (z - 0.1159) * 0.3611) gives zero mean and unit variance
per channel: the sampler sees normalised latents, stock nodes just work."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from train_common import cosine_lr, log, to_tensor

from p2p_models.demo_dit import build_dit_demo_vae

FLUX_SCALE, FLUX_SHIFT = 0.3611, 0.1159  # comfy.latent_formats.Flux


def _psnr(rec: torch.Tensor, x: torch.Tensor) -> float:
    return -10 * math.log10(F.mse_loss(rec, x).item() / 4)  # images in [-1, 1]


def train_vae(images: np.ndarray, args) -> dict:
    torch.manual_seed(args.seed + 1)
    vae = build_dit_demo_vae(seed=args.seed + 2)
    m = vae.first_stage_model.float().train()
    for p in m.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(m.parameters(), lr=args.vae_lr)
    gen = torch.Generator().manual_seed(args.seed + 3)
    total = args.vae_steps
    t0 = time.time()
    for step in range(total):
        idx = torch.randint(0, len(images), (args.vae_batch,), generator=gen)
        x = to_tensor(images[idx.numpy()])
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, total, args.vae_lr, warmup=20)
        mean = m.quant_conv(m.encoder(x)).chunk(2, dim=1)[0]
        # half of the batch decodes slightly noised latents
        noise = torch.randn(mean.shape, generator=gen) * args.vae_latent_noise * mean.detach().std()
        noise[: len(x) // 2] = 0
        rec = m.decoder(m.post_quant_conv(mean + noise))
        l1 = (rec - x).abs().mean()
        loss = l1 + 0.5 * F.mse_loss(rec, x) + 1e-6 * mean.square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == total - 1:
            log(f"vae step {step}/{total} l1 {l1.item():.4f} psnr {_psnr(rec[: len(x) // 2], x[: len(x) // 2]):.1f} dB  {time.time() - t0:.0f}s")
    m.eval()
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


@torch.no_grad()
def encode_all(vae_sd: dict, images: np.ndarray, bs: int = 64) -> torch.Tensor:
    """The encoder's mean latents (raw: before the Flux latent format's process_in)."""
    m = build_dit_demo_vae(state_dict=vae_sd).first_stage_model.float().eval()
    out = []
    for i in range(0, len(images), bs):
        out.append(m.quant_conv(m.encoder(to_tensor(images[i : i + bs]))).chunk(2, dim=1)[0])
    return torch.cat(out)


def normalise_latents(vae_sd: dict, latents: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Exact reparametrisation z' = (z - mu) * c + shift with c = 1 / (scale * std) per channel, so
    (z' - shift) * scale = (z - mu) / std; returns the VAE and the model-space latents."""
    mu, std = latents.mean(dim=(0, 2, 3)), latents.std(dim=(0, 2, 3))
    c = 1.0 / (FLUX_SCALE * std)
    sd = dict(vae_sd)
    zc = mu.numel()
    w, b = sd["quant_conv.weight"].clone(), sd["quant_conv.bias"].clone()  # [2zc, C, 1, 1]
    w[:zc] *= c[:, None, None, None]
    b[:zc] = (b[:zc] - mu) * c + FLUX_SHIFT
    b[zc:] = b[zc:] + 2 * torch.log(c)
    sd["quant_conv.weight"], sd["quant_conv.bias"] = w, b
    pw, pb = sd["post_quant_conv.weight"].clone(), sd["post_quant_conv.bias"].clone()  # [C, zc, 1, 1]
    pb = pb + pw[:, :, 0, 0] @ (mu - FLUX_SHIFT / c)  # z = (z' - shift) / c + mu
    pw = pw / c[None, :, None, None]
    sd["post_quant_conv.weight"], sd["post_quant_conv.bias"] = pw, pb
    return sd, (latents - mu[None, :, None, None]) / std[None, :, None, None]


@torch.no_grad()
def vae_psnr(vae_sd: dict, images: np.ndarray) -> float:
    vae = build_dit_demo_vae(state_dict=vae_sd)
    x = torch.from_numpy(images).float() / 255.0  # comfy layout [B, H, W, C] in [0, 1]
    rec = vae.decode(vae.encode(x))
    return float(-10 * torch.log10(F.mse_loss(rec.float().clamp(0, 1), x)))


# ---------------------------------------------------------------------- decoder refinement
def locality_loss(m, z: torch.Tensor, rec: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """vae_stage.locality_loss at this VAE's 4x and 8x8 latent: one side of each latent (from a
    random column/row 2..6 on) is replaced by another image's; decoded pixels more than 2 latent
    pixels away from that region should not move."""
    from vae_stage import far_from_side, replace_side

    side = int(torch.randint(0, 4, (1,), generator=gen))
    cut = int(torch.randint(3, 7, (1,), generator=gen))
    rec2 = m.decoder(m.post_quant_conv(replace_side(z, z.roll(1, 0), side, cut)))
    keep = 4 * (cut - 2)  # image columns (4 px per latent px) at least 2 latent px from the change
    return (far_from_side(rec2, side, keep) - far_from_side(rec, side, keep)).abs().mean()


def refine_decoder(vae_sd: dict, images: np.ndarray, args, probe=None) -> dict:
    """post_quant_conv + decoder trained further on the frozen (normalised) encoder's latents: the
    DiT's training data do not change, so this may run after it (or beside it). L1 + MSE, half of
    each batch on noised latents as in train_vae, plus --dec-local x locality_loss (on the clean
    half; absent or 0: none). `probe(vae_sd) -> str` is logged every 100 steps."""
    lat = encode_all(vae_sd, images)
    m = build_dit_demo_vae(state_dict=vae_sd).first_stage_model.float().train()
    params = list(m.post_quant_conv.parameters()) + list(m.decoder.parameters())
    for p in m.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=args.dec_lr)
    gen = torch.Generator().manual_seed(args.seed + 20)
    std = lat.std()
    t0 = time.time()
    for step in range(args.dec_steps):
        idx = torch.randint(0, len(images), (args.vae_batch,), generator=gen)
        x = to_tensor(images[idx.numpy()])
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, args.dec_steps, args.dec_lr, warmup=10)
        z = lat[idx]
        noise = torch.randn(z.shape, generator=gen) * args.vae_latent_noise * std
        noise[: len(x) // 2] = 0
        rec = m.decoder(m.post_quant_conv(z + noise))
        l1 = (rec - x).abs().mean()
        loss = l1 + 0.5 * F.mse_loss(rec, x)
        local = torch.zeros(())
        if getattr(args, "dec_local", 0) > 0:
            half = len(x) // 2
            local = locality_loss(m, z[:half], rec[:half], gen)
            loss = loss + args.dec_local * local
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == args.dec_steps - 1:
            extra = f" locality {local.item():.4f}" if getattr(args, "dec_local", 0) > 0 else ""
            if probe is not None and (step % 100 == 0 or step == args.dec_steps - 1):
                m.eval()
                extra += " " + probe({k: v.detach().clone() for k, v in m.state_dict().items()})
                m.train()
            log(f"decoder step {step}/{args.dec_steps} l1 {l1.item():.4f} psnr {_psnr(rec[: len(x) // 2], x[: len(x) // 2]):.1f} dB"
                f"{extra}  {time.time() - t0:.0f}s")
    m.eval()
    return {k: v.detach().clone() for k, v in m.state_dict().items()}
