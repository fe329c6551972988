"""dit_install.py and dit_runtime.py on their own: what the MM-DiT adapter puts on a clone, what its
APPLY_MODEL wrapper hands each model call, and which attention calls its override leaves alone."""

from __future__ import annotations

import functools

import pytest
import torch

from p2p_attention.adapters import model_family
from p2p_attention.checks import WRAPPER_KEY
from p2p_attention.conditioning import encode_prompt_set
from p2p_attention.dit_install import OVERRIDE_KEY, BlockTag, install_dit_edit, make_apply_model_wrapper
from p2p_attention.dit_runtime import GRID_KEY, IMG_KEY, TXT_KEY, JointAttentionOverride
from p2p_attention.edits import make_plan


@functools.cache
def _installed(family: str):
    import comfy.patcher_extension

    from p2p_models.tiny_dit import build_tiny_flux, build_tiny_sd3

    model, clip, _ = build_tiny_flux(seed=5) if family == "flux" else build_tiny_sd3(seed=5)
    _, prompts = encode_prompt_set(clip, "a red circle", ["a blue circle"])
    plan = make_plan(prompts, None, "swap", "0.8", "0.5")
    patched = model.clone()
    runtime = install_dit_edit(patched, plan, plan.compiled(own_changed=True), model_family(model))
    key = comfy.patcher_extension.WrappersMP.APPLY_MODEL
    return model, patched, runtime, key


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_the_wrapper_goes_on_the_clone_only(family):
    model, patched, runtime, key = _installed(family)
    assert len(patched.get_wrappers(key, WRAPPER_KEY)) == 1
    assert model.get_wrappers(key, WRAPPER_KEY) == []
    assert runtime.store is not None and runtime.self_blocks  # 'auto' chose blocks


def test_sd3_blocks_are_tagged_and_flux_blocks_are_not():
    for family, tagged in (("flux", 0), ("sd3", 2)):
        _, patched, _, _ = _installed(family)
        dit = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
        assert sum(isinstance(p, BlockTag) for p in dit.values()) == tagged
        assert sorted(k for k, p in dit.items() if isinstance(p, BlockTag)) == [("double_block", i)
                                                                                for i in range(tagged)]


def test_a_block_tag_names_the_call_and_runs_the_prior():
    seen = []
    prior = BlockTag(7, prior=None)

    def original(args):
        seen.append(args["transformer_options"])
        return "out"

    assert BlockTag(3, prior=None)({"transformer_options": {"x": 1}}, {"original_block": original}) == "out"
    assert seen[-1] == {"x": 1, "block_type": "joint", "block_index": 3}
    assert BlockTag(3, prior=prior)({"transformer_options": {}}, {"original_block": original}) == "out"
    assert seen[-1]["block_index"] == 7  # the prior (registered first) runs, with its own tag


def test_the_apply_model_wrapper_hands_each_call_its_token_counts_and_keeps_a_prior_override():
    _, _, runtime, _ = _installed("flux")
    prior = object()
    got = {}

    def executor(x, t, c_concat, c_crossattn, control, to, **kwargs):
        got.update(to)
        return x

    wrapper = make_apply_model_wrapper(runtime, patch=2)
    x = torch.zeros(3, 16, 8, 11)  # an odd width pads to the patch: 4 x 6 tokens
    wrapper(executor, x, torch.ones(3), c_crossattn=torch.zeros(3, 9, 32),
            transformer_options={OVERRIDE_KEY: prior})
    assert (got[TXT_KEY], got[IMG_KEY], got[GRID_KEY]) == (9, 24, (4, 6))
    override = got[OVERRIDE_KEY]
    assert isinstance(override, JointAttentionOverride) and override.prior is prior and override.runtime is runtime


@pytest.mark.parametrize("length", [9 + 24 + 5, 9])  # e.g. Kontext's reference tokens; a text-only call
def test_calls_that_are_neither_joint_nor_image_only_are_left_alone(length):
    _, _, runtime, _ = _installed("flux")
    q = torch.randn(3, 2, length, 16)
    calls = []

    def backend(*args, **kwargs):
        calls.append((args, kwargs))
        return "plain"

    to = {TXT_KEY: 9, IMG_KEY: 24, GRID_KEY: (4, 6), "cond_or_uncond": [0], "block_type": "double", "block_index": 0}
    out = JointAttentionOverride(runtime)(backend, q, q, q, 2, skip_reshape=True, transformer_options=to)
    assert out == "plain" and len(calls) == 1 and calls[0][0][0] is q
