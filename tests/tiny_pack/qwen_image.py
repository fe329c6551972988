"""The tiny Qwen-Image of p2p_models.tiny_qwen as a test-only loader node (its own module: one per family)."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from p2p_models import tiny_qwen

from .loaders import cached, loader_schema


class P2PTestTinyQwenImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return loader_schema("P2PTestTinyQwenImage", "P2P Test Tiny Qwen-Image (tests only)",
                             "Tiny Qwen-Image (ComfyUI's QwenImage config, Qwen2.5-VL text encoder with the real "
                             "tokenizer and chat template, Wan 2.1 VAE) with fixed random weights (tests only).", [])

    @classmethod
    def execute(cls, seed: int) -> io.NodeOutput:
        return io.NodeOutput(*cached(("qwen_image", int(seed)), lambda: tiny_qwen.build_tiny_qwen(seed)))
