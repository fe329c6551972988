"""Benchmark worker: runs each configuration in a fresh process.

  worker.py --serve            fork server (CPU): imports ComfyUI + torch once, then for every job
                               line on stdin forks a NEW child process that builds the model, runs
                               the configuration and writes its JSON row; replies one JSON line.
  worker.py --job FILE         runs one job in this (new) process (used for CUDA, where a process
                               that initialised CUDA must not fork, and with --isolation spawn).

A forked child shares nothing with earlier configurations: each starts from the server's state
right after `import` (no model, no sampling done), so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _setup(device: str, serve: bool = False):
    # ComfyUI first on sys.path (its nodes.py must win over the pack's nodes/ package), then the repo.
    sys.path.append(str(REPO))
    sys.path.insert(0, str(HERE))
    from p2p_models.comfy_bootstrap import bootstrap

    bootstrap(cpu=(device == "cpu"))
    import torch

    threads = os.environ.get("OMP_NUM_THREADS")
    if serve:
        # No OpenMP thread pool before fork (libgomp's pool does not survive it): the server works on
        # one thread; each forked job sets its own thread count (bench_jobs.run_job).
        torch.set_num_threads(1)
    elif threads:
        torch.set_num_threads(int(threads))
    # What every job needs, imported once (the fork server's whole point).
    import bench_jobs  # noqa: F401
    import bench_models
    import comfy.model_management  # noqa: F401
    import comfy.sample  # noqa: F401
    import comfy.samplers  # noqa: F401
    import comfy.sd  # noqa: F401

    # Building a tiny CLIP imports transformers' tokenizer machinery (~20 s on a busy core); do it
    # once here so the forked jobs do not each pay it. Nothing built here is kept.
    from p2p_models.tiny_unet import ModelSpec, build_clip

    for arch in ("sd1", "sdxl"):
        build_clip(ModelSpec.tiny(arch)).tokenize(bench_models.SOURCE)
    # The MM-DiT jobs' tokenizers (T5's sentencepiece, CLIP-L, CLIP-G): their imports, once.
    from comfy.text_encoders import flux, sd3_clip

    for tokenizer in (flux.FluxTokenizer, sd3_clip.SD3Tokenizer):
        tokenizer().tokenize_with_weights(bench_models.SOURCE)


def _run_to_file(job: dict) -> None:
    import bench_jobs

    out = Path(job["out"])
    try:
        row = bench_jobs.run_job(job)
        row["ok"] = True
    except BaseException as e:  # noqa: BLE001 - reported as a failed row, the run goes on
        row = {**{k: v for k, v in job.items() if k != "out"}, "ok": False,
               "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    out.write_text(json.dumps(row, indent=1))


def serve() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol channel
    os.dup2(2, 1)  # everything else (ComfyUI's prints, logs) goes to stderr
    proto.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: a fresh process for this configuration
            code = 0
            try:
                _run_to_file(job)
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        proto.write(json.dumps({"done": True, "status": status, "out": job["out"]}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--job")
    args = ap.parse_args()
    _setup(args.device, serve=args.serve)
    if args.serve:
        serve()
    else:
        _run_to_file(json.loads(Path(args.job).read_text()))


if __name__ == "__main__":
    main()
