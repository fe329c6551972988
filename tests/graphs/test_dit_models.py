"""Tiny Flux.1 and SD3 / SD3.5 models (p2p_models.tiny_dit) on the ComfyUI the suite runs with.

Their text streams and conditioning shapes, the pooled and guidance inputs, and API graphs through
every core sampler path (KSampler, KSamplerAdvanced, SamplerCustomAdvanced with BasicGuider +
FluxGuidance or CFGGuider; ModelSamplingFlux / ModelSamplingSD3; euler; simple and beta) to
finite decoded images; the same seed gives the same latents.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import torch
from family_graphs import HEIGHT, WIDTH, image_array, model_sampling, saved_latent, stock_sampler
from harness import TINY_PACK, Graph, inprocess_dirs, output_images, run_inprocess

from p2p_models import tiny_dit as dit_build

PROMPT = "a photo of a cat"
# WIDTH x HEIGHT (family_graphs): latent 12x8, 6x4 = 24 image tokens
FAMILIES = ("flux", "flux_schnell", "sd3", "sd35")


@functools.cache
def _tiny_pack():
    """The test-only node pack as ComfyUI imported it: its cache holds the models the graphs run."""
    inprocess_dirs()  # loads the custom nodes once
    init = (TINY_PACK / "__init__.py").resolve()
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if f and Path(f).resolve() == init:
            return module
    raise AssertionError("ComfyUI did not import tests/tiny_pack")


def _models(family: str, seed: int = 0):
    return _tiny_pack().tiny_dit_models(family, seed)


def _t5_ids(tokens) -> list[int]:
    return [t[0] for t in tokens["t5xxl"][0]]


def test_flux_text_streams_and_conditioning():
    _, clip, _ = _models("flux")
    tokens = clip.tokenize(PROMPT)
    assert set(tokens) == {"l", "t5xxl"}
    assert [len(b) for b in tokens["l"]] == [77]
    ids = _t5_ids(tokens)
    # T5: no start token, the prompt, EOS (1), zero padding to min_length 256.
    words = clip.tokenizer.t5xxl.tokenizer(PROMPT)["input_ids"]
    assert len(ids) == 256 and ids[: len(words)] == words and words[-1] == 1
    assert set(ids[len(words):]) == {0}
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    assert cond.shape == (1, 256, dit_build.TINY_T5["d_model"])
    assert pooled.shape == (1, dit_build.TINY_CLIP_L["hidden_size"])
    assert torch.isfinite(cond).all() and torch.isfinite(pooled).all()


def test_sd3_text_streams_and_conditioning():
    _, clip, _ = _models("sd3")
    tokens = clip.tokenize(PROMPT)
    assert set(tokens) == {"l", "g", "t5xxl"}
    assert [len(b) for b in tokens["l"]] == [77] and [len(b) for b in tokens["g"]] == [77]
    assert len(_t5_ids(tokens)) == 77  # T5 min_length 77 for SD3
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    # CLIP-L and CLIP-G features side by side, zero-padded to 4096, then the T5 tokens.
    assert cond.shape == (1, 77 + 77, dit_build.SD3_CONTEXT_WIDTH)
    lg = dit_build.TINY_CLIP_L["hidden_size"] + dit_build.TINY_CLIP_G["hidden_size"]
    assert not cond[:, :77, lg:].any() and cond[:, :77, :lg].abs().amax() > 0
    assert cond[:, 77:].abs().amax(-1).gt(0).all()  # T5 states are 4096 wide
    assert pooled.shape == (1, dit_build.TINY_CLIP_L["hidden_size"] + dit_build.TINY_CLIP_G["projection_dim"])
    # A long prompt: CLIP in 77-token chunks, T5 unchunked after them.
    long = " ".join(["a red cat on a blue chair"] * 12)
    long_tokens = clip.tokenize(long)
    n_t5 = len(_t5_ids(long_tokens))
    assert len(long_tokens["l"]) == 2 and n_t5 > 77
    assert clip.encode_from_tokens(long_tokens).shape == (1, 2 * 77 + n_t5, dit_build.SD3_CONTEXT_WIDTH)


def _predict(patcher, cond, pooled, guidance=None):
    """One model call at sigma 0.7 on a fixed latent: the denoised prediction."""
    x = torch.randn(1, 16, HEIGHT // 8, WIDTH // 8, generator=torch.Generator().manual_seed(0))
    kwargs = {"y": pooled} if guidance is None else {"y": pooled, "guidance": torch.tensor([guidance])}
    with torch.inference_mode():  # as ComfyUI samples: the order-independent way (the cached models may
        # hold inference tensors after an earlier test sampled them)
        out = patcher.model.apply_model(x, torch.tensor([0.7]), c_crossattn=cond, **kwargs)
    assert out.shape == x.shape and torch.isfinite(out).all()
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_pooled_and_guidance_inputs_reach_the_model(family):
    model, clip, _ = _models(family)
    cond, pooled = clip.encode_from_tokens(clip.tokenize(PROMPT), return_pooled=True)
    base = _predict(model, cond, pooled, 3.5)
    assert not torch.equal(base, _predict(model, cond, torch.zeros_like(pooled), 3.5))
    assert not torch.equal(base, _predict(model, clip.encode_from_tokens(clip.tokenize("a dog")), pooled, 3.5))
    # Flux dev embeds its guidance; schnell and SD3 have no guidance input.
    assert torch.equal(base, _predict(model, cond, pooled, 1.0)) == (family != "flux")


def _graph(family: str, seed: int = 0, steps: int = 3) -> Graph:
    """Tiny DiT -> three samplers -> SaveLatent + VAEDecode/SaveImage each (ids lat_* / img_*).

    KSampler and SamplerCustomAdvanced use the same seed, scheduler ("simple") and guidance: they
    must agree; KSamplerAdvanced uses "beta"."""
    flux = family.startswith("flux")
    g = Graph()
    m = g.node("P2PTestTinyDiTModel", family=family, seed=0)
    model = model_sampling(g, family, m[0])
    pos = g.node("CLIPTextEncode", clip=m[1], text=PROMPT)
    neg = g.node("CLIPTextEncode", clip=m[1], text="")
    if flux:
        pos = g.node("FluxGuidance", conditioning=pos, guidance=3.5)
    cfg = 1.0 if flux else 4.0
    lat = g.node("EmptySD3LatentImage", width=WIDTH, height=HEIGHT, batch_size=1)
    guider = g.node("BasicGuider", model=model, conditioning=pos) if flux else None
    samples = {name: stock_sampler(g, sampler, model, pos, neg, lat, cfg, seed=seed, steps=steps, guider=guider)
               for name, sampler in (("ksampler", "KSampler"), ("advanced", "KSamplerAdvanced"),
                                     ("custom", "SamplerCustomAdvanced"))}
    for name, out in samples.items():
        g.node("SaveLatent", _id=f"lat_{name}", samples=out[0], filename_prefix=f"dit_{family}_{name}")
        img = g.node("VAEDecode", samples=out[0], vae=m[2])
        g.node("SaveImage", _id=f"img_{name}", images=img, filename_prefix=f"dit_{family}_{name}")
    return g


def _run(family: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Run the graph; check its images; the saved latents by sampler."""
    outputs = run_inprocess(_graph(family, seed))
    assert sorted(dict(output_images(outputs))) == ["img_advanced", "img_custom", "img_ksampler"]
    latents = {}
    for name in ("ksampler", "advanced", "custom"):
        pixels = image_array(outputs, f"img_{name}")
        assert pixels.shape == (HEIGHT, WIDTH, 3) and pixels.std() > 0
        latent = saved_latent(outputs, f"lat_{name}")
        assert latent.shape == (1, 16, HEIGHT // 8, WIDTH // 8) and torch.isfinite(latent).all()
        latents[name] = latent
    return latents


@pytest.mark.parametrize("family", FAMILIES)
def test_graphs_sample_every_way_and_repeat_exactly(family):
    first = _run(family)
    torch.testing.assert_close(first["custom"], first["ksampler"])  # the same sampling, two node paths
    assert not torch.equal(first["advanced"], first["ksampler"])  # beta is not simple
    again = _run(family)
    for name, latent in first.items():
        assert torch.equal(latent, again[name]), f"{family} {name}: the same seed gave other latents"
    other = _run(family, seed=1)
    assert not torch.equal(other["ksampler"], first["ksampler"])


def test_builds_are_deterministic_per_seed():
    a, b, c = (dit_build.build_flux_model(s) for s in (0, 0, 1))
    sa, sb, sc = (m.model.diffusion_model.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    # The pack's cached parts are the ones build_tiny_* gives for the same seed.
    built = dit_build.build_flux_model(0, schnell=True).model.diffusion_model.state_dict()
    cached = _models("flux_schnell").model.model.diffusion_model.state_dict()
    assert all(torch.equal(built[k], cached[k]) for k in built)


@pytest.mark.parametrize("build", [dit_build.build_flux_model, dit_build.build_sd3_model], ids=["flux", "sd3"])
def test_half_precision_builds_run(build):
    patcher = build(0, dtype=torch.bfloat16)
    half = patcher.model.diffusion_model.state_dict()
    assert {p.dtype for p in patcher.model.diffusion_model.parameters()} == {torch.bfloat16}
    full = build(0).model.diffusion_model.state_dict()
    assert all(torch.equal(half[k], full[k].to(torch.bfloat16)) for k in full)  # float32 weights, rounded
    _, clip, _ = _models("flux" if build is dit_build.build_flux_model else "sd3")
    cond, pooled = clip.encode_from_tokens(clip.tokenize(PROMPT), return_pooled=True)
    _predict(patcher, cond, pooled, 3.5)


def _attention_calls(family: str) -> list[dict]:
    """What an optimized_attention_override sees in one cfg-2 euler step (cond + uncond batch)."""
    import comfy.sample

    model, clip, _ = _models(family)
    cond, pooled = clip.encode_from_tokens(clip.tokenize(PROMPT), return_pooled=True)
    uncond, upooled = clip.encode_from_tokens(clip.tokenize(""), return_pooled=True)
    calls = []

    def probe(func, *args, **kwargs):
        opts = kwargs["transformer_options"]
        calls.append({"shapes": [tuple(a.shape) for a in args[:3]], "heads": args[3] if len(args) > 3 else kwargs["heads"],
                      "skip_reshape": kwargs.get("skip_reshape", False), "cond_or_uncond": list(opts["cond_or_uncond"]),
                      "block": (opts.get("block_type"), opts.get("block_index"))})
        return func(*args, **kwargs)

    patched = model.clone()
    patched.model_options["transformer_options"]["optimized_attention_override"] = probe
    latent = torch.zeros(1, 16, HEIGHT // 8, WIDTH // 8)
    comfy.sample.sample(patched, comfy.sample.prepare_noise(latent, 0), 1, 2.0, "euler", "simple",
                        [[cond, {"pooled_output": pooled}]], [[uncond, {"pooled_output": upooled}]], latent,
                        disable_pbar=True)
    assert calls and all(sorted(c["cond_or_uncond"]) == [0, 1] for c in calls)
    return calls


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_override_sees_the_joint_attention(family):
    """The facts a DiT P2P engine builds on (both trees): the override gets the backend and q, k, v of
    each attention; text tokens first, then the image tokens."""
    calls = _attention_calls(family)
    img = dit_build.latent_tokens(HEIGHT // 8, WIDTH // 8)
    if family.startswith("flux"):  # q/k/v [B, heads, txt + img, head_dim], RoPE applied; heads positional
        assert [c["block"] for c in calls] == [("double", 0), ("double", 1), ("single", 0), ("single", 1)]
        assert all(c["shapes"] == [(2, 2, 256 + img, 32)] * 3 and c["heads"] == 2 and c["skip_reshape"] for c in calls)
    else:  # q, k [B, txt + img, heads * 64], v [B, txt + img, heads, 64]; heads=; no block ids
        joint = [(2, 154 + img, 128), (2, 154 + img, 128), (2, 154 + img, 2, 64)]
        image_only = [(2, img, 128), (2, img, 128), (2, img, 2, 64)]  # SD3.5 x_block attn2 (block 0)
        expected = [joint, image_only, joint] if family == "sd35" else [joint, joint]
        assert [c["shapes"] for c in calls] == expected
        assert all(c["heads"] == 2 and not c["skip_reshape"] and c["block"] == (None, None) for c in calls)
