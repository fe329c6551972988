"""One benchmark configuration, run inside its own (fresh) worker process.

Job kinds:
  sample  - sampling of a [source + 1 edit] latent batch, mode plain | p2p | p2p_ref, or the
            "self at every layer" variants p2p_selfall | p2p_selfall_ref (on an MM-DiT: self
            injection at the default blocks, self_blocks "auto", or at every block, "all")
  plain1  - plain sampling of ONE image (the inversion baseline), ddim / ddim_uniform
  invert  - p2p_attention.inversion.invert(method=...)

Memory: on CPU the peak resident set size of this process while the configuration runs
(/proc/self/status VmHWM after resetting it through /proc/self/clear_refs once the model is built;
getrusage's ru_maxrss where that is not possible); on CUDA torch.cuda.max_memory_allocated after
the model is loaded. "activation" = peak minus the value just before the first run (weights,
conditioning and imports excluded).
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import torch

from p2p_testkit.memory import PeakMemory
from p2p_testkit.sampling import sample

P2P_MODES = {
    # mode: (reference, self_attn_min_downsample); None = ComfyUI's plain sampling, no patch. On an MM-DiT
    # self_attn_min_downsample None -> self_blocks "auto" (the default blocks), 1 -> "all".
    "plain": None,
    "p2p": (False, None),
    "p2p_ref": (True, None),
    "p2p_selfall": (False, 1),
    "p2p_selfall_ref": (True, 1),
    # MM-DiT structure controls other than the default values_outside_edit (P2P Apply's mmdit_structure)
    "p2p_qk": (False, None),
    "p2p_maps": (False, None),
}
DIT_STRUCTURE = {"p2p_qk": "image_qk", "p2p_maps": "self_maps"}
CROSS_REPLACE, SELF_REPLACE = "0.8", "0.4"  # the official defaults (P2P_NOTES)


# ----------------------------------------------------------------------------------------------
# Machine and memory


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict:
    import comfy.model_management as mm  # noqa: F401  (ComfyUI's device choice is part of the setup)

    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "device": device,
    }
    try:
        import comfyui_version

        info["comfyui"] = comfyui_version.__version__
    except Exception:  # noqa: BLE001 - only a label
        info["comfyui"] = "unknown"
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["machine"] = info["gpu"]
    else:
        info["gpu"] = None
        info["machine"] = info["cpu"]
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------
# Sampling through ComfyUI (what KSampler calls)


def eval_counter(model):
    """A clone of `model` that counts single-image UNet evaluations (like inversion.invert does)."""
    import comfy.patcher_extension

    counter = [0]

    def count(executor, x, *args, **kwargs):
        counter[0] += int(x.shape[0])
        return executor(x, *args, **kwargs)

    clone = model.clone()
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "p2p_bench_count", count)
    return clone, counter


def _timed(fn, device, warmup: int, reps: int):
    """Wall times and this process's CPU times (user + system, all threads) of `reps` runs."""
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(reps):
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return times, cpu


def _summary(timed):
    times, cpu = timed
    return {
        "times_s": [round(t, 4) for t in times],
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "cpu_times_s": [round(t, 4) for t in cpu],
        "cpu_median_s": round(statistics.median(cpu), 4),
    }


