"""Real-image inversion (DDIM, null-text, negative-prompt, direct) on the tiny models.

Reconstruction goes through ComfyUI's own sampling (comfy.sample.sample, what KSampler /
KSamplerAdvanced call) with noise disabled and the inversion's sampler/scheduler/steps, on the
P2P Apply path: a Prompt Pair with the source prompt twice (an identity edit) and
install_inversion on the patched clone.

The tiny models are untrained, so the "image" is a fixed random latent of the scale of a
VAE-encoded SD latent (unit variance after the model's 0.18215 scaling). PSNR is latent PSNR:
10 log10(peak^2 / MSE) with the source latent's absolute maximum as peak.
"""

import logging
import math

import pytest
import torch
from bounds import fp_bound, last_step_bound
from sampling import encode, sample

from p2p_attention.apply import apply_edit
from p2p_attention.conditioning import encode_prompt_set, latent_batch
from p2p_attention.edits import make_plan
from p2p_attention.errors import P2PError
from p2p_attention.inversion import UncondContextPatch, install_inversion, invert

SRC = "a red cat sitting on a wooden chair"
NEG = ""
GUIDANCE = 7.5
STEPS = 20


def psnr(x, ref):
    mse = float(((x.float() - ref.float()) ** 2).mean())
    peak = float(ref.abs().max())
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def direct_bound(src):
    """Direct inversion forces the source's last step onto the stored trajectory (in float32), so
    only that step's rounding remains: errors of earlier steps are corrected, not accumulated."""
    return last_step_bound(src["samples"])


def source_latent(seed=0, h=8, w=8):
    gen = torch.Generator().manual_seed(seed)
    return {"samples": torch.randn(1, 4, h, w, generator=gen) / 0.18215}


def _invert(model, pos, neg, lat, method, steps=STEPS, **kw):
    with torch.inference_mode():  # as ComfyUI runs a node
        return invert(model, pos, neg, lat, method=method, steps=steps, guidance=kw.pop("guidance", GUIDANCE), **kw)


def reconstruct(model, clip, inv, neg, cfg=GUIDANCE, edit=True, **kw):
    """Sample [source, identical edit] from the inverted latent on the P2P Apply path."""
    cond, prompts = encode_prompt_set(clip, SRC, [SRC])
    if edit:  # as P2P Apply wires it
        plan = make_plan(prompts, None, "refine", "0.8", "0.4")
        patched, _ = apply_edit(model, plan, self_attn_min_downsample=1, inversion=inv)
    else:
        patched = install_inversion(model.clone(), inv, n_items=2)
    lat = latent_batch({"samples": inv.latent}, 2)
    args = dict(sampler=inv.sampler, scheduler=inv.scheduler, steps=inv.steps, cfg=cfg, disable_noise=True)
    args.update(kw)
    return sample(patched, cond, neg, lat, **args)


@pytest.fixture(scope="module")
def sd1_inversions(tiny_sd1):
    model, clip, _ = tiny_sd1
    pos, neg = encode(clip, SRC), encode(clip, NEG)
    src = source_latent()
    results = {}
    for method in ("ddim", "negative_prompt", "direct", "null_text", "fixed_point"):
        inv = _invert(model, pos, neg, src, method)
        out = reconstruct(model, clip, inv, neg)
        results[method] = (inv, out)
    print(f"\nsd1, {STEPS} steps, guidance {GUIDANCE}, negative {NEG!r}, 8x8 latent (item 0 = source, 1 = identity edit):")
    for method, (inv, out) in results.items():
        print(
            f"  {method:16s} PSNR source {psnr(out[0:1], src['samples']):7.2f} dB, edit item "
            f"{psnr(out[1:2], src['samples']):7.2f} dB, max abs diff {float((out[0:1] - src['samples']).abs().max()):.2e}"
            f" | {inv.unet_evals} UNet evals, {inv.unet_backwards} backward, {inv.seconds:.1f} s"
        )
    return src, results


def test_direct_inversion_reproduces_source(sd1_inversions):
    src, results = sd1_inversions
    inv, out = results["direct"]
    diff = float((out[0:1] - src["samples"]).abs().max())
    print(f"direct: max abs diff {diff:.2e} (bound {direct_bound(src):.2e})")
    assert diff <= direct_bound(src)
    assert inv.unet_evals == STEPS  # one conditional evaluation per step


