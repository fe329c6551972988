"""Train the pack's MM-DiT demo model (models/demo/p2p_demo_flux_tiny.safetensors) from scratch:
a tiny Flux.1-schnell-architecture model (p2p_models/demo_dit.py) on the shapes data.

    OMP_NUM_THREADS=1 .venv/bin/python training/train_dit_demo.py --fresh      # or: make train-demo-dit

One command, fixed seeds, one CPU thread: the same command gives the same bytes. Stages (each
cached in --work, rerun with --fresh):
  1. data:  the synthetic captioned shapes dataset (training/shapes_dataset.py, as the SD1 demo);
  2. vae:   ComfyUI's AutoencoderKL at 4x with 16 channels (training/dit_vae_stage.py), then the
            exact reparametrisation to ComfyUI's Flux latent format;
  2b. decoder: post_quant_conv + decoder refined on the frozen encoder's latents (the DiT never sees
            the decoder, so this runs after it, or beside it with --stage decoder), logging the
            judge's ceiling through the VAE (dit_eval.vae_swap_ceiling);
  3. dit:   ComfyUI's Flux (FluxSchnell config: FLOW, shift 1, no guidance embedding, no pooled
            vector) and the tiny T5 of ComfyUI's FluxClipModel trained jointly on rectified flow
            (x_t = (1 - s) x0 + s eps, target eps - x0, s logit-normal), 10% empty captions for
            CFG, an EMA of the weights, plus --attn-loss x an auxiliary loss: each object word's
            (size, colour, shape) image->text attention map, head-averaged, normalised over the
            image, should put its mass on its own object (training/dit_stage.py). EMA checkpoints
            every --ckpt-every steps (<work>/dit_<K>steps.pt == --dit-steps K: the schedule does
            not depend on the run's length);
  4. export: fp16 safetensors, only the vocabulary's token rows;
  5. eval:  stock comfy.sample.sample on the fixed captions, pixel judge, attention localisation
            (the engine's own AttentionStore) and the full-injection ceiling (training/dit_eval.py).
`--stage peek --init <work>/dit_<K>steps.pt` evaluates a running training's checkpoint.
Logs to stdout and <work>/log.txt; figures to <work>/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import train_common  # noqa: F401  first: repo on sys.path, ComfyUI bootstrapped, one CPU thread

# isort: split
import shapes_dataset
import torch
from train_common import HERE, REPO, log, set_log_file

DIT_STEPS = 3000
ds = shapes_dataset  # the world (--world): its make_dataset, SIZE, vocabulary()
# --world: the file's (metadata) name, the work folder, and the defaults of the options left at None
WORLDS = {
    "shapes": ("p2p_demo_flux_tiny", "_work_dit",
               {"vae_steps": 300, "dec_steps": 1500, "dec_local": 0.0, "dit_steps": DIT_STEPS, "lr_halflife": 1000.0}),
    "scenes": ("p2p_demo_flux_scenes", "_work_dit_scenes",
               {"vae_steps": 600, "dec_steps": 500, "dec_local": 3.0, "dit_steps": 4000, "lr_halflife": 1000.0}),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", default="shapes", choices=list(WORLDS),
                   help="shapes: the layout-fixing captions (p2p_demo_flux_tiny); scenes: training/scenes_dataset.py, "
                        "captions say what, not where (p2p_demo_flux_scenes)")
    p.add_argument("--out", default=None, help="default models/demo/<the world's model>.safetensors")
    p.add_argument("--work", default=None, help="default training/_work_dit (shapes), _work_dit_scenes (scenes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=8000)
    p.add_argument("--vae-steps", type=int, default=None, help="default 300 (shapes), 600 (scenes)")
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--vae-latent-noise", type=float, default=0.1, help="half of each batch decodes latents + this x std noise")
    p.add_argument("--dec-steps", type=int, default=None,
                   help="decoder refinement on the frozen encoder's latents (default 1500 shapes, 500 scenes)")
    p.add_argument("--dec-lr", type=float, default=1e-3)
    p.add_argument("--dec-local", type=float, default=None,
                   help="decoder refinement: locality loss weight (default 0 for shapes, 3 for scenes)")
    p.add_argument("--dit-steps", type=int, default=None, help=f"default {DIT_STEPS} (shapes), 4000 (scenes)")
    p.add_argument("--dit-lr", type=float, default=1e-3)
    p.add_argument("--lr-halflife", type=float, default=None,
                   help="after warmup the lr halves every this many steps (default 1000 for both worlds)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--p-uncond", type=float, default=0.1)
    p.add_argument("--attn-loss", type=float, default=0.05)
    p.add_argument("--init", default=None, help="warm start from (--stage peek: evaluate) this <work>/dit_<K>steps.pt")
    p.add_argument("--cfg", type=float, default=4.0)
    p.add_argument("--eval-steps", type=int, default=20)
    p.add_argument("--eval-captions", type=int, default=24)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--eval-methods", nargs="*", default=None,
                   help="scenes: the edit methods the eval runs (first words: naive p2p full; default all)")
    p.add_argument("--eval-pairs", type=int, default=16, help="scenes: edit pairs per kind in the eval")
    p.add_argument("--eval-seeds", type=int, nargs="+", default=[0], help="scenes: the eval's seeds")
    p.add_argument("--stage", default="all", choices=["all", "vae", "decoder", "dit", "export", "eval", "peek"])
    p.add_argument("--fresh", action="store_true", help="ignore cached stages in --work")
    args = p.parse_args(argv)
    name, work, defaults = WORLDS[args.world]
    args.model_name = name
    args.out = args.out or str(REPO / "models" / "demo" / f"{name}.safetensors")
    args.work = args.work or str(HERE / work)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def set_world(args) -> None:
    global ds
    if args.world == "scenes":
        import dit_stage
        import scenes_dataset

        ds = scenes_dataset
        dit_stage.set_world(scenes_dataset)


def stage_vae(args, work: Path, images):
    from dit_vae_stage import encode_all as encode
    from dit_vae_stage import normalise_latents, train_vae, vae_psnr

    path = work / "vae.pt"
    if path.exists() and not args.fresh:
        vae_sd, lat = torch.load(path)
    else:
        t = time.time()
        raw = train_vae(images, args)
        vae_sd, lat = normalise_latents(raw, encode(raw, images))
        torch.save((vae_sd, lat), path)
        log(f"vae trained in {time.time() - t:.0f}s")
    held = ds.make_dataset(256, seed=args.seed + 999)[0]
    log(f"vae psnr on held-out images: {vae_psnr(vae_sd, held):.2f} dB; latents {tuple(lat.shape)} "
        f"mean {lat.mean():.3f} std {lat.std():.3f}")
    return vae_sd, lat


def stage_decoder(args, work: Path, vae_sd: dict, images) -> dict:
    """The refined decoder (<work>/vae_refined.pt); the VAE as it is with --dec-steps 0."""
    path = work / "vae_refined.pt"
    if args.dec_steps <= 0:
        return vae_sd
    if path.exists() and not args.fresh and args.stage != "decoder":
        return torch.load(path)
    import dit_eval
    from dit_vae_stage import refine_decoder, vae_psnr

    from p2p_models.demo_dit import build_dit_demo_vae

    if args.world == "scenes":
        import scenes_eval

        def probe(sd):
            return scenes_eval.vae_probe(build_dit_demo_vae(state_dict=sd))
    else:
        pairs = dit_eval.colour_swap_pairs(24)

        def probe(sd):
            c = dit_eval.vae_swap_ceiling(build_dit_demo_vae(state_dict=sd), pairs)
            return f"swap ceiling iou {c['iou']:.3f} colour {c['colour']:.3f}"

    log(f"decoder before refinement: {probe(vae_sd)}")
    t = time.time()
    vae_sd = refine_decoder(vae_sd, images, args, probe=probe)
    torch.save(vae_sd, path)
    held = ds.make_dataset(256, seed=args.seed + 999)[0]
    log(f"decoder refined in {time.time() - t:.0f}s; held-out psnr {vae_psnr(vae_sd, held):.2f} dB")
    return vae_sd


def evaluator(args):
    """The world's eval module: dit_eval (shapes) or scenes_eval (scenes); .evaluate(path, args)."""
    if args.world == "scenes":
        import scenes_eval

        return scenes_eval
    import dit_eval

    return dit_eval


