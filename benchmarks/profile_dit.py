"""Where P2P's extra time goes on a full-width MM-DiT: torch.profiler over the first sampling step(s)
of plain sampling and of P2P (fast path, default self blocks), both in this process, operators
compared side by side, plus P2P's own Python-level parts timed inside the attention override.

    .venv/bin/python benchmarks/profile_dit.py --model flux --size 64 --steps 5 --stop-after 1

Not part of `make bench` (one process, no isolation: a profile, not a measurement of record).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))
sys.path.insert(0, str(HERE))

from p2p_testkit.sampling import sample  # noqa: E402


def _op_table(prof) -> dict:
    out = {}
    for e in prof.key_averages():
        out[e.key] = (e.self_cpu_time_total / 1e6, e.count)
    return out


class PartTimer:
    """Wall/CPU seconds of P2P's pieces: the whole override call, the backend SDPA calls inside it,
    the store's recording and the fast path's edit rows."""

    def __init__(self):
        self.cpu = defaultdict(float)
        self.calls = defaultdict(int)

    def wrap(self, obj, name, label):
        original = getattr(obj, name)

        def timed(*args, **kwargs):
            import torch.profiler

            c = time.process_time()
            try:
                with torch.profiler.record_function(label):  # names the part in the memory stacks
                    return original(*args, **kwargs)
            finally:
                self.cpu[label] += time.process_time() - c
                self.calls[label] += 1

        setattr(obj, name, timed)


def memory_peak(prof, trace_path: str) -> tuple[float, list[str]]:
    """Peak of the CPU allocator's live bytes during the profile (tensors allocated after its start),
    in MiB, and the operators / P2P parts running at that moment (outermost first)."""
    import json

    prof.export_chrome_trace(trace_path)
    events = json.loads(Path(trace_path).read_text())["traceEvents"]
    mem = [e for e in events if e.get("name") == "[memory]"]
    if not mem:
        return 0.0, []
    top = max(mem, key=lambda e: e["args"]["Total Allocated"])
    t = top["ts"]
    spans = [e for e in events if e.get("ph") == "X" and e["ts"] <= t <= e["ts"] + e.get("dur", 0)
             and e.get("tid") == top.get("tid")]
    spans.sort(key=lambda e: (e["ts"], -e.get("dur", 0)))
    return top["args"]["Total Allocated"] / 2**20, [e["name"] for e in spans]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="flux", choices=("flux", "sd35-large", "tiny-flux", "tiny-sd3"))
    ap.add_argument("--size", type=int, default=64, help="latent side [64 = 512 px]")
    ap.add_argument("--steps", type=int, default=5, help="schedule steps (the P2P windows' base) [5]")
    ap.add_argument("--stop-after", type=int, default=1,
                    help="steps the --ab runs run [1: every window active]; >= --steps: the whole run")
    ap.add_argument("--self-blocks", default="auto")
    ap.add_argument("--structure", default="values_outside_edit",
                    choices=("values_outside_edit", "image_qk", "self_maps"), help="P2P Apply's mmdit_structure")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--top", type=int, default=14)
    ap.add_argument("--profile-steps", type=int, default=1, help="steps of the profiled runs [1]")
    ap.add_argument("--ab", type=int, default=0,
                    help="first: N interleaved unprofiled runs of plain and P2P (CPU time, min and median)")
    ap.add_argument("--no-profile", action="store_true", help="only the --ab runs")
    ap.add_argument("--memory", action="store_true",
                    help="also one memory-profiled run of each (peak live tensor bytes, and what runs at the peak)")
    a = ap.parse_args(argv)

    from p2p_models.comfy_bootstrap import bootstrap

    bootstrap(cpu=True)
    import torch
    import torch.profiler

    torch.set_num_threads(1)
    import bench_jobs
    import bench_models

    from p2p_attention import dit_runtime, joint_attention
    from p2p_attention.apply import apply_edit
    from p2p_attention.conditioning import latent_batch
    from p2p_attention.edits import make_plan

    built = bench_models.build(a.model, dtype=a.dtype)
    latent = latent_batch({"samples": torch.zeros(1, 16, a.size, a.size)}, 2)
    plan = make_plan(built["prompts"], None, "swap", bench_jobs.CROSS_REPLACE, bench_jobs.SELF_REPLACE)
    patched, _ = apply_edit(built["model"], plan, self_blocks=a.self_blocks, mmdit_structure=a.structure)
    cfg = built["cfg"]

    def run(model, lat=latent, on_step=None, stop_after=a.stop_after):
        sample(model, built["positive"], built["negative"], lat, sampler="euler", scheduler="normal", steps=a.steps,
               cfg=cfg, stop_after=stop_after, on_step=on_step)

    small = latent_batch({"samples": torch.zeros(1, 16, 8, 8)}, 2)
    for model in (built["model"], patched):  # warm-up (lazy imports, first-call costs) on a small latent
        run(model, small)

    if a.ab:
        import statistics

        cpu = {"plain": [], "p2p": []}
        per_step = {"plain": [], "p2p": []}
        for _ in range(a.ab):
            for label, model in (("plain", built["model"]), ("p2p", patched)):
                marks = [time.process_time()]
                run(model, on_step=lambda step, m=marks: m.append(time.process_time()),
                    stop_after=None if a.stop_after >= a.steps else a.stop_after)
                cpu[label].append(marks[-1] - marks[0])
                per_step[label].append([b - c for c, b in zip(marks, marks[1:])])
        print(f"{a.model}, mmdit_structure {a.structure}: A/B, {a.ab} interleaved runs of {min(a.stop_after, a.steps)} of {a.steps} steps, CPU s: "
              f"plain {[round(x, 2) for x in cpu['plain']]}, P2P {[round(x, 2) for x in cpu['p2p']]}")
        n = len(per_step["plain"][0])
        for i in range(n):
            pl = statistics.median(r[i] for r in per_step["plain"])
            pp = statistics.median(r[i] for r in per_step["p2p"])
            print(f"  step {i}: plain {pl:.2f} s, P2P {pp:.2f} s, x{pp / pl:.3f} (medians)")
        for what, f in (("min", min), ("median", statistics.median)):
            print(f"  {what}: plain {f(cpu['plain']):.2f}, P2P {f(cpu['p2p']):.2f}, "
                  f"x{f(cpu['p2p']) / f(cpu['plain']):.3f}", flush=True)
        if a.no_profile:
            return 0

    timer = PartTimer()
    timer.wrap(dit_runtime.DiTRuntime, "attend", "override (all of P2P's attention calls)")
    timer.wrap(dit_runtime.DiTRuntime, "_record", "store: _record")
    timer.wrap(dit_runtime.DiTRuntime, "_edit", "edit items: _edit")
    timer.wrap(joint_attention, "edit_rows_fast", "edit image rows: edit_rows_fast")
    timer.wrap(joint_attention, "_with_mass_channel", "mass channel: _with_mass_channel")

    results = {}
    for label, model in (("plain", built["model"]), ("p2p", patched)):
        c, t = time.process_time(), time.perf_counter()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            run(model, stop_after=a.profile_steps)
        results[label] = {"cpu_s": time.process_time() - c, "wall_s": time.perf_counter() - t,
                          "ops": _op_table(prof)}
        print(f"{label}: {results[label]['cpu_s']:.2f} s CPU, {results[label]['wall_s']:.2f} s wall "
              f"(profiler on)", flush=True)

    if a.memory:
        import tempfile

        peaks = {}
        for label, model in (("plain", built["model"]), ("p2p", patched)):
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
                run(model, stop_after=a.profile_steps)
            with tempfile.TemporaryDirectory() as tmp:
                peaks[label] = memory_peak(prof, str(Path(tmp) / "trace.json"))
        print("\n| run | peak live tensors MiB (allocator) | running at the peak |\n|---|---|---|")
        for label, (mib, stack) in peaks.items():
            print(f"| {label} | {mib:,.0f} | {' > '.join(stack[-8:])} |")
        print(f"P2P / plain peak live tensors: x{peaks['p2p'][0] / max(peaks['plain'][0], 1e-9):.3f}")

    plain, p2p = results["plain"]["ops"], results["p2p"]["ops"]
    diff = sorted(((p2p.get(k, (0, 0))[0] - plain.get(k, (0, 0))[0], k) for k in set(plain) | set(p2p)), reverse=True)
    total_extra = results["p2p"]["cpu_s"] - results["plain"]["cpu_s"]
    print(f"\n{a.model} {a.size}x{a.size} latent, first {a.profile_steps} of {a.steps} steps, {a.dtype}: "
          f"plain {results['plain']['cpu_s']:.2f} s CPU, P2P {results['p2p']['cpu_s']:.2f} s "
          f"(x{results['p2p']['cpu_s'] / results['plain']['cpu_s']:.3f}, +{total_extra:.2f} s)")
    print("\n| operator | plain self CPU s (calls) | P2P self CPU s (calls) | extra s |\n|---|---|---|---|")
    for d, k in diff[: a.top]:
        pc, pn = plain.get(k, (0, 0))
        qc, qn = p2p.get(k, (0, 0))
        print(f"| {k} | {pc:.3f} ({pn}) | {qc:.3f} ({qn}) | {d:+.3f} |")
    print("\n| P2P part (CPU s, profiler on, inclusive) | s | calls |\n|---|---|---|")
    for label in timer.cpu:
        print(f"| {label} | {timer.cpu[label]:.3f} | {timer.calls[label]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
