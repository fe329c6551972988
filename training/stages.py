"""The pipeline's stages, one function each, in the order train_demo.main runs them. Each stage
caches its result in --work and reuses it unless --fresh (or the --stage that reruns it) is given
or an earlier stage was retrained."""

from __future__ import annotations

import json
import time
from pathlib import Path

import shapes_dataset as ds
import torch
from evaluation import evaluate
from export_weights import export, used_token_ids
from train_common import LATENT_SCALE, log
from unet_stage import train_unet
from vae_stage import encode_all, normalise_latents, refine_decoder, train_vae, vae_psnr

RESUME_STAGE = {3: "resume", 4: "resume4"}  # --stage that reruns a cached phase
EXPORTING_STAGES = ("all", "unet", "resume", "resume4", "decoder", "export")


def peek(args, work: Path) -> None:
    """Evaluate a running training's EMA checkpoint (default <work>/unet_ckpt.pt)."""
    unet_sd, clip_sd = torch.load(args.peek_ckpt or work / "unet_ckpt.pt")
    out = work / "peek.safetensors"
    vae_file = work / "vae_refined.pt" if (work / "vae_refined.pt").exists() else work / "vae.pt"
    export(unet_sd, clip_sd, torch.load(vae_file), used_token_ids(), out)
    summary = evaluate(out, args, n_seeds=args.eval_seeds)
    log("peek: " + json.dumps(summary, indent=1))


def data(args):
    """The synthetic captioned shapes dataset: images, captions, scenes."""
    t = time.time()
    images, captions, scenes = ds.make_dataset(args.n_train, seed=args.seed)
    log(f"data: {len(images)} images in {time.time() - t:.1f}s, e.g. {captions[0]!r}")
    return images, captions, scenes


def vae(args, work: Path, images) -> dict:
    """The VAE, trained then reparametrised to SD1's latent convention (<work>/vae.pt)."""
    path = work / "vae.pt"
    if path.exists() and not args.fresh:
        return torch.load(path)
    t = time.time()
    raw = train_vae(images, args)
    vae_sd, _ = normalise_latents(raw, encode_all(raw, images))
    torch.save(vae_sd, path)
    log(f"vae trained in {time.time() - t:.0f}s")
    return vae_sd


def held_out_images(args):
    return ds.make_dataset(256, seed=args.seed + 999)[0]


def latents(args, work: Path, vae_sd: dict, images) -> torch.Tensor:
    """The dataset's latents (<work>/latents.pt, re-encoded when vae.pt is newer)."""
    path, vae_path = work / "latents.pt", work / "vae.pt"
    if path.exists() and not args.fresh and path.stat().st_mtime >= vae_path.stat().st_mtime:
        lat = torch.load(path)
    else:
        lat = encode_all(vae_sd, images)
        torch.save(lat, path)
    log(f"latents {tuple(lat.shape)} mean {lat.mean():.3f} std*{LATENT_SCALE} {lat.std() * LATENT_SCALE:.3f}")
    return lat


def unet_phase1(args, work: Path, lat, captions) -> tuple[tuple[dict, dict], bool]:
    """Phase 1 (<work>/unet.pt): the weights, and whether they were retrained."""
    path = work / "unet.pt"
    if args.stage == "resume":
        for f in (work / "vae.pt", work / "latents.pt", path, work / "unet2.pt"):
            assert f.exists(), f"--stage resume needs the cached {f}"
    if path.exists() and not args.fresh and args.stage not in ("unet",):
        return torch.load(path), False
    t = time.time()
    weights = train_unet(lat, captions, args)
    torch.save(weights, path)
    log(f"unet + text encoder trained in {time.time() - t:.0f}s")
    return weights, True


def warm_restarts(args, work: Path, lat, captions, scenes, weights, retrained: bool) -> tuple[dict, dict]:
    """Phases 2-4, each from the previous phase's EMA weights; once a phase is retrained the cached
    later ones are stale. "resume" / "resume4" rerun phase 3 / 4."""
    for phase, steps, name in (
        (2, args.unet_steps2, "unet2.pt"),
        (3, args.unet_steps3, f"unet3_{args.unet_steps3}steps.pt"),
        (4, args.unet_steps4, f"unet4_{args.unet_steps4}steps.pt"),
    ):
        if steps <= 0:
            continue
        path = work / name
        if path.exists() and not args.fresh and not retrained and args.stage != RESUME_STAGE.get(phase):
            weights = torch.load(path)
        else:
            retrained = True
            t = time.time()
            weights = train_unet(lat, captions, args, init=weights, steps=steps, phase=phase, scenes=scenes)
            torch.save(weights, path)
            log(f"unet phase {phase} trained in {time.time() - t:.0f}s")
    return weights


def decoder(args, work: Path, vae_sd: dict, lat, images, held) -> dict:
    """The refined decoder (<work>/vae_refined.pt); the VAE as it is with --dec-steps 0."""
    path = work / "vae_refined.pt"
    if path.exists() and not args.fresh and args.stage != "decoder":
        return torch.load(path)
    if args.dec_steps <= 0:
        return vae_sd
    t = time.time()
    vae_sd = refine_decoder(vae_sd, lat, images, args)
    torch.save(vae_sd, path)
    log(f"decoder refined in {time.time() - t:.0f}s; held-out psnr {vae_psnr(vae_sd, held):.2f} dB")
    return vae_sd


def export_model(args, weights, vae_sd: dict, captions) -> Path:
    """The fp16 safetensors at --out (by the stages that change it)."""
    out = Path(args.out)
    if args.stage in EXPORTING_STAGES:
        export(*weights, vae_sd, used_token_ids(captions), out)
        from p2p_models.weights import sha256_of

        log(f"exported {out} ({out.stat().st_size / 2**20:.2f} MiB) sha256 {sha256_of(out)}")
    return out


def evaluation(args, work: Path, model: Path) -> None:
    """The eval's figures, logged and written to <work>/metrics.json."""
    summary = evaluate(model, args, n_seeds=args.eval_seeds)
    log("eval: " + json.dumps(summary, indent=1))
    (work / "metrics.json").write_text(json.dumps(summary, indent=1))
