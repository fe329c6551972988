"""Turn the per-configuration rows into comparisons, goal verdicts, JSON and markdown."""

from __future__ import annotations

import datetime

GOALS = {
    "p2p_time": 1.10,  # P2P wall time / plain, same batch, sampler and steps
    "p2p_peak": 1.15,  # P2P peak memory / plain
    "fast_vs_ref": 0.80,  # "clearly below": fast activation memory <= 0.8 x reference, at the largest latent
    "null_text": 8.0,  # inversion time / plain 50-step sampling of one image
    "negative_prompt": 1.3,
    "direct": 1.3,
}
MACHINE_KEYS = ("machine", "cpu", "gpu", "torch", "threads", "comfyui")
SELF_VARIANT = {"p2p": "self injection at <=1/4 res (default)", "p2p_selfall": "self injection at every layer",
                "p2p_qk": "MM-DiT structure image_qk", "p2p_maps": "MM-DiT structure self_maps"}


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def _machine(row: dict) -> dict:
    return {k: row.get(k) for k in MACHINE_KEYS}


def _index(rows, kind):
    out = {}
    for r in rows:
        if r.get("ok") and r.get("kind") == kind:
            key = (r["model"], r["size"], r.get("mode") or r.get("method") or kind)
            if kind == "sample":
                key += (r.get("stop_after") or 0,)
            out[key] = r
    return out


def _variant(r):
    """The row's own description (MM-DiT rows name their self-injection blocks), else the UNet one."""
    return r.get("variant") or SELF_VARIANT[r["mode"]]


def _family(r):
    return "dit" if r.get("latent_channels", 4) == 16 or r.get("arch") in ("flux", "sd3") else "unet"


def _model_table(rows) -> list[dict]:
    """One line per MM-DiT model: what was built (blocks, width, parameters, conditioning)."""
    out = {}
    for r in rows:
        if r.get("ok") and r.get("hidden_size") and r["model"] not in out:
            out[r["model"]] = {k: r.get(k) for k in ("model", "arch", "detected_as", "blocks", "hidden_size", "heads",
                                                     "unet_params_M", "context_dim", "text_tokens", "dtype",
                                                     "conditioning", "comfyui")}
    return list(out.values())


def _run_label(r):
    return f"first {r['stop_after']} of {r['steps']} steps" if r.get("stop_after") else f"{r['steps']} steps"


def _verdict(value, target, lower_is_better=True):
    if value is None:
        return {"met": None, "text": "n/a"}
    met = value <= target if lower_is_better else value >= target
    if met:
        return {"met": True, "text": "met"}
    by = 100 * (value / target - 1)
    return {"met": False, "text": f"MISSED by {by:.0f}%" if by >= 1 else f"MISSED by {by:.1f}%"}


