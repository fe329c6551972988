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

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
MODES = {"plain", "p2p", "p2p_ref", "p2p_selfall", "p2p_selfall_ref"}
UNETS = ("tiny-sd1", "tiny-sdxl")
DITS = ("tiny-flux", "tiny-sd3")
# MM-DiT: the default structure (values_outside_edit, every block) and the two others, instead of "selfall"
DIT_MODES = {"plain", "p2p", "p2p_ref", "p2p_qk", "p2p_maps"}


def _expected_samples():
    return {(m, mode) for m in UNETS for mode in MODES} | {(m, mode) for m in DITS for mode in DIT_MODES}


def _ratio_of_rounded(r):
    """time_ratio was computed before the two CPU times were rounded to the millisecond (half a
    millisecond each way): check it against their ratio within what that rounding allows."""
    half = 5e-4
    plain, p2p = r["plain_cpu_s"], r["p2p_cpu_s"]
    lo, hi = max(p2p - half, 0.0) / (plain + half), (p2p + half) / max(plain - half, 1e-9)
    assert lo - half <= r["time_ratio"] <= hi + half, (r["time_ratio"], plain, p2p)


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
    assert {(r["model"], r["mode"]) for r in samples} == _expected_samples()
    assert {r["model"] for r in rows} == {*UNETS, *DITS}  # --quick: tiny models only
    for r in rows:
        for key in (*MACHINE, "median_s", "times_s", "cpu_median_s", "peak_mib", "activation_mib", "memory_method"):
            assert key in r, (key, r["kind"], r.get("mode"))
        assert len(r["times_s"]) == r["reps"] >= 1
        assert r["peak_mib"] > 0


def test_comparison_rows_and_fields(quick):
    _, res, _ = quick
    p2p = res["p2p_vs_plain"]
    assert {(r["model"], r["mode"]) for r in p2p} == ({(m, v) for m in UNETS for v in ("p2p", "p2p_selfall")}
                                                      | {(m, v) for m in DITS for v in ("p2p", "p2p_qk", "p2p_maps")})
    for r in p2p:
        for key in ("plain_s", "p2p_s", "time_ratio", "cpu_time_ratio", "peak_ratio", "activation_ratio",
                    "time_goal", "peak_goal", "steps", "batch", *MACHINE):
            assert key in r, key
        assert r["batch"] == 2 and r["time_ratio"] > 0 and r["peak_ratio"] > 0
    fvr = res["fast_vs_reference"]
    assert len(fvr) == 6  # UNets: p2p, p2p_selfall; MM-DiTs: p2p (qk / maps run no reference twin)
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


def test_dit_rows(quick):
    """The MM-DiT jobs: 16-channel latents, self injection named by block, the models' table."""
    _, res, _ = quick
    rows = [r for r in res["rows"] if r["model"] in DITS and r["kind"] == "sample"]
    for r in rows:
        assert r["arch"] == ("flux" if r["model"] == "tiny-flux" else "sd3")
        assert r["detected_as"] == ("Flux" if r["model"] == "tiny-flux" else "SD3")
        assert r["cfg"] == (1.0 if r["model"] == "tiny-flux" else 4.5)
        if r["mode"] != "plain":
            assert r["store"] and r["self_blocks"] == "auto"
    flux = {r["mode"]: r for r in rows if r["model"] == "tiny-flux"}
    assert flux["p2p"]["structure"] == "values_outside_edit"
    assert flux["p2p"]["self_blocks_used"] == flux["p2p_qk"]["self_blocks_used"] == "double 0-1, single 0-1"
    assert flux["p2p_maps"]["self_blocks_used"] == "single 1"  # the later single blocks (20/38 of 2 -> 1)
    variants = {r["variant"] for r in res["p2p_vs_plain"] if r["model"] in DITS}
    assert all("self injection at" in v and "(" in v for v in variants)
    assert {d["model"] for d in res["dit_models"]} == set(DITS)
    goals = [g for g in res["goals"] if g["goal"].startswith("fast / reference") and g["model"] in DITS]
    assert {g["model"] for g in goals} == set(DITS)  # the DiTs' largest latent, apart from the UNets'


def test_dit_plan_lists_the_full_width_jobs():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--dit", "--list"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # 4 at 512 px (plain and the three MM-DiT structures), then the first-step probes at 1024 px (5, SD3.5 3)
    assert sum(line.startswith("flux ") for line in lines) == 9
    assert sum(line.startswith("sd35-large ") for line in lines) == 7
    assert not any(" invert " in line for line in lines)


@pytest.mark.parametrize("name,blocks,want", [
    ("flux", (2, 4), ("Flux", 3072, 24, 1.31)),
    ("flux", (19, 38), ("Flux", 3072, 24, 11.90)),  # Flux.1 dev / schnell
    ("sd35-large", (4,), ("SD3", 2432, 38, 0.81)),
    ("sd35-large", (38,), ("SD3", 2432, 38, 8.06)),  # SD3.5 Large
])
def test_full_width_configs(name, blocks, want):
    """The benchmark's unet_configs, built on the meta device (no memory): ComfyUI's detection maps
    them to Flux / SD3, the width and heads are the real models', and at full depth the parameter
    counts are Flux.1's 11.9 G and SD3.5 Large's 8.06 G (44 / 30 GiB in float32: why fewer blocks)."""
    import bench_models
    import comfy.model_detection
    import comfy.ops
    import torch

    cls, hidden, heads, params_g = want
    if name == "flux":
        from comfy.ldm.flux.model import Flux

        cfg = bench_models.flux_width_config(*blocks)
        dm = Flux(**{k: v for k, v in cfg.items() if k != "image_model"}, device="meta", dtype=torch.float32,
                  operations=comfy.ops.disable_weight_init)
        assert (len(dm.double_blocks), len(dm.single_blocks)) == blocks
        assert dm.hidden_size // dm.num_heads == 128 == sum(cfg["axes_dim"])
    else:
        from comfy.ldm.modules.diffusionmodules.mmdit import MMDiT

        cfg = bench_models.sd35_large_width_config(*blocks)
        dm = MMDiT(**cfg, device="meta", dtype=torch.float32, operations=comfy.ops.disable_weight_init)
        assert len(dm.joint_blocks) == blocks[0]
    assert type(comfy.model_detection.model_config_from_unet_config(dict(cfg))).__name__ == cls
    assert (dm.hidden_size, dm.num_heads) == (hidden, heads)
    assert round(sum(p.numel() for p in dm.parameters()) / 1e9, 2) == params_g


