"""The premise of tests/support/bounds.py, checked on the machine that runs the suite: one sampling run in
float32, float16 or bfloat16 lies within K_RUN * eps * max|x| * sqrt(UNet evaluations) of the same
model run in float64 (the exact result to ~1e-16). If a CPU or GPU rounds worse than the model
assumes, this test names it, instead of a P2P test failing for no reason of its own."""

import pytest
import torch
from bounds import K_RUN, dtype_name, fp_bound, unet_evals
from sampling import empty_latent, encode, sample

from p2p_attention.conditioning import encode_prompt_set, latent_batch

STEPS = 6


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_one_run_is_within_k_run_of_float64(arch, tiny_in_dtype):
    runs = {}
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        model, clip, _ = tiny_in_dtype(arch, dtype)
        cond, _ = encode_prompt_set(clip, "a red cat sitting on a wooden chair", ["a blue dog sitting on a metal chair"])
        runs[dtype] = sample(model, cond, encode(clip, "blurry"), latent_batch(empty_latent(8, 8), 2), steps=STEPS)
    exact = runs[torch.float64]
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        err = (runs[dtype].double() - exact).abs().max().item()
        bound = fp_bound(exact, dtype, unet_evals(STEPS), k=K_RUN)
        print(f"{arch} {dtype_name(dtype)}: max|x| {exact.abs().max():.2f}, error vs float64 {err:.2e}, "
              f"bound {bound:.2e} ({err / bound:.2f} of it)")
        assert torch.isfinite(runs[dtype]).all()
        assert err <= bound, (dtype, err, bound)
