"""A tiny Flux Redux style model (ComfyUI's ReduxImageEncoder in its StyleModel, as load_style_model makes it)
and a CLIP vision output to apply it with: StyleModelApply's inputs without checkpoint files (tests only)."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from p2p_models.tiny_dit import init_weights

from .loaders import cached, loader_schema


def tiny_redux(width: int, tokens: int, seed: int) -> tuple:
    """(StyleModel, CLIP vision output): `tokens` image tokens `width` wide once StyleModelApply projects them."""
    import comfy.clip_vision
    import comfy.sd
    from comfy.ldm.flux.redux import ReduxImageEncoder

    encoder = ReduxImageEncoder(redux_dim=8, txt_in_features=width)
    init_weights(encoder, seed)  # comfy.ops layers are left unset: random fixed weights, as the tiny models'
    vision = comfy.clip_vision.Output()
    vision["last_hidden_state"] = torch.randn(1, tokens, 8, generator=torch.Generator().manual_seed(seed + 1))
    return comfy.sd.StyleModel(encoder), vision


class P2PTestTinyRedux(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return loader_schema(
            "P2PTestTinyRedux", "P2P Test Tiny Redux (tests only)",
            "Tiny Flux Redux style model (ReduxImageEncoder) with fixed random weights, and a CLIP vision output "
            "of `tokens` image tokens for StyleModelApply (tests only).",
            [io.Int.Input("width", default=32, min=1, max=4096), io.Int.Input("tokens", default=16, min=1, max=729)],
            outputs=[io.StyleModel.Output(display_name="STYLE_MODEL"),
                     io.ClipVisionOutput.Output(display_name="CLIP_VISION_OUTPUT")])

    @classmethod
    def execute(cls, width: int, tokens: int, seed: int) -> io.NodeOutput:
        return io.NodeOutput(*cached(("redux", width, tokens, int(seed)), lambda: tiny_redux(width, tokens, seed)))
