"""The UNet stages: ComfyUI's UNetModel and the SD1 CLIP text encoder trained jointly, eps
prediction on SD1's discrete schedule, 10% empty captions for CFG, min-SNR weights, an EMA of the
weights. Phase 1 from scratch, then warm restarts from the previous phase's EMA weights: phase 2
(cosine), phase 3 (constant learning rate, + the attention loss), phase 4 (the same losses, the
learning rate halving every --lr4-halflife steps)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from attention_loss import AttnCapture, attention_loss, capture_options, object_targets
from text_encoder import text_forward, text_model_of, tokenize
from train_common import LATENT_SCALE, cosine_lr, log

from p2p_attention.unet_blocks import transformer_block_keys
from p2p_models.demo_unet import DEMO_SPEC
from p2p_models.tiny_unet import build_clip, build_unet


def _build_models(args, init, phase):
    """The UNet patcher, CLIP and their trainable parameters (phase 1: fresh, with a smaller init
    for the token/position tables and a zero-initialised UNet output; later phases: `init`)."""
    torch.manual_seed(args.seed + 10 * phase)
    patcher = build_unet(DEMO_SPEC, seed=args.seed + 11, state_dict=None if init is None else init[0])
    clip = build_clip(DEMO_SPEC, seed=args.seed + 12, state_dict=None if init is None else init[1])
    dm = patcher.model.diffusion_model.float().train()
    clip.cond_stage_model.float().train()
    tm = text_model_of(clip)
    if init is None:
        with torch.no_grad():
            tm.embeddings.token_embedding.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(args.seed + 13))
            tm.embeddings.position_embedding.weight.normal_(0, 0.01, generator=torch.Generator().manual_seed(args.seed + 14))
            dm.out[-1].weight.zero_()
            dm.out[-1].bias.zero_()
    params = [p for p in dm.parameters()] + [p for p in tm.parameters()]
    for p in params:
        p.requires_grad_(True)
    return patcher, clip, params


def phase_lr(phase: int, step: int, steps: int, args) -> float:
    """Phases 3-4 use schedules that do not depend on the run's length, so the checkpoint after K
    steps is exactly a K-step run."""
    if phase == 3:  # constant after warmup
        return args.unet_lr3 * min(1.0, (step + 1) / 10)
    if phase == 4:  # halves every --lr4-halflife steps
        return args.unet_lr3 * min(1.0, (step + 1) / 10) * 0.5 ** (step / args.lr4_halflife)
    return cosine_lr(step, steps, args.unet_lr, warmup=40 if phase == 1 else 10)


def _noisy_batch(gen, x0_all, ids, empty, abar, args):
    """One training batch: sample indices, their tokens (dropped to "" with --p-uncond), timesteps,
    noise and the noised latents."""
    idx = torch.randint(0, len(x0_all), (args.batch,), generator=gen)
    x0 = x0_all[idx]
    tok = ids[idx].clone()
    drop = torch.rand(args.batch, generator=gen) < args.p_uncond
    tok[drop] = empty
    t = torch.randint(0, len(abar), (args.batch,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    a = abar[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
    return idx, tok, drop, t, eps, a, xt


def _eps_loss(pred, eps, a):
    """Min-SNR-weighted (gamma 5) eps MSE, and the per-sample MSE."""
    snr = a.view(-1) / (1 - a.view(-1))
    w = torch.clamp(snr, max=5.0) / snr
    per = (pred - eps).square().mean(dim=(1, 2, 3))
    return (w * per).mean(), per


def _state_dicts(patcher, clip) -> tuple[dict, dict]:
    unet_sd = {k: v.detach().clone() for k, v in patcher.model.diffusion_model.state_dict().items()}
    clip_sd = {k: v.detach().clone() for k, v in clip.cond_stage_model.state_dict().items()}
    return unet_sd, clip_sd


def save_ema_ckpt(patcher, clip, params, ema, path: Path) -> None:
    """Save the EMA weights (for inspecting a run while it trains) without disturbing training."""
    with torch.no_grad():
        live = [p.detach().clone() for p in params]
        for e, p in zip(ema, params):
            p.copy_(e)
        torch.save(_state_dicts(patcher, clip), path)
        for lv, p in zip(live, params):
            p.copy_(lv)


def _checkpoint(phase, step, steps, args, patcher, clip, params, ema) -> None:
    """Phases 3-4: the EMA after K steps as <work>/unet<phase>_<K>steps.pt; phases 1-2: the latest
    EMA as <work>/unet_ckpt.pt (for --stage peek), every --ckpt-every steps."""
    if phase >= 3 and args.ckpt_every and (step + 1) % args.ckpt_every == 0 and step + 1 < steps:
        save_ema_ckpt(patcher, clip, params, ema, Path(args.work) / f"unet{phase}_{step + 1}steps.pt")
        log(f"unet phase {phase}: EMA checkpoint after {step + 1} steps saved (== --unet-steps{phase} {step + 1})")
    elif phase < 3 and args.ckpt_every and step > 0 and step % args.ckpt_every == 0:
        save_ema_ckpt(patcher, clip, params, ema, Path(args.work) / "unet_ckpt.pt")
        log(f"unet step {step}: EMA checkpoint saved")


def train_unet(latents: torch.Tensor, captions: list[str], args, init=None, steps=None, phase=1, scenes=None) -> tuple[dict, dict]:
    """One phase (see the module's docstring); returns the EMA weights (unet, clip state dicts)."""
    steps = steps or args.unet_steps
    patcher, clip, params = _build_models(args, init, phase)
    dm, tm = patcher.model.diffusion_model, text_model_of(clip)
    opt = torch.optim.Adam(params, lr=args.unet_lr3 if phase >= 3 else args.unet_lr)
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
    t0 = time.time()
    run = arun = 0.0
    for step in range(steps):
        idx, tok, drop, t, eps, a, xt = _noisy_batch(gen, x0_all, ids, empty, abar, args)
        for g in opt.param_groups:
            g["lr"] = phase_lr(phase, step, steps, args)
        ctx = text_forward(tm, tok)
        if lam > 0:
            capture = AttnCapture()
            pred = dm(xt, t.float(), context=ctx, transformer_options=capture_options(keys, capture))
        else:
            pred = dm(xt, t.float(), context=ctx)
        loss, per = _eps_loss(pred, eps, a)
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
        _checkpoint(phase, step, steps, args, patcher, clip, params, ema)
        if step % 25 == 0 or step == steps - 1:
            extra = f" attn-loss(avg) {arun:.3f}" if lam > 0 else ""
            log(f"unet phase {phase} step {step}/{steps} loss {loss.item():.4f} eps-mse(avg) {run:.4f}{extra} lr {opt.param_groups[0]['lr']:.2e} {time.time() - t0:.0f}s")
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    return _state_dicts(patcher, clip)