def test_null_text_beats_ddim_by_10db(sd1_inversions):
    src, results = sd1_inversions
    p_ddim = psnr(results["ddim"][1][0:1], src["samples"])
    inv, out = results["null_text"]
    p_null = psnr(out[0:1], src["samples"])
    assert p_null >= p_ddim + 10.0, (p_null, p_ddim)
    # The identity edit gets the same null embeddings: it reconstructs as well.
    assert psnr(out[1:2], src["samples"]) >= p_ddim + 10.0
    assert len(inv.null_embeddings) == inv.n_steps
    assert all(e.dtype == torch.float32 and e.device.type == "cpu" for e in inv.null_embeddings)
    # Counted UNet evaluations: inversion (1/step) + per step 1 cond + 1 per inner iteration
    # + 1 final uncond unless the step stopped early.
    # Counted UNet evaluations: inversion 1/step, then per step 1 cond pass, 1 per inner
    # iteration (with a backward pass) and 1 with the final embedding (the official loop).
    used = sum(inv.inner_iterations_used)
    assert inv.unet_evals == inv.n_steps * 3 + used
    assert inv.unet_backwards == used
    # Early stop (official thresholds) keeps it under the steps x inner_iterations worst case.
    assert inv.unet_evals < inv.n_steps * inv.inner_iterations
    assert inv.unet_backwards == sum(inv.inner_iterations_used)


def test_fixed_point_beats_ddim_on_a_unet(sd1_inversions):
    """The fixed-point solve of each guided DDIM step (inner_iterations 10 at most) on the v-prediction
    tiny SD1: the sampler at the inversion's cfg retraces its trajectory far closer than DDIM's."""
    src, results = sd1_inversions
    p_ddim = psnr(results["ddim"][1][0:1], src["samples"])
    inv, out = results["fixed_point"]
    p_fix = psnr(out[0:1], src["samples"])
    print(f"fixed_point: {p_fix:.2f} dB vs ddim {p_ddim:.2f} dB, {inv.unet_evals} UNet evals")
    assert p_fix > p_ddim + 10.0, (p_fix, p_ddim)
    assert inv.unet_evals <= 2 * STEPS * 10  # cond + uncond per iteration, 10 iterations at most


def test_negative_prompt_beats_ddim(sd1_inversions):
    src, results = sd1_inversions
    p_ddim = psnr(results["ddim"][1][0:1], src["samples"])
    p_neg = psnr(results["negative_prompt"][1][0:1], src["samples"])
    assert p_neg > p_ddim + 3.0, (p_neg, p_ddim)


def test_unet_evals_reported(sd1_inversions):
    _, results = sd1_inversions
    for method, (inv, _) in results.items():
        assert inv.unet_evals > 0 and method in inv.summary()
    assert results["ddim"][0].unet_evals == results["negative_prompt"][0].unet_evals == STEPS


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_direct_and_negative_prompt_both_archs(arch, tiny_sd1, tiny_sdxl):
    model, clip, _ = tiny_sd1 if arch == "sd1" else tiny_sdxl
    pos, neg = encode(clip, SRC), encode(clip, "")
    src = source_latent(seed=1)
    psnrs = {}
    for method in ("ddim", "negative_prompt", "direct"):
        inv = _invert(model, pos, neg, src, method, steps=8)
        out = reconstruct(model, clip, inv, neg)
        psnrs[method] = psnr(out[0:1], src["samples"])
        if method == "direct":
            diff = float((out[0:1] - src["samples"]).abs().max())
            assert diff <= direct_bound(src), diff
    print(f"\n{arch} 8 steps: " + ", ".join(f"{m} {p:.2f} dB" for m, p in psnrs.items()))
    assert psnrs["negative_prompt"] > psnrs["ddim"]


@pytest.fixture(scope="module")
def tiny_eps():
    from p2p_models.tiny_unet import ModelSpec, build_all

    return build_all(ModelSpec.tiny("sd1"), seed=0)


