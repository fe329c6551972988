"""Speed-ups that skip attention (issue 26): ComfyUI's own EasyCache and LazyCache (their real nodes,
comfy_extras/nodes_easycache.py) return cached model outputs on skipped steps, so a P2P-patched MODEL
carrying them is refused, at P2P Apply, at P2P Invert and when sampling (a cache added after P2P Apply);
a model call in which some attention blocks do not reach the edit (a block-skipping cache such as TeaCache
or First Block Cache, built here with the patcher API) warns once per sampling run, on UNets and
MM-DiTs alike."""

from __future__ import annotations

import functools
import logging

import pytest
import torch
from sampling import encode, sample

from p2p_attention.apply import apply_edit
from p2p_attention.checks import cache_speedups
from p2p_attention.conditioning import encode_prompt_set, latent_batch
from p2p_attention.edits import make_plan
from p2p_attention.errors import P2PError, add_warning_listener
from p2p_attention.inversion import invert

SRC = "a red circle on the left"
EDIT = "a green circle on the left"
SKIPPED = "attention blocks ran through Prompt-to-Prompt"


@functools.cache
def _chroma():
    from p2p_models.tiny_chroma import build_tiny_chroma

    return build_tiny_chroma(seed=3)


def _cache_node(name: str):
    import comfy_extras.nodes_easycache as ec

    return {"EasyCache": ec.EasyCacheNode, "LazyCache": ec.LazyCacheNode}[name]


def _cached(model, name: str):
    """The MODEL output of ComfyUI's own EasyCache / LazyCache node (defaults of its widgets)."""
    out = _cache_node(name).execute(model=model, reuse_threshold=0.2, start_percent=0.15, end_percent=0.95,
                                    verbose=False)
    return out.result[0]


def _plan(clip, edit=EDIT):
    cond, prompts = encode_prompt_set(clip, SRC, [edit])
    return cond, make_plan(prompts, None, "swap", "0.8", "0.5")


def _latent(model, items=2):
    channels = model.model.latent_format.latent_channels
    return latent_batch({"samples": torch.zeros(1, channels, 8, 12)}, items)


_heard: list[str] = []
add_warning_listener(_heard.append)  # what the UI listener (nodes/messages.py) is handed


@pytest.fixture
def heard():
    _heard.clear()
    return _heard


# ----------------------------------------------------------------------------- EasyCache / LazyCache


@pytest.mark.parametrize("node", ["EasyCache", "LazyCache"])
def test_a_cached_model_is_refused_at_p2p_apply(node, tiny_sd1):
    for model, clip in ((_chroma().model, _chroma().clip), (tiny_sd1[0], tiny_sd1[1])):
        cached = _cached(model, node)
        assert cache_speedups(cached) == [node] and cache_speedups(model) == []
        _, plan = _plan(clip)
        with pytest.raises(P2PError, match=f"this MODEL carries {node}, which returns cached model outputs") as e:
            apply_edit(cached, plan)
        assert e.value.fix == "cache_speedup" and f"Remove {node}" in str(e.value)


@pytest.mark.parametrize("node", ["EasyCache", "LazyCache"])
def test_a_cache_added_after_p2p_apply_is_refused_when_sampling(node):
    model, clip, _ = _chroma()
    cond, plan = _plan(clip)
    patched, _ = apply_edit(model, plan)
    cached = _cached(patched, node)
    with pytest.raises(P2PError, match=f"carries {node}"):
        sample(cached, cond, encode(clip, ""), _latent(model), steps=4, cfg=4.0, scheduler="simple")
    # the same MODEL without it samples (the refusal is the cache's, not the graph's)
    out = sample(patched, cond, encode(clip, ""), _latent(model), steps=4, cfg=4.0, scheduler="simple")
    assert torch.isfinite(out).all()


def test_what_easycache_would_do_to_an_edit():
    """Why it is refused: on the P2P-patched MODEL, with the check taken out of the way (the cache wrapped
    around the model without P2P Apply's sampling check), EasyCache skips model calls, so whole steps get
    no edit and the result is not the edit's."""
    model, clip, _ = _chroma()
    cond, plan = _plan(clip)
    patched, runtime = apply_edit(model, plan)
    calls = []
    runtime_attend = runtime.attend

    def counting(backend, args, kwargs):
        calls.append(1)
        return runtime_attend(backend, args, kwargs)

    runtime.attend = counting
    neg = encode(clip, "")
    edited = sample(patched, cond, neg, _latent(model), steps=8, cfg=4.0, scheduler="simple")
    full = len(calls)
    calls.clear()
    cached = _cached(patched, "EasyCache")
    import comfy.patcher_extension

    cached.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "p2p_attention")
    skipped = sample(cached, cond, neg, _latent(model), steps=8, cfg=4.0, scheduler="simple")
    assert len(calls) < full  # steps whose attention the edit never saw
    assert not torch.equal(skipped, edited)


def test_invert_refuses_a_cached_model():
    model, clip, _ = _chroma()
    with pytest.raises(P2PError, match="carries EasyCache"), torch.inference_mode():
        invert(_cached(model, "EasyCache"), encode(clip, SRC), encode(clip, ""), _latent(model, 1), method="direct",
               steps=4, guidance=4.0)


