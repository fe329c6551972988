"""Smoke test of the benchmark script (`make bench`): `benchmarks/run.py --quick` on the tiny models.

Checks that every configuration ran in its own process and that the JSON has the rows and fields
the README table is read from. No timing or memory assertion: those are the benchmark's output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODES = {"plain", "p2p", "p2p_ref", "p2p_selfall", "p2p_selfall_ref"}
METHODS = {"ddim", "null_text", "negative_prompt", "direct"}
MACHINE = ("machine", "torch", "threads")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    log = (out / "worker.log").read_text() if (out / "worker.log").is_file() else ""
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{log[-3000:]}"
    return out, json.loads((out / "results.json").read_text()), proc.stdout


def test_every_configuration_ran_in_its_own_process(quick):
    _, res, _ = quick
    rows = res["rows"]
    assert rows and all(r["ok"] for r in rows), [r.get("error") for r in rows if not r.get("ok")]
    samples = [r for r in rows if r["kind"] == "sample"]
    assert {(r["model"], r["mode"]) for r in samples} == {(m, mode) for m in ("tiny-sd1", "tiny-sdxl") for mode in MODES}
    assert {r["model"] for r in rows} == {"tiny-sd1", "tiny-sdxl"}  # --quick: tiny models only
    for r in rows:
        for key in (*MACHINE, "median_s", "times_s", "cpu_median_s", "peak_mib", "activation_mib", "memory_method"):
            assert key in r, (key, r["kind"], r.get("mode"))
        assert len(r["times_s"]) == r["reps"] >= 1
        assert r["peak_mib"] > 0


def test_comparison_rows_and_fields(quick):
    _, res, _ = quick
    p2p = res["p2p_vs_plain"]
    assert {(r["model"], r["mode"]) for r in p2p} == {(m, v) for m in ("tiny-sd1", "tiny-sdxl")
                                                      for v in ("p2p", "p2p_selfall")}
    for r in p2p:
        for key in ("plain_s", "p2p_s", "time_ratio", "cpu_time_ratio", "peak_ratio", "activation_ratio",
                    "time_goal", "peak_goal", "steps", "batch", *MACHINE):
            assert key in r, key
        assert r["batch"] == 2 and r["time_ratio"] > 0 and r["peak_ratio"] > 0
    fvr = res["fast_vs_reference"]
    assert len(fvr) == 4
    for r in fvr:
        for key in ("fast_s", "reference_s", "fast_peak_mib", "reference_peak_mib", "activation_ratio", *MACHINE):
            assert key in r, key


def test_inversion_rows(quick):
    _, res, _ = quick
    inv = {r["method"]: r for r in res["inversion"]}
    assert set(inv) == METHODS
    for method, r in inv.items():
        for key in ("unet_evals", "plain_unet_evals", "evals_ratio", "inversion_s", "plain_s", "time_ratio", *MACHINE):
            assert key in r, (method, key)
        assert r["steps"] == r["plain_steps"]
    n = inv["ddim"]["schedule_steps"]
    assert inv["ddim"]["unet_evals"] == n  # one conditional evaluation per step
    assert inv["ddim"]["plain_unet_evals"] == 2 * n  # cond + uncond per step
    assert inv["null_text"]["unet_backwards"] > 0
    assert inv["null_text"]["unet_evals"] > inv["ddim"]["unet_evals"]
    for method in ("null_text", "negative_prompt", "direct"):
        assert "time_goal" in inv[method]


def test_markdown_and_goals(quick):
    out, res, stdout = quick
    md = (out / "results.md").read_text()
    assert "| model |" in md and "## Goals" in md
    assert md.strip() in stdout  # the table is printed too
    goals = {g["goal"] for g in res["goals"]}
    assert any(g.startswith("P2P wall time") for g in goals)
    assert any(g.startswith("null_text inversion") for g in goals)
    meta = res["meta"]
    assert meta["isolation"] in ("fork", "spawn") and meta["torch"] and meta["threads"] == 1
