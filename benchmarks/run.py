"""Prompt-to-Prompt and inversion cost against plain ComfyUI sampling: time and peak memory.

    make bench                                   # CPU defaults (see README.md in this folder)
    make bench BENCH_ARGS="--quick"              # ~1 minute smoke run, tiny models only
    make bench BENCH_ARGS="--device cuda --sizes 64,128"   # 512 px / 1024 px on a GPU
    make bench BENCH_ARGS="--dit"                # Flux.1- and SD3.5-Large-width MM-DiTs (~1 h of CPU)

Every configuration runs in a fresh process (see worker.py); this script only schedules them,
compares the rows and writes bench_out/results.json and bench_out/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402

RANDOM_TINY = ("tiny-sd1", "tiny-sdxl")  # ModelSpec.tiny, random weights
TINY = (*RANDOM_TINY, "demo")  # + the pack's trained demo model (models/demo/)
REAL = ("sd15", "sdxl")
# MM-DiT: full-width Flux.1 / SD3.5 Large with fewer blocks (bench_models.DIT_BLOCKS), p2p_models.tiny_dit's tiny ones.
DIT_REAL = ("flux", "sd35-large")
DIT_TINY = ("tiny-flux", "tiny-sd3")
DIT = DIT_REAL + DIT_TINY
SD3_LIKE = ("sd35-large", "tiny-sd3")  # their default self blocks are every joint block: no "selfall" variant
METHODS = ("ddim", "null_text", "negative_prompt", "direct")


def _ints(text: str) -> list[int]:
    return [int(x) for x in str(text).split(",") if x.strip()]


def _strs(text: str) -> list[str]:
    return [x.strip() for x in str(text).split(",") if x.strip()]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny models, few steps, about a minute")
    ap.add_argument("--models", default=None,
                    help="P2P rows: comma list of tiny-sd1,tiny-sdxl,demo,sd15,sdxl [all; --quick: the random tiny two]")
    ap.add_argument("--sizes", default=None,
                    help="latent sizes (side, in latent pixels; x8 = image px) for the SD1.5-size UNet "
                         "[cpu: 16; cuda: 64,128]")
    ap.add_argument("--sdxl-sizes", default=None, help="latent sizes for the SDXL-size UNet [cpu: half the smallest --sizes, >= 8; cuda: --sizes]")
    ap.add_argument("--tiny-sizes", default=None, help="latent sizes for the tiny models [cpu 16, cuda 32,64]")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps, real-size models [cpu 5, cuda 20]")
    ap.add_argument("--tiny-steps", type=int, default=None, help="sampling steps, tiny models [10]")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions, real-size models [cpu 1, cuda 3]")
    ap.add_argument("--tiny-reps", type=int, default=None, help="timed repetitions, tiny models [cpu 3, cuda 5]")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs first, real-size [cpu 0, cuda 1]")
    ap.add_argument("--cfg", type=float, default=7.5)
    ap.add_argument("--sampler", default="euler")
    ap.add_argument("--scheduler", default="normal")
    ap.add_argument("--modes", default=None,
                    help="P2P modes for tiny models [plain,p2p,p2p_ref,p2p_selfall,p2p_selfall_ref]")
    ap.add_argument("--real-modes", default=None,
                    help="P2P modes for real-size models [cpu plain,p2p; cuda all five]")
    ap.add_argument("--probe-sizes", default=None,
                    help="latent sizes of first-step memory probes [cpu 64; cuda none; '' for none]")
    ap.add_argument("--probe-models", default=None, help="models of the memory probes [tiny-sd1,tiny-sdxl]")
    ap.add_argument("--probe-modes", default=None, help="modes of the memory probes [all five]")
    ap.add_argument("--inversion-models", default=None, help="models for the inversion rows [demo (trained); cuda demo,sd15; --quick tiny-sd1; "
                         "--dit none; '' for none]")
    ap.add_argument("--inversion-size", type=int, default=None, help="latent size for inversion [tiny: cpu 8, cuda 32; real: cpu 16, cuda 64]")
    ap.add_argument("--inversion-steps", type=int, default=None,
                    help="inversion steps and the plain baseline's steps [demo and cuda 50; cpu: random tiny 10, "
                         "real-size 5; --quick 3]")
    ap.add_argument("--inversion-methods", default=",".join(METHODS))
    ap.add_argument("--inner-iterations", type=int, default=10, help="null-text inner iterations (official 10)")
    ap.add_argument("--inversion-reps", type=int, default=None, help="[tiny 3, real-size on CPU 1]")
    ap.add_argument("--null-text-reps", type=int, default=None, help="[1; cuda adds one warm-up run]")
    ap.add_argument("--dit", action="store_true",
                    help="the MM-DiT benchmark: Flux.1-width and SD3.5-Large-width models (instead of the UNet set)")
    ap.add_argument("--dit-sizes", default=None, help="latent sizes of the full-width MM-DiT runs [64 (512 px)]")
    ap.add_argument("--dit-steps", type=int, default=None, help="sampling steps of the MM-DiT runs [5]")
    ap.add_argument("--dit-reps", type=int, default=None, help="timed repetitions of the MM-DiT runs [cpu 1, cuda 3]")
    ap.add_argument("--dit-modes", default=None,
                    help="modes of the MM-DiT runs [cpu plain,p2p,p2p_qk,p2p_maps; cuda and p2p_ref] (p2p: the "
                         "default structure values_outside_edit; p2p_qk image_qk; p2p_maps self_maps)")
    ap.add_argument("--dit-probe-sizes", default=None,
                    help="latent sizes of the MM-DiT first-step memory probes [cpu 128 (1024 px); cuda none]")
    ap.add_argument("--dit-probe-modes", default=None, help="modes of the MM-DiT memory probes [all five]")
    ap.add_argument("--flux-blocks", default="2,4", help="Flux.1-width model: double,single blocks [2,4 of 19,38]")
    ap.add_argument("--sd35-blocks", type=int, default=4, help="SD3.5-Large-width model: joint blocks [4 of 38]")
    ap.add_argument("--dit-dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                    help="weights and compute dtype of the full-width MM-DiT models [float32]")
    ap.add_argument("--sd3-cfg", type=float, default=4.5, help="cfg of the SD3 models [4.5] (Flux.1: 1, no uncond)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads [OMP_NUM_THREADS, else 1 on cpu]")
    ap.add_argument("--isolation", choices=("fork", "spawn"), default=None,
                    help="fresh process per configuration: forked from a pre-imported server (cpu default) "
                         "or a new interpreter (cuda default)")
    ap.add_argument("--job-timeout", type=float, default=1800)
    ap.add_argument("--out", default=str(REPO / "bench_out"))
    ap.add_argument("--list", action="store_true", help="print the planned configurations and exit")
    ap.add_argument("--rerender", metavar="RESULTS_JSON[,MORE]",
                    help="rebuild results.json/.md in --out from the rows of earlier results.json files (no runs); "
                         "with several, a later file's row replaces an earlier one of the same configuration")
    return ap.parse_args(argv)


def plan_jobs(a) -> list[dict]:
    cuda = a.device == "cuda"
    q = a.quick
    if a.models is not None:  # '' for none (e.g. memory probes only)
        models = _strs(a.models)
    else:
        models = list(DIT_REAL) if a.dit else (list(RANDOM_TINY + DIT_TINY) if q else list(TINY + REAL))
    sizes = _ints(a.sizes) if a.sizes else ([64, 128] if cuda else [16])
    sdxl_sizes = _ints(a.sdxl_sizes) if a.sdxl_sizes else (sizes if cuda else [max(8, min(sizes) // 2)])
    tiny_sizes = _ints(a.tiny_sizes) if a.tiny_sizes else ([8] if q else ([32, 64] if cuda else [16]))
    steps = a.steps or (5 if q else (20 if cuda else 5))
    tiny_steps = a.tiny_steps or (5 if q else 10)
    reps = a.reps or (1 if q else (3 if cuda else 1))
    tiny_reps = a.tiny_reps or (2 if q else (5 if cuda else 3))
    warmup = a.warmup if a.warmup is not None else (1 if cuda else 0)
    selfall = ["p2p_selfall", "p2p_selfall_ref"]
    tiny_modes = _strs(a.modes) if a.modes else ["plain", "p2p", "p2p_ref", *selfall]
    real_modes = _strs(a.real_modes) if a.real_modes else (
        ["plain", "p2p", "p2p_ref", *selfall] if cuda else ["plain", "p2p"]  # CPU budget: no real-size reference
    )
    threads = a.threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or (None if cuda else 1)
    common = {"device": a.device, "threads": threads, "cfg": a.cfg, "seed": 0}

    dit_sizes = _ints(a.dit_sizes) if a.dit_sizes else ([64, 128] if cuda else [64])
    dit_steps = a.dit_steps or (5 if not q else 3)
    dit_reps = a.dit_reps or (1 if q else (3 if cuda else 1))
    dit_modes = _strs(a.dit_modes) if a.dit_modes else (
        ["plain", "p2p", "p2p_ref", "p2p_qk", "p2p_maps"] if cuda or q else ["plain", "p2p", "p2p_qk", "p2p_maps"])

    def dit_job(model, size, mode, **kw):
        tiny = model in DIT_TINY
        job = {**common, "kind": "sample", "model": model, "size": size, "mode": mode,
               "steps": tiny_steps if tiny else dit_steps, "sampler": a.sampler, "scheduler": a.scheduler,
               "reps": tiny_reps if tiny else dit_reps, "warmup": 1 if tiny else warmup,
               "cfg": a.sd3_cfg if model in SD3_LIKE else 1.0}
        if not tiny:
            job["dtype"] = a.dit_dtype
            job["blocks"] = [a.sd35_blocks] if model in SD3_LIKE else _ints(a.flux_blocks)
        return {**job, **kw}

    def dit_modes_of(model, modes):
        return [m for m in modes if not (model in SD3_LIKE and m in selfall)]

    jobs = []
    for model in models:
        if model in DIT:
            for size in tiny_sizes if model in DIT_TINY else dit_sizes:
                jobs += [dit_job(model, size, mode) for mode in dit_modes_of(model, dit_modes)]
            continue
        tiny = model in TINY
        msizes = tiny_sizes if tiny else (sdxl_sizes if model == "sdxl" else sizes)
        modes = tiny_modes if tiny else real_modes

        for size in msizes:
            for mode in modes:
                jobs.append({**common, "kind": "sample", "model": model, "size": size, "mode": mode,
                             "steps": tiny_steps if tiny else steps, "sampler": a.sampler,
                             "scheduler": a.scheduler, "reps": tiny_reps if tiny else reps,
                             "warmup": 1 if tiny else warmup})

    # Memory probes: the first step of a full schedule (every P2P window is active there, so it holds
    # P2P's peak) at a latent too large to sample to the end within the CPU budget.
    probe_models = _strs(a.probe_models) if a.probe_models else (list(DIT_REAL) if a.dit else list(RANDOM_TINY))
    probe_sizes = _ints(a.probe_sizes) if a.probe_sizes is not None else ([] if q or cuda else [64])
    probe_modes = _strs(a.probe_modes) if a.probe_modes else ["plain", "p2p", "p2p_ref", *selfall]
    dit_probe_sizes = _ints(a.dit_probe_sizes) if a.dit_probe_sizes is not None else ([] if q or cuda else [128])
    dit_probe_modes = _strs(a.dit_probe_modes) if a.dit_probe_modes else ["plain", "p2p", "p2p_ref", *selfall]
    for model in probe_models:
        if model in DIT:
            for size in dit_probe_sizes:
                jobs += [dit_job(model, size, mode, stop_after=1, reps=1, warmup=0)
                         for mode in dit_modes_of(model, dit_probe_modes)]
            continue
        for size in probe_sizes:
            for mode in probe_modes:
                tiny = model in TINY
                jobs.append({**common, "kind": "sample", "model": model, "size": size, "mode": mode,
                             "steps": tiny_steps if tiny else steps, "stop_after": 1, "sampler": a.sampler,
                             "scheduler": a.scheduler, "reps": 1, "warmup": 0})

    if a.inversion_models is not None:
        inv_models = _strs(a.inversion_models)
    elif a.dit:  # inversion (P2P Invert) is UNet-only
        inv_models = []
    else:
        inv_models = ["tiny-sd1"] if q else (["demo", "sd15"] if cuda else ["demo"])
    for model in inv_models:
        tiny = model in TINY
        if model == "demo":
            size = a.inversion_size or 16  # its native latent (32 px images, 2x VAE)
        else:
            size = a.inversion_size or (8 if tiny and not cuda else (32 if tiny else (64 if cuda else 16)))
        isteps = a.inversion_steps or (3 if q else (50 if cuda or model == "demo" else (10 if tiny else 5)))
        ireps = a.inversion_reps or (1 if q else (3 if tiny or cuda else 1))
        iwarm = 1 if cuda and not q else 0
        base = {**common, "model": model, "size": size, "steps": isteps, "reps": ireps, "warmup": iwarm,
                "sampler": "ddim", "scheduler": "ddim_uniform"}
        jobs.append({**base, "kind": "plain1"})
        for method in _strs(a.inversion_methods):
            job = {**base, "kind": "invert", "method": method, "inner_iterations": a.inner_iterations}
            if method == "null_text":  # by far the longest row: one run, no warm-up, unless asked
                job["reps"] = a.null_text_reps or 1
                job["warmup"] = 1 if cuda and not q else 0
            jobs.append(job)
    return jobs


class Runner:
    """Starts worker processes (this script's own children) and collects their rows."""

    def __init__(self, device: str, isolation: str, timeout: float, log_path: Path, env: dict):
        self.device, self.isolation, self.timeout = device, isolation, timeout
        self.log = open(log_path, "a")
        self.env = env
        self.server = None
        self.tmp = Path(tempfile.mkdtemp(prefix="p2p_bench_"))
        self.n = 0

    def _start_server(self):
        self.server = subprocess.Popen(
            [sys.executable, str(HERE / "worker.py"), "--serve", "--device", self.device],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1,
            env=self.env, start_new_session=True, cwd=str(REPO),
        )
        msg = self._read_line(self.timeout)
        if not msg or not msg.get("ready"):
            raise RuntimeError("benchmark worker did not start (see the log)")

    def _read_line(self, timeout):
        ready, _, _ = select.select([self.server.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.server.stdout.readline()
        return json.loads(line) if line.strip() else None

    def _kill_server(self):
        if self.server is not None and self.server.poll() is None:
            try:
                os.killpg(self.server.pid, signal.SIGKILL)  # the server and the job it forked
            except ProcessLookupError:
                pass
            self.server.wait()
        self.server = None

    def run(self, job: dict) -> dict:
        self.n += 1
        out = self.tmp / f"job{self.n}.json"
        job = {**job, "out": str(out)}
        self.log.write(f"\n=== job {self.n}: {json.dumps(job)}\n")
        self.log.flush()
        timed_out = False
        if self.isolation == "fork":
            if self.server is None or self.server.poll() is not None:
                self._start_server()
            self.server.stdin.write(json.dumps(job) + "\n")
            self.server.stdin.flush()
            if self._read_line(self.timeout) is None:
                timed_out = True
                self._kill_server()
        else:
            spec = self.tmp / f"job{self.n}.in.json"
            spec.write_text(json.dumps(job))
            proc = subprocess.Popen(
                [sys.executable, str(HERE / "worker.py"), "--job", str(spec), "--device", self.device],
                stdout=self.log, stderr=self.log, env=self.env, start_new_session=True, cwd=str(REPO),
            )
            try:
                proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if out.is_file():
            return json.loads(out.read_text())
        why = f"timed out after {self.timeout:.0f} s" if timed_out else "the worker process died (see the log)"
        return {**{k: v for k, v in job.items() if k != "out"}, "ok": False, "error": why}

    def close(self):
        if self.server is not None and self.server.poll() is None:
            self.server.stdin.close()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._kill_server()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)  # the rows are in results.json


def _git_state() -> str | None:
    """HEAD of the repository the benchmark ran from, "+dirty" when p2p_attention/ had local changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "p2p_attention"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head + ("+dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def _label(job: dict) -> str:
    what = (job.get("mode") or job.get("method") or job["kind"]) + (" (1st step)" if job.get("stop_after") else "")
    return f"{job['model']:<9} {job['kind']:<6} {what:<16} latent {job['size']}x{job['size']} steps {job['steps']}"


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.list:
        for job in plan_jobs(a):
            print(_label(job), f"reps {job['reps']} warmup {job['warmup']}")
        return 0
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if a.rerender:
        olds = [json.loads(Path(p).read_text()) for p in _strs(a.rerender)]
        rows = {}
        for old in olds:
            for r in old["rows"]:
                key = (r.get("model"), r.get("kind"), r.get("mode") or r.get("method"), r.get("size"),
                       r.get("stop_after") or 0)
                rows.pop(key, None)
                rows[key] = r
        meta = olds[-1]["meta"]
        results = report.build_results(list(rows.values()), meta["args"], sum(o["meta"]["total_s"] for o in olds),
                                       meta["isolation"])
        results["meta"]["date"] = " / ".join(dict.fromkeys(o["meta"]["date"] for o in olds))
        results["meta"]["git"] = " / ".join(dict.fromkeys(str(o["meta"].get("git")) for o in olds))
        if len(olds) > 1:
            results["meta"]["merged_from"] = _strs(a.rerender)
        (out_dir / "results.json").write_text(json.dumps(results, indent=1))
        md = report.markdown(results)
        (out_dir / "results.md").write_text(md)
        print(md)
        return 0
    isolation = a.isolation or ("spawn" if a.device == "cuda" else "fork")
    env = dict(os.environ)
    if a.device == "cpu":
        env.setdefault("OMP_NUM_THREADS", str(a.threads or 1))
        env.setdefault("MKL_NUM_THREADS", env["OMP_NUM_THREADS"])
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")  # the fork server tokenizes before it forks
    jobs = plan_jobs(a)
    log_path = out_dir / "worker.log"
    log_path.write_text("")
    print(f"{len(jobs)} configurations, each in a fresh process ({isolation}); worker log: {log_path}", flush=True)
    started = time.perf_counter()
    rows = []
    runner = Runner(a.device, isolation, a.job_timeout, log_path, env)
    try:
        for i, job in enumerate(jobs, 1):
            t = time.perf_counter()
            row = runner.run(job)
            rows.append(row)
            status = f"median {row['median_s']:.3f} s, peak {row['peak_mib']:.0f} MiB" if row.get("ok") else \
                f"FAILED: {row.get('error')}"
            print(f"[{i}/{len(jobs)}] {_label(job)}: {status} ({time.perf_counter() - t:.0f} s)", flush=True)
    finally:
        runner.close()
    total = time.perf_counter() - started
    results = report.build_results(rows, vars(a), total, isolation)
    results["meta"]["git"] = _git_state()
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    md = report.markdown(results)
    (out_dir / "results.md").write_text(md)
    print()
    print(md)
    print(f"wrote {out_dir / 'results.json'} and {out_dir / 'results.md'} in {total:.0f} s")
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