def build_results(rows: list[dict], args: dict, total_s: float, isolation: str) -> dict:
    samples = _index(rows, "sample")
    plains1 = _index(rows, "plain1")
    inverts = _index(rows, "invert")
    ok_rows = [r for r in rows if r.get("ok")]
    first = ok_rows[0] if ok_rows else {}

    p2p = []
    fvr = []
    for (model, size, mode, probe), r in samples.items():
        plain = samples.get((model, size, "plain", probe))
        if mode in SELF_VARIANT and plain:
            t = _ratio(r["median_s"], plain["median_s"])
            tc = _ratio(r.get("cpu_median_s"), plain.get("cpu_median_s"))
            m = _ratio(r["peak_mib"], plain["peak_mib"])
            act = _ratio(r["activation_mib"], plain["activation_mib"])
            p2p.append({
                "model": model, "latent": size, "pixels": size * 8, "variant": _variant(r), "mode": mode,
                "steps": r["steps"], "stop_after": r.get("stop_after"), "run": _run_label(r), "cfg": r["cfg"], "sampler": f"{r['sampler']}/{r['scheduler']}",
                "batch": r["batch"], "reps": r["reps"],
                "plain_s": plain["median_s"], "p2p_s": r["median_s"], "time_ratio": t,
                "plain_cpu_s": plain.get("cpu_median_s"), "p2p_cpu_s": r.get("cpu_median_s"), "cpu_time_ratio": tc,
                "plain_peak_mib": plain["peak_mib"], "p2p_peak_mib": r["peak_mib"], "peak_ratio": m,
                "plain_activation_mib": plain["activation_mib"], "p2p_activation_mib": r["activation_mib"],
                "activation_ratio": act,
                "time_goal": _verdict(t, GOALS["p2p_time"]), "cpu_time_goal": _verdict(tc, GOALS["p2p_time"]),
                "peak_goal": _verdict(m, GOALS["p2p_peak"]),
                "activation_goal": _verdict(act, GOALS["p2p_peak"]),
                **_machine(r),
            })
        ref = samples.get((model, size, f"{mode}_ref", probe))
        if mode in SELF_VARIANT and ref:
            fvr.append({
                "model": model, "latent": size, "pixels": size * 8, "variant": _variant(r), "mode": mode,
                "family": _family(r),
                "steps": r["steps"], "stop_after": r.get("stop_after"), "run": _run_label(r), "fast_s": r["median_s"], "reference_s": ref["median_s"],
                "time_ratio": _ratio(r["median_s"], ref["median_s"]),
                "cpu_time_ratio": _ratio(r.get("cpu_median_s"), ref.get("cpu_median_s")),
                "fast_peak_mib": r["peak_mib"], "reference_peak_mib": ref["peak_mib"],
                "peak_ratio": _ratio(r["peak_mib"], ref["peak_mib"]),
                "fast_activation_mib": r["activation_mib"], "reference_activation_mib": ref["activation_mib"],
                "activation_ratio": _ratio(r["activation_mib"], ref["activation_mib"]),
                **_machine(r),
            })
    p2p.sort(key=lambda x: (x["model"], bool(x["stop_after"]), x["latent"], x["mode"]))
    fvr.sort(key=lambda x: (x["model"], bool(x["stop_after"]), x["latent"], x["mode"]))

    inv = []
    for (model, size, method), r in inverts.items():
        base = plains1.get((model, size, "plain1"))
        row = {
            "model": model, "latent": size, "pixels": size * 8, "method": method, "steps": r["steps"],
            "schedule_steps": r.get("schedule_steps"), "guidance": r["cfg"], "reps": r["reps"],
            "unet_evals": r["unet_evals"], "unet_backwards": r.get("unet_backwards", 0),
            "inversion_s": r["median_s"], "inversion_cpu_s": r.get("cpu_median_s"), "peak_mib": r["peak_mib"], "activation_mib": r["activation_mib"],
            **_machine(r),
        }
        for k in ("inner_iterations_used_total", "inner_iterations_used_min", "inner_iterations_used_max",
                  "nan_steps", "inner_iterations"):
            if k in r:
                row[k] = r[k]
        if base:
            row.update({
                "plain_steps": base["steps"], "plain_unet_evals": base["unet_evals"], "plain_s": base["median_s"],
                "plain_peak_mib": base["peak_mib"],
                "evals_ratio": _ratio(r["unet_evals"], base["unet_evals"]),
                "time_ratio": _ratio(r["median_s"], base["median_s"]),
                "plain_cpu_s": base.get("cpu_median_s"),
                "cpu_time_ratio": _ratio(r.get("cpu_median_s"), base.get("cpu_median_s")),
            })
        if method in GOALS:
            row["goal"] = GOALS[method]
            row["time_goal"] = _verdict(row.get("time_ratio"), GOALS[method])
        inv.append(row)
    for r in inv:  # null-text decomposed: the DDIM inversion it starts with, then its inner iterations
        ddim = next((d for d in inv if d["method"] == "ddim" and d["model"] == r["model"]
                     and d["latent"] == r["latent"] and d["steps"] == r["steps"]), None)
        its = r.get("inner_iterations_used_total")
        if r["method"] == "null_text" and ddim and its and r.get("plain_s"):
            per_it = (r["inversion_s"] - ddim["inversion_s"]) / its
            r["seconds_per_inner_iteration"] = round(per_it, 5)
            r["inner_iteration_x_plain_step"] = round(per_it / (r["plain_s"] / r["plain_steps"]), 3)
            # Derived, not measured: the mean inner iterations per step that would still meet the goal.
            budget = GOALS["null_text"] * r["plain_s"] - ddim["inversion_s"]
            r["mean_iterations_within_goal"] = round(budget / (per_it * r["steps"]), 2) if per_it > 0 else None
    order = {m: i for i, m in enumerate(("ddim", "null_text", "negative_prompt", "direct"))}
    inv.sort(key=lambda x: (x["model"], x["latent"], order.get(x["method"], 9)))

    goals = _goals(p2p, fvr, inv)
    return {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            **_machine(first), "device": first.get("device"), "cpu_count": first.get("cpu_count"),
            "omp_num_threads": first.get("omp_num_threads"), "python": first.get("python"),
            "memory_method": first.get("memory_method"), "isolation": isolation, "total_s": round(total_s, 1),
            "cond_batching": next((r["cond_batching"] for r in ok_rows if r.get("cond_batching")), None),
            "jobs_cpu_s": round(sum(r.get("job_cpu_s") or 0 for r in rows), 1),
            "jobs_wall_s": round(sum(r.get("job_wall_s") or 0 for r in rows), 1),
            "load_avg_1m": [r.get("load_avg_1m") for r in ok_rows],
            "args": args, "failed": [{k: r.get(k) for k in ("model", "kind", "mode", "method", "size", "error")}
                                     for r in rows if not r.get("ok")],
        },
        "goals": goals,
        "dit_models": _model_table(rows),
        "p2p_vs_plain": p2p,
        "fast_vs_reference": fvr,
        "inversion": inv,
        "rows": rows,
    }