@pytest.mark.parametrize("kind", ["v_prediction", "eps"])
def test_model_sampling_kinds(kind, tiny_sd1, tiny_eps):
    """The conftest models are v-prediction; an eps-prediction build checks the other kind."""
    import comfy.model_sampling

    model, clip, _ = tiny_sd1 if kind == "v_prediction" else tiny_eps
    sampling = model.get_model_object("model_sampling")
    assert isinstance(sampling, comfy.model_sampling.V_PREDICTION) == (kind == "v_prediction")
    pos, neg = encode(clip, SRC), encode(clip, "")
    src = source_latent(seed=2)
    inv = _invert(model, pos, neg, src, "ddim", steps=10, guidance=1.0)
    # Guidance 1: sampling retraces the DDIM inversion up to its one-step approximation.
    p_round = psnr(reconstruct(model, clip, inv, neg, cfg=1.0, edit=False)[0:1], src["samples"])
    p_ddim = psnr(reconstruct(model, clip, inv, neg)[0:1], src["samples"])
    inv_neg = _invert(model, pos, neg, src, "negative_prompt", steps=10)
    p_neg = psnr(reconstruct(model, clip, inv_neg, neg)[0:1], src["samples"])
    inv_dir = _invert(model, pos, neg, src, "direct", steps=10)
    out = reconstruct(model, clip, inv_dir, neg)
    diff = float((out[0:1] - src["samples"]).abs().max())
    print(f"\n{kind} 10 steps: DDIM round trip at cfg 1 {p_round:.2f} dB, ddim@7.5 {p_ddim:.2f} dB, "
          f"negative_prompt {p_neg:.2f} dB, direct max abs diff {diff:.2e}")
    assert p_round > 20.0
    assert p_neg > p_ddim
    assert diff <= direct_bound(src)


class _Interrupted(Exception):
    pass


def _snapshot(patcher):
    import copy

    return (
        repr(copy.copy(patcher.model_options.get("transformer_options", {}))),
        {k: dict(v) for k, v in patcher.wrappers.items()},
        dict(patcher.weight_wrapper_patches),
        dict(patcher.object_patches),
        dict(patcher.patches),
        sorted(k for k in patcher.model_options if k != "transformer_options"),
    )


def test_interrupt_during_null_text_stops_and_leaves_model_clean(tiny_sd1):
    import comfy.patcher_extension

    base, clip, _ = tiny_sd1
    model = base.clone()  # the "input MODEL", with a counter to see every UNet evaluation
    evals = [0]

    def count(executor, x, *args, **kwargs):
        evals[0] += 1
        return executor(x, *args, **kwargs)

    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_count", count)
    pos, neg = encode(clip, SRC), encode(clip, "")
    src = source_latent()
    lat = {"samples": torch.zeros(1, 4, 8, 8)}
    before_out = sample(model, pos, neg, lat, steps=3)
    before = _snapshot(model)
    weights = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}

    steps, stop_at = 5, 5 + 3  # DDIM inversion checks once per step; then the 3rd inner iteration of step 0
    calls, at_raise = [0], []

    def check_interrupt():
        calls[0] += 1
        if calls[0] == stop_at:
            at_raise.append(evals[0])
            raise _Interrupted()

    evals[0] = 0
    with pytest.raises(_Interrupted):
        _invert(model, pos, neg, src, "null_text", steps=steps, inner_iterations=10, early_stop=False,
                check_interrupt=check_interrupt)
    print(f"\ninterrupt: raised at check {calls[0]} after {at_raise[0]} UNet evaluations, {evals[0]} in total")
    assert calls[0] == stop_at
    assert evals[0] == at_raise[0]  # nothing ran after the interrupt
    assert at_raise[0] == steps + 1 + 2  # inversion, the step's cond pass, two inner iterations

    assert _snapshot(model) == before
    for k, v in model.model.diffusion_model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    after_out = sample(model, pos, neg, lat, steps=3)
    assert torch.equal(before_out, after_out)
    for name, module in model.model.diffusion_model.named_modules():
        assert not getattr(module, "weight_function", []), name
        assert not getattr(module, "bias_function", []), name