def run_job(job: dict) -> dict:
    device = job["device"]
    threads = job.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    import bench_models

    t0, cpu0 = time.perf_counter(), time.process_time()
    built = bench_models.build(job["model"], seed=job.get("seed", 0), blocks=job.get("blocks"),
                               dtype=job.get("dtype") or "float32")
    build_s = time.perf_counter() - t0
    model = built["model"]
    size = int(job["size"])
    row = {
        **{k: v for k, v in job.items() if k not in ("out",)},
        **built["info"],
        **machine_info(device),
        "latent": [size, size],
        "pixels": size * 8,
        "build_s": round(build_s, 2),
    }
    if device == "cuda":
        import comfy.model_management as mm

        mm.load_models_gpu([model])  # weights on the GPU before the memory baseline

    kind = job["kind"]
    mem = PeakMemory(device)
    if kind == "sample":
        row.update(_sample_job(job, built, mem))
    elif kind == "plain1":
        row.update(_plain1_job(job, built, mem))
    elif kind == "invert":
        row.update(_invert_job(job, built, mem))
    else:
        raise ValueError(f"unknown job kind {kind!r}")
    row["load_avg_1m_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    row["job_cpu_s"] = round(time.process_time() - cpu0, 2)  # this process: build + every run
    row["job_wall_s"] = round(time.perf_counter() - t0, 2)
    return row


def _sample_job(job, built, mem):
    from p2p_attention.apply import apply_edit
    from p2p_attention.conditioning import latent_batch
    from p2p_attention.edits import make_plan
    from p2p_attention.unet_runtime import DEFAULT_SELF_MIN_DOWNSAMPLE

    size = int(job["size"])
    latent = latent_batch({"samples": torch.zeros(1, built.get("latent_channels", 4), size, size)}, 2)
    model = built["model"]
    mode = job["mode"]
    setting = P2P_MODES[mode]
    extra = {"batch": 2, "sampler": job["sampler"], "scheduler": job["scheduler"], "steps": job["steps"],
             "cfg": job["cfg"], "stop_after": job.get("stop_after")}
    if setting is not None:
        reference, self_min = setting
        plan = make_plan(built["prompts"], None, "swap", CROSS_REPLACE, SELF_REPLACE)
        extra.update({"edit": "word swap", "cross_replace": CROSS_REPLACE, "self_replace": SELF_REPLACE,
                      "reference": reference})
        if built.get("latent_channels", 4) == 16:  # MM-DiT: self injection by block
            self_blocks = "all" if self_min == 1 else "auto"
            structure = DIT_STRUCTURE.get(mode, "values_outside_edit")
            model, runtime = apply_edit(model, plan, attention_path="reference" if reference else "fast", self_blocks=self_blocks,
                                        mmdit_structure=structure)
            blocks = dit_blocks(model)
            extra.update({"structure": structure, "self_blocks": self_blocks, "self_blocks_used": describe_blocks(runtime.self_blocks, blocks),
                          "variant": f"{structure}: " + dit_variant(self_blocks, runtime.self_blocks, blocks)})
        else:
            self_min = self_min or DEFAULT_SELF_MIN_DOWNSAMPLE
            model, runtime = apply_edit(model, plan, attention_path="reference" if reference else "fast",
                                        self_attn_min_downsample=self_min)
            extra["self_attn_min_downsample"] = self_min
        extra["store"] = runtime.store is not None

    def once():
        sample(model, built["positive"], built["negative"], latent, sampler=job["sampler"], scheduler=job["scheduler"],
               steps=job["steps"], cfg=job["cfg"], seed=job.get("seed", 0), stop_after=job.get("stop_after"))

    mem.start()
    timed = _timed(once, job["device"], job["warmup"], job["reps"])
    return {**extra, **_summary(timed), **mem.result()}


def dit_blocks(model) -> list[tuple[str, int]]:
    from p2p_attention.adapters import model_family
    from p2p_attention.dit_blocks import attention_blocks

    return attention_blocks(model, model_family(model))


def describe_blocks(chosen, blocks) -> str:
    """{("single", 2), ("single", 3)} -> 'single 2-3' (ranges per block type, in model order)."""
    parts = []
    for kind in dict.fromkeys(t for t, _ in blocks):
        idx = sorted(i for t, i in chosen if t == kind)
        runs, start = [], None
        for j, i in enumerate(idx):
            if start is None:
                start = i
            if j + 1 == len(idx) or idx[j + 1] != i + 1:
                runs.append(f"{start}" if start == i else f"{start}-{i}")
                start = None
        if runs:
            parts.append(f"{kind} " + ", ".join(runs))
    return ", ".join(parts) or "none"


def dit_variant(spec: str, chosen, blocks) -> str:
    used = describe_blocks(chosen, blocks)
    if spec == "all":
        return f"self injection at every block ({used})"
    return f"self injection at the default blocks ({used})" + (", = every block" if set(chosen) == set(blocks) else "")


def _random_source_latent(size, seed):
    gen = torch.Generator().manual_seed(seed + 99)
    return torch.randn(1, 4, size, size, generator=gen)  # the scale of a VAE-encoded image


def _plain1_job(job, built, mem):
    size = int(job["size"])
    latent = {"samples": torch.zeros(1, 4, size, size)}
    model, counter = eval_counter(built["model"])
    positive = [[built["positive"][0][0][:1], _first_item(built["positive"][0][1])]]

    def once():
        counter[0] = 0
        sample(model, positive, built["negative"], latent, sampler=job["sampler"], scheduler=job["scheduler"],
               steps=job["steps"], cfg=job["cfg"], seed=job.get("seed", 0))

    mem.start()
    timed = _timed(once, job["device"], job["warmup"], job["reps"])
    return {"batch": 1, "sampler": job["sampler"], "scheduler": job["scheduler"], "unet_evals": counter[0],
            **_summary(timed), **mem.result()}


def _first_item(extra: dict) -> dict:
    return {k: (v[:1] if isinstance(v, torch.Tensor) else v) for k, v in extra.items()}


def _source_latent(job, built, positive):
    """What gets inverted: for a trained model an image it generates from the source prompt (an
    in-distribution latent); for random weights a unit-variance random latent."""
    size, seed = int(job["size"]), job.get("seed", 0)
    if not built.get("trained"):
        return _random_source_latent(size, seed), "random latent (unit variance)"
    empty = {"samples": torch.zeros(1, 4, size, size)}
    out = sample(built["model"], positive, built["negative"], empty, sampler="euler", scheduler="normal", steps=20,
                 cfg=job["cfg"], seed=seed)
    return out.float(), "generated by the model from the source prompt (euler, 20 steps)"


def _invert_job(job, built, mem):
    from p2p_attention import inversion

    positive = [[built["positive"][0][0][:1], _first_item(built["positive"][0][1])]]
    latent, what = _source_latent(job, built, positive)
    source = {"samples": latent}
    results = []

    def once():
        results.append(
            inversion.invert(
                built["model"], positive, built["negative"], source, method=job["method"], steps=job["steps"],
                guidance=job["cfg"], inner_iterations=job["inner_iterations"],
            )
        )

    mem.start()
    timed = _timed(once, job["device"], job["warmup"], job["reps"])
    inv = results[-1]
    out = {"batch": 1, "unet_evals": inv.unet_evals, "unet_backwards": inv.unet_backwards,
           "schedule_steps": inv.n_steps, "source": what, **_summary(timed), **mem.result()}
    if job["method"] == "null_text":
        used = inv.inner_iterations_used
        out.update({"inner_iterations_used_total": int(sum(used)),
                    "inner_iterations_used_min": min(used, default=0),
                    "inner_iterations_used_max": max(used, default=0),
                    "nan_steps": list(inv.nan_steps)})
    return out
