"""Sampling helpers for engine tests: ComfyUI's own comfy.sample.sample (what KSampler calls), shared
with the benchmarks (p2p_testkit.sampling)."""

from p2p_testkit.sampling import empty_latent, encode, sample

__all__ = ["empty_latent", "encode", "sample"]
