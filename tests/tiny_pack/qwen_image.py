"""The tiny Qwen-Image of p2p_models.tiny_qwen as a test-only loader node (its own module: one per family)."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from p2p_models import tiny_qwen

_CACHE: dict[int, tuple] = {}


class P2PTestTinyQwenImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="P2PTestTinyQwenImage",
            display_name="P2P Test Tiny Qwen-Image (tests only)",
            category="testing/p2p",
            description="Tiny Qwen-Image (ComfyUI's QwenImage config, Qwen2.5-VL text encoder with the real "
                        "tokenizer and chat template, Wan 2.1 VAE) with fixed random weights (tests only).",
            inputs=[io.Int.Input("seed", default=0, min=0, max=2**31 - 1)],
            outputs=[
                io.Model.Output(display_name="MODEL"),
                io.Clip.Output(display_name="CLIP"),
                io.Vae.Output(display_name="VAE"),
            ],
        )

    @classmethod
    def execute(cls, seed: int) -> io.NodeOutput:
        if seed not in _CACHE:
            _CACHE[seed] = tiny_qwen.build_tiny_qwen(seed)
        return io.NodeOutput(*_CACHE[seed])