def _goals(p2p, fvr, inv) -> list[dict]:
    goals = []
    default = [r for r in p2p if r["mode"] == "p2p"]
    for key, field, what in (("p2p_time", "time_ratio", "P2P wall time / plain"),
                             ("p2p_time", "cpu_time_ratio", "P2P CPU time / plain (robust to other load)"),
                             ("p2p_peak", "peak_ratio", "P2P peak memory / plain"),
                             ("p2p_peak", "activation_ratio", "P2P activation memory / plain (peak minus weights)")):
        for r in default:
            if key == "p2p_time" and r["stop_after"]:
                continue  # a memory probe's first step is P2P's most expensive one, not a run
            goals.append({"goal": what, "target": f"<= {GOALS[key]:.2f}", "model": r["model"], "latent": r["latent"],
                          "run": r["run"], "value": r[field], **_verdict(r[field], GOALS[key])})
    # "at the largest latent measured": every model measured there, UNets and MM-DiTs apart (their
    # latents are not the same images: a DiT's 2x2 patches hold 4x the pixels of a UNet token).
    for family in ("unet", "dit"):
        rows = [r for r in fvr if r.get("family", "unet") == family]
        largest = max((r["latent"] for r in rows), default=None)
        for r in rows:
            if r["latent"] == largest:
                goals.append({"goal": f"fast / reference activation memory, largest latent ({r['variant']})",
                              "target": f"<= {GOALS['fast_vs_ref']:.2f}", "model": r["model"], "latent": largest,
                              "run": r["run"], "value": r["activation_ratio"],
                              **_verdict(r["activation_ratio"], GOALS["fast_vs_ref"])})
    for r in inv:
        if "goal" in r:
            goals.append({"goal": f"{r['method']} inversion time / plain {r['plain_steps']}-step sampling",
                          "target": f"<= {r['goal']:.2f}", "model": r["model"], "latent": r["latent"],
                          "run": f"{r['steps']} steps", "value": r.get("time_ratio"), **r["time_goal"]})
    return goals


def _load_range(values):
    values = [v for v in values or [] if v is not None]
    return f"{min(values):.1f}-{max(values):.1f}" if values else "n/a"


def _f(x, nd=2):
    return "n/a" if x is None else f"{x:.{nd}f}"


def _mib(x):
    return "n/a" if x is None else f"{x:,.0f}"


