"""P2P against plain sampling on every MM-DiT family at its full width (issue 26): P2P <= 1.10x plain time
and <= 1.15x peak memory.

    COMFYUI_PATH=/work/main/.comfyui-current/ComfyUI OMP_NUM_THREADS=1 \\
        .venv-current/bin/python benchmarks/bench_families.py          # full width, ~25 min of CPU
    .venv/bin/python benchmarks/bench_families.py --tiny --steps 2 --reps 1   # smoke: the tiny test models

Each family: a random model at the real checkpoint's width (ComfyUI's own config class and model_base,
the unet_config its model detection produces; bench_models: flux_width_config, sd35_large_width_config,
klein_width_config, zimage_width_config, qwen_width_config, chroma_width_config, flux2_dev_width_config,
lumina2_width_config) with 1-2 blocks of each
kind instead of the full depth (CPU), a latent of --image-tokens image tokens, and a random text context of the real text
encoder's width and the prompt's token count (the PromptSet, i.e. the token layout, from the family's
tiny text encoder with ComfyUI's real tokenizer and chat template). Same [source + edit] batch (shared
noise, latent_batch), word swap with the default settings (cross 0.8, self 0.4, apply_edit's defaults),
sampler euler, scheduler simple, the family's usual cfg. Plain and P2P run interleaved in this one
process (bench_edits.compare): CPU seconds of the process, median of --reps; memory: the CPU
allocator's peak of live tensors allocated during one run of each (torch.profiler; the weights, loaded
before, are not in it). Flux.2 klein needs ComfyUI 0.33.0 (its text encoder); on 0.3.75 its row says so.
--edit refine measures a Refine instead (two words added: where the tokenizer keeps each prompt's own length,
Chroma, Lumina 2, Qwen-Image, the shorter prompt's padding is masked in every attention call).

Writes bench_out/families.json and prints the markdown table (docs/benchmarks.md keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from bench_edits import compare  # noqa: E402
from bench_jobs import CROSS_REPLACE, SELF_REPLACE, machine_info  # noqa: E402

from p2p_testkit.sampling import sample  # noqa: E402

TIME_GOAL, MEMORY_GOAL = 1.10, 1.15
# --edit refine: two words added, so the prompts differ in length; the families whose tokenizer does not pad
# them to one length (Chroma, Lumina 2, Qwen-Image) then mask the padding in every attention call.
REFINE_EDIT = "a photo of a cat sitting on a big old wooden chair"
# (label, full-width model, tiny model, blocks at full width): Flux.1 and SD3.5 for reference, then the newer families.
FAMILIES = (
    ("Flux.1", "flux", "tiny-flux", (1, 2)),
    ("SD3.5 Large", "sd35-large", "tiny-sd3", (2,)),
    ("Flux.2 klein 4B", "flux2-klein", "tiny-flux2", None),
    ("Z-Image", "zimage", "tiny-zimage", None),
    ("Qwen-Image", "qwen-image", "tiny-qwen", None),
    ("Chroma", "chroma", "tiny-chroma", None),
    ("Flux.2 dev", "flux2-dev", "tiny-flux2-dev", None),
    ("Lumina 2", "lumina2", "tiny-lumina2", None),
)


def _latent(built: dict, image_tokens: int, items: int) -> dict:
    from p2p_attention.conditioning import latent_batch

    side = int(round(image_tokens ** 0.5))
    if side * side != image_tokens:
        raise SystemExit(f"--image-tokens must be a square: {image_tokens}")
    px = side * built.get("patch", 2)
    shape = (1, built["latent_channels"], 1, px, px) if built.get("video") else (1, built["latent_channels"], px, px)
    return latent_batch({"samples": torch.zeros(shape)}, items)


def measure(label: str, name: str, blocks, args) -> dict:
    import bench_models

    from p2p_attention.apply import apply_edit
    from p2p_attention.edits import make_plan

    row = {"family": label, "model": name}
    why = bench_models.family_available(name) if name in bench_models.FAMILY_MODELS else None
    if why:
        return {**row, "skipped": why}
    edits = [REFINE_EDIT] if args.edit == "refine" else None
    built = bench_models.build(name, blocks=None if args.tiny else blocks, edits=edits)
    model, positive, negative, cfg = built["model"], built["positive"], built["negative"], built["cfg"]
    latent = _latent(built, args.image_tokens, 2)
    small = _latent(built, 4, 2)  # warm-up: lazy imports and first-call costs, on 4 image tokens
    plan = make_plan(built["prompts"], None, args.edit, CROSS_REPLACE, SELF_REPLACE)
    patched, _ = apply_edit(model, plan)
    runs = {"plain": model, "p2p": patched}

    def once(which, lat=latent):
        sample(runs[which], positive, negative, lat, steps=args.steps, cfg=cfg, scheduler="simple")

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    cpu, memory = compare(runs, once, args.reps, warmup=lambda which: once(which, small))
    plain, p2p = statistics.median(cpu["plain"]), statistics.median(cpu["p2p"])
    info = built["info"]
    time_ratio = p2p / plain
    memory_ratio = memory["p2p"] / memory["plain"] if memory["plain"] else None
    masked = sum(p.n_masked for p in built["prompts"].prompts)
    return {**row, "edit": args.edit, "masked_tokens": masked, "blocks": info.get("blocks", "tiny test model"),
            "detected_as": info.get("detected_as"),
            "params_M": info["unet_params_M"], "hidden": info.get("hidden_size"), "context_dim": info["context_dim"],
            "text_tokens": info["text_tokens"], "image_tokens": args.image_tokens, "items": 2, "cfg": cfg,
            "steps": args.steps, "reps": args.reps, "plain_cpu_s": round(plain, 3), "p2p_cpu_s": round(p2p, 3),
            "plain_cpu_reps": [round(x, 3) for x in cpu["plain"]], "p2p_cpu_reps": [round(x, 3) for x in cpu["p2p"]],
            "time_ratio": round(time_ratio, 3), "plain_mib": memory["plain"], "p2p_mib": memory["p2p"],
            "memory_ratio": round(memory_ratio, 3) if memory_ratio is not None else None,
            "time_met": time_ratio <= TIME_GOAL, "memory_met": memory_ratio is not None and memory_ratio <= MEMORY_GOAL,
            "wall_s": round(time.perf_counter() - t0, 1), "load_start": round(load, 2), "load_end": round(os.getloadavg()[0], 2),
            "conditioning": info.get("conditioning")}


def with_weights(r: dict) -> dict:
    """The row's peaks with the measured model's weights added (fp32: 4 bytes a parameter): the allocator
    peak counts only tensors allocated during the run, the weights are loaded before it."""
    weights = r["params_M"] * 1e6 * 4 / 2**20
    ratio = (weights + r["p2p_mib"]) / (weights + r["plain_mib"])
    return {"weights_mib": round(weights, 1), "memory_with_weights_ratio": round(ratio, 3),
            "memory_with_weights_met": ratio <= MEMORY_GOAL}


def table(rows: list[dict]) -> str:
    def verdict(x, met):
        return f"**{x:.3f}x {'met' if met else 'MISSED'}**"

    out = ["| family | model (blocks) | params M | hidden | text tokens x width | image tokens | cfg | plain CPU s | "
           f"P2P CPU s | time (<= {TIME_GOAL:.2f}) | plain peak MiB | P2P peak MiB | peak (<= {MEMORY_GOAL:.2f}) | "
           "weights MiB | peak with weights |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['family']} | {r['model']} | skipped: {r['skipped']} |" + " |" * 12)
            continue
        w = with_weights(r)
        edit = f"; refine, {r['masked_tokens']} tokens masked" if r.get("edit") == "refine" else ""
        out.append(f"| {r['family']} | {r['model']} ({r['blocks']}{edit}) | {r['params_M']:,} | {r['hidden']} | "
                   f"{r['text_tokens']} x {r['context_dim']} | {r['image_tokens']} | {r['cfg']} | {r['plain_cpu_s']} | "
                   f"{r['p2p_cpu_s']} | {verdict(r['time_ratio'], r['time_met'])} | {r['plain_mib']:,} | {r['p2p_mib']:,} | "
                   f"{verdict(r['memory_ratio'], r['memory_met'])} | {w['weights_mib']:,.0f} | "
                   f"{verdict(w['memory_with_weights_ratio'], w['memory_with_weights_met'])} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="the families' tiny test models instead of full width (smoke)")
    ap.add_argument("--families", default="", help="comma-separated model names to run (default: every family)")
    ap.add_argument("--image-tokens", type=int, default=None, help="image tokens, a square [256; --tiny 16]")
    ap.add_argument("--steps", type=int, default=3, help="sampling steps [3: the smallest count where the default self window 0.4 selects a step]")
    ap.add_argument("--reps", type=int, default=3, help="timed interleaved repetitions of each [3]")
    ap.add_argument("--edit", choices=("swap", "refine"), default="swap",
                    help="word swap cat -> dog [swap], or refine: two words added (unequal prompt lengths)")
    ap.add_argument("--out", type=Path, default=HERE.parent / "bench_out" / "families.json")
    ap.add_argument("--rerender", type=Path, nargs="+", default=None,
                    help="no run: the rows of these JSON files (in order), written to --out and printed")
    args = ap.parse_args(argv)
    if args.rerender:
        runs = [json.loads(f.read_text()) for f in args.rerender]
        rows = [r if "skipped" in r else {**r, **with_weights(r)} for run in runs for r in run["rows"]]
        args.out.write_text(json.dumps({"runs": [{"file": str(f), "args": run["args"], "meta": run["meta"]}
                                                 for f, run in zip(args.rerender, runs)], "rows": rows}, indent=1))
        print(table(rows))
        return 0
    if args.image_tokens is None:
        args.image_tokens = 16 if args.tiny else 256
    from p2p_models.comfy_bootstrap import bootstrap

    bootstrap(cpu=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(0)
    wanted = set(filter(None, args.families.split(",")))
    rows = []
    for label, name, tiny, blocks in FAMILIES:
        model = tiny if args.tiny else name
        if wanted and model not in wanted and name not in wanted:
            continue
        row = measure(label, model, blocks, args)
        rows.append(row if "skipped" in row else {**row, **with_weights(row)})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "conditioning"}), flush=True)
    meta = machine_info("cpu")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "meta": meta, "rows": rows},
                                   indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
