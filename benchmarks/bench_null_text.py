"""Null-text inversion: cost, peak memory and reconstruction against plain sampling, in one run.

    .venv/bin/python benchmarks/bench_null_text.py                 # every goal (~10 min of CPU, one thread)
    .venv/bin/python benchmarks/bench_null_text.py --quick         # smoke run: the tiny test model (~1 min)
    .venv/bin/python benchmarks/bench_null_text.py --sd15-official # + official null-text at SD1.5 size (slow)

Methods: `null_text_fast` (warm start from the source prompt, the pack's default), `null_text`
(the official settings: start from the negative ""), `negative_prompt` (no optimisation), against a
plain sampling of one image with the inversion's sampler (ddim / ddim_uniform), steps and cfg.

Models (what the goals name):
* `tiny`: the test suite's tiny SD1 model (tests/conftest.py tiny_sd1: v-prediction, seed 0),
  a fixed random 8x8 latent, 20 steps (tests/test_inversion.py's setting);
* `demo`: the pack's trained demo model, an image it generates from the source prompt, 50 steps;
* `sd15`: the SD1.5-size UNet of benchmarks/bench_models.py (random weights, built in inference
  mode as ComfyUI loads a checkpoint), a unit-variance random 16x16 latent, 5 steps (the CPU
  budget of `make bench`). Its rows measure cost and memory only: the reconstruction of random
  weights means nothing.

Every configuration runs in a fresh process forked from one that imported ComfyUI and torch
(CPU), or a new interpreter (CUDA), so that its peak memory is its own: CPU VmHWM (peak RSS)
reset after the model is built (the method of bench_jobs.py); CUDA torch.cuda.max_memory_allocated.
Times: CPU time (process_time, the comparable figure on a shared machine) and wall time,
medians of the repetitions. Time ratios: in the method's own process, each of its runs is followed
by a plain sampling (same model, prompt, steps, cfg), and the ratio divides the two medians: runs
made side by side under the same load. Peak-memory ratios divide the method's process's peak
(its first run) by the plain row's (its own process).

PSNR: latent PSNR of the reconstruction (the inversion's latent sampled back with
install_inversion, as P2P Apply does, noise disabled) against the inverted latent,
10 log10(max|source|^2 / MSE), as tests/test_inversion.py measures it.

Writes OUT/results.json (rows, ratios, goal verdicts) and OUT/results.md (also printed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

TINY_SOURCE = "a red cat sitting on a wooden chair"
DEMO_SOURCE = "a big red circle on the left and a small blue square on the right"
CFG = 7.5
GOAL_TIME = 4.0  # null_text_fast / plain sampling
GOAL_PEAK = 1.3  # null_text_fast peak / plain peak at SD1.5 size
METHOD_NAMES = {"null_text_fast": "null-text, warm start (default)", "null_text": "null-text, official settings",
                "negative_prompt": "negative-prompt", "plain": "plain sampling",
                "null_text_fast_copies": "null-text, warm start, copy path (before)"}


# ----------------------------------------------------------------------------------------------
# One configuration (runs in its own process)


def _setup(device: str):
    sys.path.append(str(REPO))
    sys.path.insert(0, str(HERE))
    from p2p_attention.comfy_bootstrap import bootstrap

    bootstrap(cpu=(device == "cpu"))
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))
    import comfy.model_management  # noqa: F401
    import comfy.sample  # noqa: F401
    import comfy.samplers  # noqa: F401


def _status_kib(key: str):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Peak:
    """Peak memory from start() on (see the module docstring), MiB."""

    def __init__(self, device):
        self.device = device

    def start(self):
        import gc

        import torch

        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            self.method = "torch.cuda.max_memory_allocated"
            return
        self.base = (_status_kib("VmRSS") or 0) * 1024
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := current RSS
        self.method = "VmHWM (peak RSS, reset after the build)"

    def result(self):
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = (_status_kib("VmHWM") or 0) * 1024
        mib = 1024 * 1024
        return {"peak_mib": round(peak / mib, 1), "activation_mib": round(max(peak - self.base, 0) / mib, 1),
                "memory_method": self.method}


def _encode(clip, text):
    out = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True, return_dict=True)
    return [[out.pop("cond"), out]]


def _sample(model, positive, negative, samples, sampler, scheduler, steps, cfg, seed=0, disable_noise=False):
    import comfy.sample
    import torch

    noise = torch.zeros_like(samples) if disable_noise else comfy.sample.prepare_noise(samples, seed, None)
    with torch.inference_mode():
        return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, positive, negative, samples,
                                   denoise=1.0, disable_noise=disable_noise, seed=seed, disable_pbar=True)


def _build(job):
    """-> (model, positive, negative, source latent [1,4,h,w], what the source is)."""
    import torch

    name = job["model"]
    if name == "tiny":
        from p2p_attention.model_build import ModelSpec, build_all

        spec = ModelSpec.tiny("sd1")
        spec.v_prediction = True
        model, clip, _ = build_all(spec, seed=0)
        gen = torch.Generator().manual_seed(0)
        latent = torch.randn(1, 4, 8, 8, generator=gen) / 0.18215
        return model, _encode(clip, TINY_SOURCE), _encode(clip, ""), latent, "random latent (tests' source_latent)"
    if name == "demo":
        from p2p_attention.demo_model import load_demo_model

        model, clip, _ = load_demo_model()
        pos, neg = _encode(clip, DEMO_SOURCE), _encode(clip, "")
        latent = _sample(model, pos, neg, torch.zeros(1, 4, 16, 16), "euler", "normal", 20, CFG, seed=0).float()
        return model, pos, neg, latent, "generated by the model from the source prompt (euler, 20 steps)"
    if name == "sd15":
        import bench_models

        with torch.inference_mode():  # as ComfyUI's checkpoint loader runs: the weights are inference tensors
            built = bench_models.build("sd15", seed=0)
        cond, extra = built["positive"][0]
        pos = [[cond[:1].clone(), {k: (v[:1] if isinstance(v, torch.Tensor) else v) for k, v in extra.items()}]]
        size = int(job["size"])
        gen = torch.Generator().manual_seed(99)
        latent = torch.randn(1, 4, size, size, generator=gen)
        return built["model"], pos, built["negative"], latent, "random latent (unit variance)"
    raise ValueError(f"unknown model {name!r}")


def _psnr(x, ref):
    mse = float(((x.float() - ref.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(float(ref.abs().max()) ** 2 / mse)


def run_job(job):
    import torch

    from p2p_attention.inversion import install_inversion, invert

    model, pos, neg, latent, what = _build(job)
    device = job["device"]
    if device == "cuda":
        import comfy.model_management as mm

        mm.load_models_gpu([model])
    method, steps = job["method"], int(job["steps"])
    if job.get("gradient"):  # the copy path (the code before WeightsAsReferences), for its memory
        from p2p_attention.inversion import methods

        cls = type(methods.STRATEGIES[method])
        methods.STRATEGIES[method] = cls(gradient=job["gradient"])
    results = []

    def plain():
        return _sample(model, pos, neg, torch.zeros_like(latent), "ddim", "ddim_uniform", steps, CFG)

    def once():
        if method == "plain":
            results.append(plain())
        else:
            with torch.inference_mode():
                results.append(invert(model, pos, neg, {"samples": latent}, method=method, steps=steps, guidance=CFG,
                                      inner_iterations=job["inner_iterations"]))

    def timed(fn):
        if device == "cuda":
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, time.process_time() - c

    # The method's runs alternate with plain samplings in this same process (after the first run, which
    # holds the peak): the time ratio compares runs made side by side, under the same load.
    peak = Peak(device)
    peak.start()
    runs, baseline = [timed(once)], []
    memory = peak.result()
    for k in range(int(job["reps"])):
        if method != "plain" and job.get("baseline"):
            baseline.append(timed(plain))
        if k + 1 < int(job["reps"]):
            runs.append(timed(once))
    wall, cpu = [r[0] for r in runs], [r[1] for r in runs]
    row = {**job, **memory, "source": what, "wall_s": [round(t, 3) for t in wall],
           "cpu_s": [round(t, 3) for t in cpu], "wall_median_s": round(statistics.median(wall), 3),
           "cpu_median_s": round(statistics.median(cpu), 3), "torch": torch.__version__,
           "load_avg_1m": round(os.getloadavg()[0], 2)}
    if baseline:
        row["plain_wall_s"] = [round(t, 3) for t, _ in baseline]
        row["plain_cpu_s"] = [round(c, 3) for _, c in baseline]
        row["cpu_x"] = round(row["cpu_median_s"] / statistics.median(c for _, c in baseline), 3)
        row["wall_x"] = round(row["wall_median_s"] / statistics.median(t for t, _ in baseline), 3)
    if method != "plain":
        inv = results[-1]
        used = inv.inner_iterations_used
        row.update({"unet_evals": inv.unet_evals, "unet_backwards": inv.unet_backwards,
                    "iterations_per_step": round(sum(used) / len(used), 2) if used else 0,
                    "iterations_min_max": [min(used, default=0), max(used, default=0)],
                    "final_loss_median": statistics.median(inv.final_losses) if inv.final_losses else None})
        if job.get("psnr"):
            patched = install_inversion(model.clone(), inv, n_items=1)
            out = _sample(patched, pos, neg, inv.latent, inv.sampler, inv.scheduler, inv.steps, CFG,
                          disable_noise=True)
            row["psnr_db"] = round(_psnr(out, latent), 2)
    return row


# ----------------------------------------------------------------------------------------------
# The run: plan, one process per configuration, compare


def plan(a):
    jobs = []
    inner = a.inner_iterations

    def add(model, method, steps, reps, psnr=True, size=None, label=None, gradient=None):
        jobs.append({"model": model, "method": method, "steps": steps, "reps": reps, "psnr": psnr, "size": size,
                     "inner_iterations": inner, "device": a.device, "label": label or method,
                     "gradient": gradient, "baseline": method != "plain"})

    models = [m.strip() for m in a.models.split(",") if m.strip()]
    if a.quick:
        models = ["tiny"]
    for model, steps in (("tiny", 20), ("demo", 50)):
        if model not in models:
            continue
        for method in ("plain", "negative_prompt", "null_text_fast"):
            add(model, method, steps, a.reps)
        add(model, "null_text", steps, 1)
    if "sd15" in models:
        for method in ("plain", "null_text_fast"):
            add("sd15", method, a.sd15_steps, 1, psnr=False, size=a.sd15_size)
        if a.sd15_copy_path:
            add("sd15", "null_text_fast", a.sd15_steps, 1, psnr=False, size=a.sd15_size,
                label="null_text_fast_copies", gradient="copies")
        if a.sd15_official:
            add("sd15", "null_text", a.sd15_steps, 1, psnr=False, size=a.sd15_size)
    return jobs


def _run_forked(job, out_file):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            Path(out_file).write_text(json.dumps({"ok": True, **run_job(job)}))
        except BaseException as e:  # noqa: BLE001 - a failed row, the run goes on
            import traceback

            Path(out_file).write_text(json.dumps({"ok": False, **job, "error": f"{type(e).__name__}: {e}",
                                                  "traceback": traceback.format_exc()}))
            code = 1
        finally:
            os._exit(code)
    os.waitpid(pid, 0)


def _run_spawned(job, out_file):
    job_file = Path(out_file).with_suffix(".job.json")
    job_file.write_text(json.dumps(job))
    subprocess.run([sys.executable, __file__, "--job", str(job_file), "--job-out", str(out_file)], check=False)


def compare(rows):
    by = {(r["model"], r["label"]): r for r in rows if r.get("ok")}
    goals = []

    def ratio(model, label, key):
        a, b = by.get((model, label)), by.get((model, "plain"))
        return None if not a or not b or not b.get(key) else a[key] / b[key]

    for r in rows:
        if r.get("ok") and r["label"] != "plain":
            for key, name in (("cpu_median_s", "cpu_x"), ("wall_median_s", "wall_x"), ("peak_mib", "peak_x"),
                              ("activation_mib", "act_x")):
                if r.get(name) is None:  # time: the in-process plain runs when there are
                    value = ratio(r["model"], r["label"], key)
                    r[name] = None if value is None else round(value, 3)
    for model in ("demo", "sd15"):
        fast = by.get((model, "null_text_fast"))
        if fast and fast.get("cpu_x") is not None:
            goals.append({"goal": f"{model}: null_text_fast CPU time <= {GOAL_TIME:g}x plain sampling",
                          "value": fast["cpu_x"], "met": fast["cpu_x"] <= GOAL_TIME})
    fast = by.get(("sd15", "null_text_fast"))
    if fast and fast.get("peak_x") is not None:
        goals.append({"goal": f"sd15: null_text_fast peak memory <= {GOAL_PEAK:g}x plain sampling",
                      "value": fast["peak_x"], "met": fast["peak_x"] <= GOAL_PEAK})
    for model in ("tiny", "demo"):
        fast = by.get((model, "null_text_fast"))
        for other in ("null_text", "negative_prompt"):
            ref = by.get((model, other))
            if fast and ref and "psnr_db" in fast and "psnr_db" in ref:
                goals.append({"goal": f"{model}: null_text_fast PSNR >= {other} PSNR",
                              "value": f"{fast['psnr_db']:.2f} vs {ref['psnr_db']:.2f} dB",
                              "met": fast["psnr_db"] >= ref["psnr_db"]})
    return goals


def _fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return str(v)


def render(rows, goals, info):
    lines = [f"# Null-text inversion against plain sampling ({info})", "",
             "| model | run | steps | reps | PSNR dB | UNet evals | backward | iter./step | CPU s | CPU x | wall s "
             "| wall x | peak MiB | peak x | act. MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r.get("ok"):
            lines.append(f"| {r['model']} | {r['label']} | FAILED: {r.get('error', '?')} |")
            continue
        lines.append(
            f"| {r['model']} | {METHOD_NAMES.get(r['label'], r['label'])} | {r['steps']} | {r['reps']} "
            f"| {_fmt(r.get('psnr_db'))} | {_fmt(r.get('unet_evals'))} | {_fmt(r.get('unet_backwards'))} "
            f"| {_fmt(r.get('iterations_per_step'))} | {_fmt(r['cpu_median_s'])} | {_fmt(r.get('cpu_x'), 3)} "
            f"| {_fmt(r['wall_median_s'])} | {_fmt(r.get('wall_x'), 3)} | {_fmt(r['peak_mib'], 0)} "
            f"| {_fmt(r.get('peak_x'), 3)} | {_fmt(r['activation_mib'], 0)} |")
    lines += ["", "| goal | measured | verdict |", "|---|---|---|"]
    for g in goals:
        value = g["value"] if isinstance(g["value"], str) else f"{g['value']:.3f}x"
        lines.append(f"| {g['goal']} | {value} | {'met' if g['met'] else '**missed**'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--quick", action="store_true", help="the tiny test model only")
    ap.add_argument("--models", default="tiny,demo,sd15")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions of plain, negative_prompt and "
                    "null_text_fast on tiny / demo (official null-text: 1) [3]")
    ap.add_argument("--sd15-size", type=int, default=16, help="SD1.5-size latent side [16 (128 px); cuda: use 64]")
    ap.add_argument("--sd15-steps", type=int, default=5, help="SD1.5-size steps [5]")
    ap.add_argument("--sd15-official", action="store_true", help="also official null-text at SD1.5 size (~15x plain)")
    ap.add_argument("--sd15-copy-path", action="store_true",
                    help="also null_text_fast through the copy path (the gradient path before this benchmark's "
                         "change: identity weight wrappers; autograd keeps a copy of every weight) at SD1.5 size")
    ap.add_argument("--inner-iterations", type=int, default=10, help="null-text iteration limit per step [10, official]")
    ap.add_argument("--out", default=str(REPO / "bench_out" / "null_text"))
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--job-out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.job:  # a spawned configuration
        job = json.loads(Path(a.job).read_text())
        _setup(job["device"])
        try:
            row = {"ok": True, **run_job(job)}
        except Exception as e:  # noqa: BLE001
            row = {"ok": False, **job, "error": f"{type(e).__name__}: {e}"}
        Path(a.job_out).write_text(json.dumps(row))
        return
    _setup(a.device)
    import torch

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan(a)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k, job in enumerate(jobs):
            f = Path(tmp) / f"row{k}.json"
            print(f"[{k + 1}/{len(jobs)}] {job['model']} {job['label']} ...", file=sys.stderr, flush=True)
            (_run_spawned if a.device == "cuda" else _run_forked)(job, f)
            row = json.loads(f.read_text()) if f.exists() else {"ok": False, **job, "error": "no result"}
            rows.append(row)
            print(f"    {'ok' if row.get('ok') else 'FAILED ' + row.get('error', '')} "
                  f"cpu {row.get('cpu_median_s')} s, psnr {row.get('psnr_db')}, peak {row.get('peak_mib')} MiB",
                  file=sys.stderr, flush=True)
    goals = compare(rows)
    try:
        from comfyui_version import __version__ as comfy_version
    except ImportError:
        comfy_version = "?"
    info = (f"{a.device}, torch {torch.__version__}, ComfyUI {comfy_version}, "
            f"{os.environ.get('OMP_NUM_THREADS', '?')} thread(s), {time.perf_counter() - started:.0f} s wall")
    md = render(rows, goals, info)
    (out / "results.json").write_text(json.dumps({"info": info, "rows": rows, "goals": goals}, indent=1))
    (out / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