# ----------------------------------------------------------------------------- block-skipping patches


def _sample_dit(model, cond, clip, steps=4):
    return sample(model, cond, encode(clip, ""), _latent(_chroma().model), steps=steps, cfg=4.0, scheduler="simple")


def test_no_warning_when_every_block_runs(heard, caplog, tiny_sd1):
    model, clip, _ = _chroma()
    cond, plan = _plan(clip)
    _sample_dit(apply_edit(model, plan)[0], cond, clip)
    unet, uclip, _ = tiny_sd1
    ucond, uplan = _plan(uclip)
    sample(apply_edit(unet, uplan)[0], ucond, encode(uclip, ""), latent_batch({"samples": torch.zeros(1, 4, 8, 8)}, 2),
           steps=3, cfg=5.0)
    assert not [h for h in heard if SKIPPED in h]


class _Skipped(torch.nn.Module):
    """A double block that is not run (returns its inputs), as a block cache's module list holds on a hit."""

    def forward(self, img, txt, *args, **kwargs):
        return img, txt


def test_a_block_list_that_skips_a_block_warns_once(heard, caplog):
    """First Block Cache's way (an object patch of the model's block list whose cached blocks do not run):
    the call's attention reaches the edit in 3 of the 4 blocks."""
    model, clip, _ = _chroma()
    cond, plan = _plan(clip)
    patched, _ = apply_edit(model, plan)
    blocks = patched.get_model_object("diffusion_model").double_blocks
    patched.add_object_patch("diffusion_model.double_blocks", torch.nn.ModuleList([blocks[0], _Skipped()]))
    with caplog.at_level(logging.WARNING):
        _sample_dit(patched, cond, clip)
    said = [h for h in heard if SKIPPED in h]
    assert said == ["at step 1 of 4, only 3 of this model's 4 " + SKIPPED + ", so the other 1 were not edited: "
                    "something on the MODEL skips blocks or steps (a cache speed-up such as TeaCache or First Block "
                    "Cache) or replaced the edit's attention patch. Remove it for Prompt-to-Prompt, or the edit will "
                    "be weak or lost."]
    assert sum(SKIPPED in r.getMessage() for r in caplog.records) == 1  # the console too, once per run
    heard.clear()
    _sample_dit(patched, cond, clip)  # a new sampling run warns again
    assert len([h for h in heard if SKIPPED in h]) == 1


def test_blocks_a_block_patch_skips_on_purpose_are_not_warned(heard):
    """Skip Layer Guidance (ComfyUI's node) skips layers on purpose in an extra pass, through "dit" block
    replace patches; a block patch owns its block: no warning (its pass still has the edit elsewhere)."""
    import comfy_extras.nodes_slg as slg

    model, clip, _ = _chroma()
    cond, plan = _plan(clip)
    guided = slg.SkipLayerGuidanceDiT.execute(model=apply_edit(model, plan)[0], scale=3.0, start_percent=0.0,
                                              end_percent=1.0, double_layers="1", single_layers="0").result[0]
    _sample_dit(guided, cond, clip)
    patched, _ = apply_edit(model, plan)
    patched.set_model_patch_replace(lambda args, extra: {"img": args["img"], "txt": args["txt"]}, "dit",
                                    "double_block", 1)
    _sample_dit(patched, cond, clip)
    assert not [h for h in heard if SKIPPED in h]


def test_a_diffusion_model_wrapper_that_returns_early_warns(heard):
    """TeaCache's / EasyCache's way: a DIFFUSION_MODEL wrapper returns a stored output on later steps."""
    import comfy.patcher_extension

    model, clip, _ = _chroma()
    cond, plan = _plan(clip)
    patched, _ = apply_edit(model, plan)
    stored = {}

    def early(executor, x, *args, **kwargs):
        if "out" in stored:
            return stored["out"]
        stored["out"] = executor(x, *args, **kwargs)
        return stored["out"]

    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_cache", early)
    _sample_dit(patched, cond, clip)
    said = [h for h in heard if SKIPPED in h]
    assert len(said) == 1 and said[0].startswith("at step 1 of 4, only 0 of this model's 4 ")


def test_a_unet_attention_patch_registered_after_p2p_apply_warns(heard, tiny_sd1):
    """On a UNet the same check counts the attn1/attn2 calls of every transformer block: a pack that
    replaces P2P's patch of one block after P2P Apply takes that block out of the edit."""
    from comfy.ldm.modules.attention import optimized_attention

    model, clip, _ = tiny_sd1
    cond, plan = _plan(clip)
    patched, runtime = apply_edit(model, plan)
    name, number, index = next(iter(sorted(b[1:] for b in runtime.blocks)))

    def plain(q, k, v, extra):
        return optimized_attention(q, k, v, extra["n_heads"])

    patched.set_model_attn2_replace(plain, name, number, index)
    sample(patched, cond, encode(clip, ""), latent_batch({"samples": torch.zeros(1, 4, 8, 8)}, 2), steps=3, cfg=5.0)
    n = len(runtime.blocks)
    said = [h for h in heard if SKIPPED in h]
    assert len(said) == 1 and said[0].startswith(f"at step 1 of 3, only {n - 1} of this model's {n} ")
