"""Cost as the edits grow: N word swaps in one batch (the source and N edits) against plain sampling of
the same batch (1 + N items, same conditioning, same steps), on one UNet and one MM-DiT.

    .venv/bin/python benchmarks/bench_edits.py                       # sd15 width (UNet), Flux.1 width (1+1 blocks)
    .venv/bin/python benchmarks/bench_edits.py --models tiny-sd1,tiny-flux --steps 2 --reps 1   # smoke

Each model runs in this one process, plain and P2P interleaved rep by rep (CPU seconds of this
process, robust to other load); peak memory is the CPU allocator's peak of live tensors allocated during
one run of each (torch.profiler; RSS would keep the earlier runs' freed memory). Writes bench_out/edits.json and prints the table (docs/benchmarks.md keeps it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from bench_models import SOURCE, build  # noqa: E402
from profile_dit import memory_peak  # noqa: E402

from p2p_testkit.sampling import sample  # noqa: E402

# Swapped words of one token on CLIP and T5 alike, so every edit aligns with the source word for word.
ANIMALS = ("dog", "cow", "pig", "fox", "owl", "bird", "bear", "wolf")


def edits(n: int) -> list[str]:
    return [SOURCE.replace("cat", a) for a in ANIMALS[:n]]


def compare(runs: dict, once, reps: int, warmup=None) -> tuple[dict, dict]:
    """-> ({label: [CPU s of each rep]}, {label: allocator peak MiB}). once(label) runs one sampling of
    runs[label]; warm-up (first-call costs out of the timings): warmup(label) [once], for each label; then
    `reps` repetitions, the labels interleaved in each (CPU seconds of this process); then one
    memory-profiled run of each (torch.profiler: the peak of live tensors allocated during the run)."""
    for which in runs:
        (warmup or once)(which)
    cpu = {w: [] for w in runs}
    for _ in range(reps):
        for which in runs:
            c = time.process_time()
            once(which)
            cpu[which].append(time.process_time() - c)
    memory = {}
    with tempfile.TemporaryDirectory() as tmp:
        for which in runs:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
                once(which)
            memory[which] = round(memory_peak(prof, str(Path(tmp) / "trace.json"))[0], 1)
    return cpu, memory


def measure(name: str, n: int, args) -> dict:
    from p2p_attention.apply import apply_edit
    from p2p_attention.conditioning import latent_batch
    from p2p_attention.edits import make_plan

    blocks = tuple(int(b) for b in args.dit_blocks.split(",")) if name == "flux" else None
    built = build(name, blocks=blocks, edits=edits(n))
    model, positive, negative = built["model"], built["positive"], built["negative"]
    channels = 16 if name in ("flux", "tiny-flux") else 4
    latent = latent_batch({"samples": torch.zeros(1, channels, args.size, args.size)}, 1 + n)
    plan = make_plan(built["prompts"], None, "swap", "0.8", "0.5")
    patched, _ = apply_edit(model, plan)
    cfg = 1.0 if "flux" in name else 7.5
    runs = {"plain": model, "p2p": patched}

    def once(which):
        sample(runs[which], positive, negative, latent, steps=args.steps, cfg=cfg, scheduler="simple")

    cpu, memory = compare(runs, once, args.reps)
    plain, p2p = statistics.median(cpu["plain"]), statistics.median(cpu["p2p"])
    return {"model": name, "edits": n, "items": 1 + n, "plain_cpu_s": round(plain, 3), "p2p_cpu_s": round(p2p, 3),
            "time_ratio": round(p2p / plain, 3), "plain_mib": memory["plain"], "p2p_mib": memory["p2p"],
            "memory_ratio": round(memory["p2p"] / memory["plain"], 3) if memory["plain"] else None,
            "info": built["info"].get("blocks") or built["info"].get("arch")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="sd15,flux", help="a UNet and an MM-DiT of bench_models [sd15,flux]")
    ap.add_argument("--ns", default="1,2,4,8", help="edit counts [1,2,4,8]")
    ap.add_argument("--size", type=int, default=16, help="latent side [16]")
    ap.add_argument("--steps", type=int, default=3, help="sampling steps [3]")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions of each [3]")
    ap.add_argument("--dit-blocks", default="1,1", help="Flux.1 width: double,single blocks [1,1]")
    ap.add_argument("--out", type=Path, default=HERE.parent / "bench_out" / "edits.json")
    args = ap.parse_args(argv)
    from p2p_models.comfy_bootstrap import bootstrap

    bootstrap(cpu=True)
    torch.manual_seed(0)
    rows = [measure(m, int(n), args) for m in args.models.split(",") for n in args.ns.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))
    print("| model | edits | batch | plain CPU s | P2P CPU s | time | plain MiB | P2P MiB | memory |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} ({r['info']}) | {r['edits']} | {r['items']} | {r['plain_cpu_s']} | {r['p2p_cpu_s']} | "
              f"{r['time_ratio']}x | {r['plain_mib']} | {r['p2p_mib']} | {r['memory_ratio']}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