def test_edit_count_benchmark_rows(tmp_path):
    """benchmarks/bench_edits.py at tiny sizes: a row per model and edit count, plain and P2P on the same
    1 + N batch, with their ratios."""
    out = tmp_path / "edits.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_edits.py"), "--models", "tiny-sd1,tiny-flux",
                           "--ns", "1,2", "--steps", "2", "--reps", "1", "--out", str(out)], cwd=REPO,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["edits"], r["items"]) for r in rows] == [
        ("tiny-sd1", 1, 2), ("tiny-sd1", 2, 3), ("tiny-flux", 1, 2), ("tiny-flux", 2, 3)]
    for r in rows:
        assert r["plain_cpu_s"] > 0 and r["p2p_cpu_s"] > 0 and r["plain_mib"] > 0
        _ratio_of_rounded(r)
    assert "| tiny-flux (flux) | 2 | 3 |" in proc.stdout


@pytest.mark.parametrize("name,blocks,want", [
    ("flux2-klein", (5, 20), ("Flux2", 3.88)),  # Flux.2 klein 4B
    ("zimage", (30, 2), ("ZImage", 6.15)),  # Z-Image (6B)
    ("qwen-image", (60,), ("QwenImage", 20.43)),  # Qwen-Image (20B)
    ("chroma", (19, 38), ("Chroma", 8.90)),  # Chroma (8.9B)
    ("flux2-dev", (8, 48), ("Flux2", 32.22)),  # Flux.2 dev (32B)
    ("lumina2", (26, 2), ("Lumina2", 2.61)),  # Lumina-Image 2.0 (2.6B)
])
def test_family_full_width_configs(name, blocks, want):
    """bench_families' full-width configs at full depth, built on the meta device: ComfyUI's detection
    maps them to the family's config class and the parameter counts are the released models'."""
    import bench_models
    import comfy.model_detection
    import comfy.supported_models as sm
    import torch

    cls, params_g = want
    cfg = bench_models.family_width_config(name, blocks)
    assert type(comfy.model_detection.model_config_from_unet_config(dict(cfg))).__name__ == cls
    dm = getattr(sm, cls)({**cfg, "dtype": torch.float32}).get_model({}, "", device=torch.device("meta")).diffusion_model
    assert round(sum(p.numel() for p in dm.parameters()) / 1e9, 2) == params_g


def test_family_benchmark_rows(tmp_path):
    """benchmarks/bench_families.py --tiny: a row per family (Flux.1, SD3.5, Flux.2 klein, Z-Image,
    Qwen-Image, Chroma, Flux.2 dev, Lumina 2), plain and P2P on the same 2-item batch, their ratios and goal verdicts, and the table.
    Flux.2 klein's row is skipped (with the reason) on a ComfyUI without its text encoder (0.3.75)."""
    from p2p_models.tiny_flux2 import klein_available

    out = tmp_path / "families.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_families.py"), "--tiny", "--steps", "2",
                           "--reps", "1", "--out", str(out)], cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["tiny-flux", "tiny-sd3", "tiny-flux2", "tiny-zimage", "tiny-qwen",
                                        "tiny-chroma", "tiny-flux2-dev", "tiny-lumina2"]
    for r in rows:
        if r["model"] == "tiny-flux2" and not klein_available():
            assert "klein" in r["skipped"]
            continue
        assert r["items"] == 2 and r["plain_cpu_s"] > 0 and r["p2p_cpu_s"] > 0 and r["plain_mib"] > 0
        _ratio_of_rounded(r)
        assert r["time_met"] == (r["time_ratio"] <= 1.10) and "memory_met" in r
        assert f"| {r['family']} | {r['model']} (tiny test model) |" in proc.stdout


def test_family_benchmark_refine_rows(tmp_path):
    """bench_families.py --edit refine: the edit adds two words, so the families that keep each prompt's own
    length mask the shorter one's padding (Chroma after its words, Lumina 2 before them); Flux.1 pads T5 to
    one length and masks nothing. The row and the table say so."""
    out = tmp_path / "refine.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_families.py"), "--tiny", "--steps", "2",
                           "--reps", "1", "--edit", "refine", "--families", "tiny-flux,tiny-chroma,tiny-lumina2",
                           "--out", str(out)], cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {r["model"]: r for r in json.loads(out.read_text())["rows"]}
    assert {m: (r["edit"], r["masked_tokens"] > 0) for m, r in rows.items()} == {
        "tiny-flux": ("refine", False), "tiny-chroma": ("refine", True), "tiny-lumina2": ("refine", True)}
    for r in rows.values():
        _ratio_of_rounded(r)
        assert f"| {r['model']} (tiny test model; refine, {r['masked_tokens']} tokens masked) |" in proc.stdout