def markdown(res: dict) -> str:
    m = res["meta"]
    lines = [
        "# Prompt-to-Prompt benchmark",
        "",
        f"Machine: **{m.get('machine')}** ({m.get('device')}, {m.get('cpu_count')} logical CPUs), torch {m.get('torch')}, "
        f"{m.get('threads')} thread(s) (OMP_NUM_THREADS={m.get('omp_num_threads')}), ComfyUI {m.get('comfyui')}, "
        f"Python {m.get('python')}, pack at {m.get('git') or 'n/a'}. {m.get('date')}. Total {m.get('total_s')} s wall; the configurations' own "
        f"processes used {m.get('jobs_cpu_s')} s CPU in {m.get('jobs_wall_s')} s wall (1-min load average during "
        f"the run: {_load_range(m.get('load_avg_1m'))}).",
        f"Each configuration in a fresh process ({m.get('isolation')}); times are medians of the repetitions; "
        f"memory: {m.get('memory_method')}. 'act.' = peak minus the memory just before the first run "
        "(weights, imports and conditioning excluded)."
        + (f" With cfg: {m['cond_batching']}." if m.get("cond_batching") else ""),
        "",
    ]
    if res.get("dit_models"):
        lines += [
            "## MM-DiT models (random weights)",
            "",
            "| model | detected as | blocks | hidden | heads | params (M) | context | text tokens | dtype |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for d in res["dit_models"]:
            lines.append(f"| {d['model']} | {d['detected_as']} | {d.get('blocks') or 'tiny (p2p_models.tiny_dit)'} | "
                         f"{d['hidden_size']} | {d['heads']} | {_f(d['unet_params_M'], 1)} | {d['context_dim']} | "
                         f"{d['text_tokens']} | {d.get('dtype') or 'float32'} |")
        lines.append("")
    if res["p2p_vs_plain"]:
        lines += [
            "## P2P (word swap + self injection, attention store on) vs plain sampling, batch [source + 1 edit]",
            "",
            "| model | latent (px) | variant | run | reps | plain s | P2P s | time x (<= 1.10) | CPU-time x | "
            "plain peak MiB | P2P peak MiB | peak x (<= 1.15) | plain act. MiB | P2P act. MiB | act. x |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res["p2p_vs_plain"]:
            lines.append(
                f"| {r['model']} | {r['latent']}² ({r['pixels']}) | {r['variant']} | {r['run']} | {r['reps']} | "
                f"{_f(r['plain_s'], 3)} | {_f(r['p2p_s'], 3)} | **{_f(r['time_ratio'], 3)}** | "
                f"{_f(r['cpu_time_ratio'], 3)} | {_mib(r['plain_peak_mib'])} | "
                f"{_mib(r['p2p_peak_mib'])} | **{_f(r['peak_ratio'], 3)}** | {_mib(r['plain_activation_mib'])} | "
                f"{_mib(r['p2p_activation_mib'])} | {_f(r['activation_ratio'], 2)} |"
            )
        lines.append("")
    if res["fast_vs_reference"]:
        lines += [
            "## Fast path (memory-efficient attention) vs reference path (materialised maps)",
            "",
            "| model | latent (px) | variant | run | fast s | reference s | time fast/ref | CPU-time fast/ref | fast peak MiB | "
            "ref peak MiB | peak fast/ref | fast act. MiB | ref act. MiB | act. fast/ref |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res["fast_vs_reference"]:
            lines.append(
                f"| {r['model']} | {r['latent']}² ({r['pixels']}) | {r['variant']} | {r['run']} | {_f(r['fast_s'], 3)} | "
                f"{_f(r['reference_s'], 3)} | {_f(r['time_ratio'], 3)} | {_f(r['cpu_time_ratio'], 3)} | "
                f"{_mib(r['fast_peak_mib'])} | "
                f"{_mib(r['reference_peak_mib'])} | {_f(r['peak_ratio'], 3)} | {_mib(r['fast_activation_mib'])} | "
                f"{_mib(r['reference_activation_mib'])} | **{_f(r['activation_ratio'], 2)}** |"
            )
        lines.append("")
    if res["inversion"]:
        lines += [
            "## Inversion cost vs plain sampling of one image (ddim / ddim_uniform, same steps, same guidance)",
            "",
            "| model | latent (px) | method | steps | reps | UNet evals | backwards | evals x plain | inversion s | "
            "plain s | time x plain | CPU-time x | goal (wall) | null-text inner its (total, min-max) | peak MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res["inversion"]:
            goal = f"<= {r['goal']:g}: {r['time_goal']['text']}" if "goal" in r else "-"
            its = "-"
            if "inner_iterations_used_total" in r:
                its = (f"{r['inner_iterations_used_total']} ({r['inner_iterations_used_min']}-"
                       f"{r['inner_iterations_used_max']})")
            lines.append(
                f"| {r['model']} | {r['latent']}² ({r['pixels']}) | {r['method']} | {r['steps']} | {r['reps']} | "
                f"{r['unet_evals']} | {r['unet_backwards']} | {_f(r.get('evals_ratio'))} | {_f(r['inversion_s'], 3)} | "
                f"{_f(r.get('plain_s'), 3)} | **{_f(r.get('time_ratio'))}** | {_f(r.get('cpu_time_ratio'))} | {goal} | "
                f"{its} | {_mib(r['peak_mib'])} |"
            )
        for r in res["inversion"]:
            if "seconds_per_inner_iteration" in r:
                lines.append("")
                lines.append(
                    f"{r['model']} {r['latent']}²: one null-text inner iteration (uncond forward + backward + Adam) "
                    f"costs {r['inner_iteration_x_plain_step']:.2f} plain CFG steps; with the DDIM inversion "
                    f"measured above, the {GOALS['null_text']:g}x goal allows on average "
                    f"{_f(r['mean_iterations_within_goal'])} inner iterations per step (derived); the measured run used "
                    f"{r['inner_iterations_used_total'] / r['steps']:.2f} on average"
                    + (" (the early-stop loss was never reached: the full limit at every step)."
                       if r["inner_iterations_used_min"] == r.get("inner_iterations") else ".")
                )
        lines.append("")
    if res["goals"]:
        lines += ["## Goals", "", "| goal | model | latent | run | value | target | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for g in res["goals"]:
            lines.append(f"| {g['goal']} | {g['model']} | {g['latent']}² | {g.get('run', '')} | {_f(g['value'], 3)} | "
                         f"{g['target']} | {g['text']} |")
        lines.append("")
    if m.get("failed"):
        lines += ["## Failed configurations", ""]
        for f in m["failed"]:
            lines.append(f"- {f}")
        lines.append("")
    return "\n".join(lines)
