"""Inversion on flow-matching models (Flux.1, SD3): each method's model evaluations, CPU time and
reconstruction against a plain sampling of one image with the same steps, in one process.

    .venv/bin/python benchmarks/bench_flow_inversion.py                 # tiny Flux / SD3, the Flux demo (~1 min)
    .venv/bin/python benchmarks/bench_flow_inversion.py --wide          # + Flux- and SD3.5-width models (slow)
    .venv/bin/python benchmarks/bench_flow_inversion.py --models flux,sd35-large --steps 4 --reps 1

Methods: `ddim` (plain ODE inversion of ComfyUI's euler on the model's flow schedule), `direct`
(ddim's trajectory; the source item is put back on it while sampling), `fixed_point` with 1 and
10 iterations per step at most, and on SD3 (which has CFG) `negative_prompt` and `null_text_fast`.
Plain sampling: comfy.sample.sample of the source alone, euler / simple, the same steps and cfg
(Flux 1, SD3 4.5; its cond and uncond run in one batch). Times: CPU time (process_time, the stable
figure on a shared machine), medians of --reps runs, each inversion run followed by a plain one
so both are measured under the same load. PSNR: the reconstruction (install_inversion, sampled back
without noise) against the inverted latent, as tests/engine/test_flow_inversion.py measures it; the
full-width models have random weights and conditioning (cost only, no PSNR). Model evaluations
count single-image passes (a CFG step on one image counts 2).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GOAL = 1.3  # ddim and direct inversion CPU time / plain sampling
WIDE_METHODS = ["ddim", "direct", "fixed_point"]
METHODS = {"flux": ["ddim", "direct", "fixed_point", "fixed_point x10"],
           "sd3": ["ddim", "direct", "fixed_point", "fixed_point x10", "negative_prompt", "null_text_fast"]}


def _setup():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))
    from p2p_models.comfy_bootstrap import bootstrap

    bootstrap(cpu=True)
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def _model(name: str, size: int):
    """(model, positive [source], negative, cfg, photo latent, family, psnr?) for `name`."""
    import torch

    if name == "demo-flux":
        from p2p_models.demo_dit import LATENT_HW, load_demo_dit_model

        model, clip, _ = load_demo_dit_model()
        pos = _encode(clip, "a big yellow circle on the left and a big blue square on the right")
        neg = _encode(clip, "")
        photo = plain_sample(model, pos, neg, torch.zeros(1, 16, LATENT_HW, LATENT_HW), 20, 4.0, seed=7)
        return model, pos, neg, 4.0, photo, "flux", True
    import bench_models

    built = bench_models.build(name, blocks=None)
    pos = [[built["positive"][0][0][:1], {k: (v[:1] if k == "pooled_output" else v)
                                          for k, v in built["positive"][0][1].items()}]]
    family = bench_models.arch_of(name)
    g = torch.Generator().manual_seed(0)
    photo = torch.randn(1, 16, size, size, generator=g)
    return built["model"], pos, built["negative"], built["cfg"], photo, family, name.startswith("tiny")


def _encode(clip, text):
    out = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True, return_dict=True)
    return [[out.pop("cond"), out]]


def plain_sample(model, pos, neg, latent, steps, cfg, seed=0, disable_noise=False):
    """comfy.sample.sample (what KSampler calls) on euler / simple."""
    from p2p_testkit.sampling import sample

    return sample(model, pos, neg, {"samples": latent}, sampler="euler", scheduler="simple", steps=steps, cfg=cfg,
                  seed=seed, disable_noise=disable_noise)


def _psnr(x, ref) -> float:
    mse = float(((x.float() - ref.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(float(ref.abs().max()) ** 2 / mse)


def run_model(name: str, steps: int, reps: int, size: int) -> list[dict]:
    import torch

    from p2p_attention.inversion import install_inversion, invert

    model, pos, neg, cfg, photo, family, with_psnr = _model(name, size)
    rows = []

    def plain():
        return plain_sample(model, pos, neg, torch.zeros_like(photo), steps, cfg)

    plain()  # warm-up: lazy imports, first-call costs
    methods = METHODS[family] if with_psnr else WIDE_METHODS  # full width: the goal's methods and fixed_point
    for label in ["plain sampling", *methods]:
        method = label.split()[0]
        its = 10 if label.endswith("x10") else 1 if method == "fixed_point" else 10
        times, plains, inv = [], [], None
        for _ in range(reps if label != "plain sampling" else 1):
            if label == "plain sampling":
                break
            c = time.process_time()
            with torch.inference_mode():
                inv = invert(model, pos, neg, {"samples": photo}, method=method, steps=steps, guidance=cfg,
                             inner_iterations=its)
            times.append(time.process_time() - c)
            c = time.process_time()
            plain()
            plains.append(time.process_time() - c)
        if label == "plain sampling":
            c = time.process_time()
            plain()
            rows.append({"model": name, "method": label, "steps": steps, "evals": steps * (1 if cfg == 1.0 else 2),
                         "cpu_s": time.process_time() - c})
            continue
        row = {"model": name, "method": label, "steps": steps, "evals": inv.unet_evals,
               "cpu_s": statistics.median(times), "plain_cpu_s": statistics.median(plains)}
        row["time_x"] = row["cpu_s"] / row["plain_cpu_s"]
        if with_psnr:
            patched = install_inversion(model.clone(), inv, n_items=1)
            rec = plain_sample(patched, pos, neg, inv.latent, steps, cfg, disable_noise=True)
            row["psnr"] = _psnr(rec, photo)
        rows.append(row)
        print(f"  {name} {label}: {row['evals']} evals, {row['cpu_s']:.2f} s CPU, x{row['time_x']:.2f} plain"
              + (f", PSNR {row['psnr']:.2f} dB" if "psnr" in row else ""), flush=True)
    return rows


def render(rows: list[dict], info: str) -> tuple[str, list[dict]]:
    lines = [f"# Inversion on flow models against plain sampling ({info})", "",
             "| model | method | steps | model evals | CPU s | CPU x plain | PSNR dB |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['method']} | {r['steps']} | {r['evals']} | {r['cpu_s']:.2f} | "
                     f"{r.get('time_x', float('nan')):.2f} | {r.get('psnr', float('nan')):.2f} |")
    goals = []
    for r in rows:
        if r["method"] in ("ddim", "direct"):
            goals.append({"goal": f"{r['model']}: {r['method']} CPU time <= {GOAL}x plain sampling",
                          "value": round(r["time_x"], 3), "met": r["time_x"] <= GOAL})
    lines += ["", "| goal | measured | verdict |", "|---|---|---|"]
    lines += [f"| {g['goal']} | {g['value']}x | {'met' if g['met'] else 'MISSED'} |" for g in goals]
    return "\n".join(lines) + "\n", goals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--size", type=int, default=16, help="latent side of the random photo [16]")
    ap.add_argument("--models", default="", help="comma-separated subset of tiny-flux, tiny-sd3, demo-flux, flux, "
                    "sd35-large")
    ap.add_argument("--wide", action="store_true", help="also the Flux- and SD3.5-width models (reduced depth)")
    ap.add_argument("--out", default=str(REPO / "bench_out" / "flow_inversion"))
    a = ap.parse_args(argv)
    _setup()
    import torch

    models = ["tiny-flux", "tiny-sd3", "demo-flux"] + (["flux", "sd35-large"] if a.wide else [])
    if a.models:
        models = [m.strip() for m in a.models.split(",") if m.strip()]
    rows = []
    for name in models:
        rows += run_model(name, a.steps, a.reps if not a.wide or name.startswith(("tiny", "demo")) else 1, a.size)
    try:
        from comfyui_version import __version__ as comfy_version
    except ImportError:
        comfy_version = "?"
    info = (f"cpu, torch {torch.__version__}, ComfyUI {comfy_version}, "
            f"{os.environ['OMP_NUM_THREADS']} thread(s)")
    md, goals = render(rows, info)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"info": info, "rows": rows, "goals": goals}, indent=1))
    (out / "results.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
