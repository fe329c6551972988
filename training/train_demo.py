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

The code (training/): this file (the command line, main); stages.py (one function per stage, with
its cache); vae_stage.py (VAE, latent normalisation, decoder refinement + locality loss);
unet_stage.py (the UNet phases); attention_loss.py (phases 3-4's cross-attention loss);
text_encoder.py; export_weights.py; evaluation.py (sampling, judge figures, attention maps with
the engine's AttentionStore); train_common.py (import setup, log, schedule).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import train_common  # noqa: F401  first: the repo on sys.path, ComfyUI bootstrapped, one CPU thread

# isort: split
# Re-exported for other code: sample, far_from_side, replace_side (tests/demo/test_demo_model.py),
# attention_localisation and _locality_loss (models/demo/README.md).
import stages
from evaluation import attention_localisation, sample  # noqa: F401
from train_common import HERE, REPO, log, set_log_file
from vae_stage import far_from_side, replace_side, vae_psnr  # noqa: F401
from vae_stage import locality_loss as _locality_loss  # noqa: F401

PHASE3_STEPS = 1400  # default --unet-steps3: phase 3's length (models/demo/README.md)
PHASE4_STEPS = 2000  # default --unet-steps4: the phase-4 checkpoint shipped (models/demo/README.md)


def parse_args(argv=None):
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
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    set_log_file(work / "log.txt")
    log(f"== train_demo {time.strftime('%Y-%m-%d %H:%M:%S')} args {vars(args)}")
    t0 = time.time()
    if args.stage == "peek":
        return stages.peek(args, work)

    images, captions, scenes = stages.data(args)
    vae_sd = stages.vae(args, work, images)
    held = stages.held_out_images(args)
    log(f"vae psnr on held-out images: {vae_psnr(vae_sd, held):.2f} dB")
    if args.stage == "vae":
        return
    latents = stages.latents(args, work, vae_sd, images)
    weights, retrained = stages.unet_phase1(args, work, latents, captions)
    weights = stages.warm_restarts(args, work, latents, captions, scenes, weights, retrained)
    vae_sd = stages.decoder(args, work, vae_sd, latents, images, held)
    model = stages.export_model(args, weights, vae_sd, captions)
    log(f"training wall time {time.time() - t0:.0f}s")
    stages.evaluation(args, work, model)


if __name__ == "__main__":
    main()