def test_null_text_with_inference_mode_weights():
    """ComfyUI loads weights under inference mode; gradients must still reach the embedding."""
    from p2p_models.tiny_unet import ModelSpec, build_all

    with torch.inference_mode():
        model, clip, _ = build_all(ModelSpec.tiny("sd1"), seed=3)
        assert next(model.model.diffusion_model.parameters()).is_inference()
        pos, neg = encode(clip, SRC), encode(clip, "")
    inv = _invert(model, pos, neg, source_latent(), "null_text", steps=3, inner_iterations=2, early_stop=False)
    assert inv.unet_backwards == 6
    assert not torch.equal(inv.null_embeddings[-1], neg[0][0].float())


def test_nan_during_optimisation_falls_back_or_raises(tiny_sd1, caplog):
    base, clip, _ = tiny_sd1
    pos, neg = encode(clip, SRC), encode(clip, "")

    def nan_under_grad(args):  # a pre-CFG hook that breaks only the differentiated pass
        cond, uncond = args["conds_out"]
        if torch.is_grad_enabled() and uncond.requires_grad:
            uncond = uncond * float("nan")
        return [cond, uncond]

    model = base.clone()
    model.set_model_sampler_pre_cfg_function(nan_under_grad)
    with caplog.at_level(logging.WARNING):
        inv = _invert(model, pos, neg, source_latent(), "null_text", steps=3, inner_iterations=3)
    assert inv.nan_steps == [0, 1, 2]
    assert "NaN" in caplog.text
    assert all(torch.equal(e, neg[0][0].float()) for e in inv.null_embeddings)  # last good = the start
    assert torch.isfinite(inv.latent).all()

    def always_nan(args):
        cond, uncond = args["conds_out"]
        return [cond, uncond * float("nan")]

    broken = base.clone()
    broken.set_model_sampler_pre_cfg_function(always_nan)
    with pytest.raises(P2PError, match="^null-text optimisation produced NaN/inf"):
        _invert(broken, pos, neg, source_latent(), "null_text", steps=2, inner_iterations=2)


def test_bad_input_errors(tiny_sd1):
    model, clip, _ = tiny_sd1
    pos, neg = encode(clip, SRC), encode(clip, "")
    two = {"samples": torch.zeros(2, 4, 8, 8)}
    with pytest.raises(P2PError, match=r"^the latent has batch 2"):
        _invert(model, pos, neg, two, "direct", steps=4)
    with pytest.raises(P2PError, match="^unknown method"):
        _invert(model, pos, neg, source_latent(), "edict", steps=4)

    inv = _invert(model, pos, neg, source_latent(), "direct", steps=6)
    cond, _ = encode_prompt_set(clip, SRC, [SRC])

    def run(**kw):
        patched = install_inversion(model.clone(), inv, n_items=kw.pop("n_items", 2))
        lat = latent_batch({"samples": inv.latent}, kw.pop("items", 2))
        args = dict(sampler="ddim", scheduler="ddim_uniform", steps=6, cfg=GUIDANCE, disable_noise=True)
        args.update(kw)
        return sample(patched, cond, neg, lat, **args)

    run()  # the matching setup works
    with pytest.raises(P2PError, match=r"^the sampler's schedule \(5 steps.*sampler 'ddim', scheduler "
                       r"'ddim_uniform', 6 steps, the whole schedule \(denoise 1.0\) and no added noise") as e:
        run(steps=5)
    assert e.value.fix == "inversion_sampling"
    with pytest.raises(ValueError, match="schedule"):
        run(scheduler="karras")
    with pytest.raises(ValueError, match="schedule"):
        run(denoise=0.5)
    with pytest.raises(ValueError, match=r"sampler \(dpmpp_2m\)"):
        run(sampler="dpmpp_2m")
    with pytest.raises(ValueError, match="adds noise"):
        run(disable_noise=False)
    with pytest.raises(P2PError, match="latent batch has 2 item"):
        run(n_items=3)
    assert run(sampler="euler").shape[0] == 2  # euler is the same DDIM step
    with pytest.raises(P2PError, match="already has an inversion"):
        install_inversion(install_inversion(model.clone(), inv), inv)