def main(argv=None):
    args = parse_args(argv)
    set_world(args)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    set_log_file(work / "log.txt")
    log(f"== train_dit_demo {time.strftime('%Y-%m-%d %H:%M:%S')} args {vars(args)}")
    t0 = time.time()
    images, captions, scenes = ds.make_dataset(args.n_train, seed=args.seed)
    log(f"data: {len(images)} images in {time.time() - t0:.1f}s")
    vae_sd, lat = stage_vae(args, work, images)
    if args.stage == "vae":
        return
    if args.stage == "decoder":  # the DiT never sees the decoder: this stage may run beside it
        stage_decoder(args, work, vae_sd, images)
        return
    import dit_stage

    if args.stage == "peek":  # a running training's checkpoint: export to <work>/peek.safetensors, eval
        out = work / "peek.safetensors"
        vae_file = work / "vae_refined.pt"
        dit_stage.export(*torch.load(args.init), torch.load(vae_file) if vae_file.exists() else vae_sd, captions, out,
                         args.model_name)
        log(f"peek {args.init}: " + json.dumps(evaluator(args).evaluate(out, args), indent=1))
        return
    path = work / f"dit_{args.dit_steps}steps.pt"
    if args.stage in ("export", "eval") or (path.exists() and not args.fresh and args.stage != "dit"):
        weights = torch.load(path)
    else:
        t = time.time()
        init = torch.load(args.init) if args.init else None
        weights = dit_stage.train_dit(lat, captions, scenes, args, init=init)
        torch.save(weights, path)
        log(f"dit trained in {time.time() - t:.0f}s")
    vae_sd = stage_decoder(args, work, vae_sd, images)
    out = Path(args.out)
    if args.stage != "eval":
        dit_stage.export(*weights, vae_sd, captions, out, args.model_name)
        from p2p_models.weights import sha256_of

        log(f"exported {out} ({out.stat().st_size / 2**20:.2f} MiB) sha256 {sha256_of(out)}")
    log(f"training wall time {time.time() - t0:.0f}s")
    summary = evaluator(args).evaluate(out, args)
    log("eval: " + json.dumps(summary, indent=1))
    (work / "metrics.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