def test_patches_survive_clone(tiny_sd1):
    model, clip, _ = tiny_sd1
    pos, neg = encode(clip, SRC), encode(clip, "")
    inv = _invert(model, pos, neg, source_latent(), "null_text", steps=2, inner_iterations=1)
    patched = install_inversion(model.clone(), inv, n_items=1)
    again = patched.clone()
    mine = [p for p in patched.model_options["transformer_options"]["patches"]["attn2_patch"]
            if isinstance(p, UncondContextPatch)]
    copied = [p for p in again.model_options["transformer_options"]["patches"]["attn2_patch"]
              if isinstance(p, UncondContextPatch)]
    assert len(mine) == 1 and copied[0] is mine[0]
    assert "sampler_post_cfg_function" not in model.model_options


def test_invert_node(tiny_sd1, pack):
    import importlib

    nodes = importlib.import_module(pack.__name__ + ".nodes.invert_nodes")
    cls = nodes.P2PInvert
    info = cls.GET_NODE_INFO_V1()
    assert cls.NODE_ID == "P2PInvert" and cls.DISPLAY_NAME == "P2P Invert"
    assert (info["name"], info["display_name"], info["category"]) == ("P2PInvert", "P2P Invert", "prompt_to_prompt")
    spec = info["input"]["required"]
    assert list(spec) == ["model", "negative", "latent", "method", "steps", "guidance", "inner_iterations"]
    assert list(info["input"]["optional"]) == ["positive", "prompts"]  # the source prompt: either, written once
    assert info["input"]["optional"]["prompts"][0] == "P2P_PROMPTS"
    assert all(opts.get("tooltip") for _, opts in [*spec.values(), *info["input"]["optional"].values()])
    assert spec["method"][1]["options"] == ["ddim", "null_text_fast", "null_text", "negative_prompt", "direct", "fixed_point"]
    assert spec["method"][1]["default"] == "fixed_point"
    assert spec["steps"][1]["default"] == 50 and spec["guidance"][1]["default"] == 7.5
    assert spec["inner_iterations"][1]["default"] == 10
    assert info["output"] == ["LATENT", "P2P_INVERSION"] and all(info["output_tooltips"])

    model, clip, _ = tiny_sd1
    pos, neg = encode(clip, SRC), encode(clip, "")
    with torch.inference_mode():
        latent, inv = cls.execute(model, neg, source_latent(), "negative_prompt", 4, 7.5, 10, positive=pos).args
        assert type(inv).__name__ == "Inversion" and torch.equal(latent["samples"], inv.latent)
        with pytest.raises(ValueError, match=r"^P2P Invert: the latent has batch 2; invert one image at a time\. "
                           r"VAEEncode a single image, or pick one with 'Latent From Batch'\.$"):
            cls.execute(model, neg, {"samples": torch.zeros(2, 4, 8, 8)}, "ddim", 4, 7.5, 10, positive=pos)
        with pytest.raises(ValueError, match=r"^P2P Invert: no source prompt to invert under: .* Connect P2P Prompt "
                           r"Pair's 'prompts' output to 'prompts'"):
            cls.execute(model, neg, source_latent(), "ddim", 4, 7.5, 10)


@pytest.mark.parametrize("method", ["ddim", "null_text_fast"])
def test_the_prompts_source_inverts_as_its_own_encoding(tiny_sd1, method):
    """P2P Invert given the Prompt Pair's prompts instead of a positive (the source written once) inverts
    under the source's row: the same inversion as under CLIPTextEncode of the source (to float rounding:
    the row is encoded in a batch of 2). (An edit over 77 tokens pads the source's row to two chunks:
    then the inversion runs under that row, the context the sampler gives the source.)"""
    model, clip, _ = tiny_sd1
    neg, lat = encode(clip, NEG), source_latent()
    _, prompts = encode_prompt_set(clip, SRC, [SRC.replace("cat", "dog")])
    via_prompts = _invert(model, None, neg, lat, method, steps=5, prompts=prompts)
    via_positive = _invert(model, encode(clip, SRC), neg, lat, method, steps=5)
    assert via_prompts.prompts_uid == prompts.uid and via_positive.prompts_uid is None
    diff = float((via_prompts.latent - via_positive.latent).abs().max())
    scale = float(via_positive.latent.abs().max())
    print(f"{method}: inverted latents differ by {diff:.2e} (scale {scale:.2f})")
    assert diff <= 1e-4 * scale
    other = _invert(model, encode(clip, "a blue dog"), neg, lat, "ddim", steps=5)
    assert float((other.latent - via_positive.latent).abs().max()) > 1e-2 * scale  # the prompt matters


def test_real_image_swap_with_local_blend_keeps_the_photo_outside_the_mask(tiny_sd1):
    """Direct inversion + word swap + local blend: the source is the photo exactly, and the edit
    equals it outside the blend mask."""
    from p2p_attention.blend import make_blend
    from p2p_attention.edits import with_blend

    model, clip, _ = tiny_sd1
    pos, neg = encode(clip, SRC), encode(clip, NEG)
    src = source_latent(h=16, w=16)
    inv = _invert(model, pos, neg, src, "direct", steps=8)
    cond, prompts = encode_prompt_set(clip, SRC, ["a red dog sitting on a wooden chair"])
    swap = make_plan(prompts, None, "swap", "0.8", "0.4")
    blend = make_blend(prompts, "cat, dog", "", 0.85, 0.3, 0.2, 0)
    patched, runtime = apply_edit(model, with_blend(swap, prompts, blend),
                                  map_downsample=2, inversion=inv)
    out = sample(patched, cond, neg, latent_batch({"samples": inv.latent}, 2), sampler=inv.sampler,
                 scheduler=inv.scheduler, steps=inv.steps, cfg=GUIDANCE, disable_noise=True)
    mask = runtime.store.last_masks[0, 0].cpu().bool()
    assert 0 < mask.float().mean() < 1
    assert (out[0] - src["samples"][0]).abs().max().item() <= direct_bound(src)
    assert (out[1] - out[0]).abs()[:, ~mask].max().item() <= last_step_bound(out[0])
    assert (out[1] - out[0]).abs()[:, mask].max().item() > fp_bound(out[0], torch.float32, inv.steps)


def _invert_graph(method: str, steps: int, family: str = "sd1"):
    from harness import Graph

    g = Graph()
    if family == "sd1":
        m = g.node("P2PTestTinyModel", arch="sd1", seed=0)
        lat = g.node("EmptyLatentImage", width=64, height=64, batch_size=1)
    else:  # a flow model (Flux.1): P2P Invert on its flow schedule, guidance 1
        m = g.node("P2PTestTinyDiTModel", family=family, seed=0)
        lat = g.node("EmptySD3LatentImage", width=64, height=64, batch_size=1)
    pos = g.node("CLIPTextEncode", clip=m[1], text=SRC)
    neg = g.node("CLIPTextEncode", clip=m[1], text="")
    inv = g.node("P2PInvert", _id="inv", model=m[0], positive=pos, negative=neg, latent=lat, method=method,
                 steps=steps, guidance=5.0 if family == "sd1" else 1.0, inner_iterations=2)
    img = g.node("VAEDecode", samples=inv[0], vae=m[2])
    g.node("PreviewImage", images=img)
    return g


@pytest.mark.parametrize("family,method", [("sd1", "ddim"), ("flux", "fixed_point")], ids=["sd1", "flux"])
@pytest.mark.parametrize("interrupt", [False, True], ids=["progress", "interrupt"])
def test_invert_node_progress_and_interrupt_in_comfyui(interrupt, family, method):
    """Through ComfyUI's executor (the V3 node path): P2P Invert drives ComfyUI's progress bar hook
    to its total, and ComfyUI's interrupt (the UI's Cancel) stops it at the next step, on a UNet and
    on a flow model."""
    import comfy.model_management
    import comfy.utils
    from harness import run_inprocess

    steps = 4
    seen: list[tuple[int, int]] = []

    def hook(value, total, preview, node_id=None):
        seen.append((value, total))
        if interrupt:
            comfy.model_management.interrupt_current_processing(True)

    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        if interrupt:
            with pytest.raises(AssertionError, match=r"interrupted at node inv \(P2PInvert\)"):
                run_inprocess(_invert_graph(method, steps, family))
            assert seen == [(1, steps)]  # stopped before the second step ran
        else:
            run_inprocess(_invert_graph(method, steps, family))
            values = [v for v, _ in seen]
            assert values == sorted(values) and values[-1] == steps and {t for _, t in seen} == {steps}
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)
        comfy.model_management.interrupt_current_processing(False)
