"""P2P Demo Model: the pack's embedded tiny text-to-image model (no download)."""

from comfy_api.v0_0_2 import io

from ..p2p_attention.demo_model import load_demo_model
from .common import CATEGORY

_CACHE = {}


class P2PDemoModel(io.ComfyNode):
    NODE_ID = "P2PDemoModel"
    DISPLAY_NAME = "P2P Demo Model"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=cls.NODE_ID,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Loads the tiny demo model shipped with the pack (trained by training/train_demo.py on captioned "
                "coloured shapes, e.g. 'a big red circle on the left and a small blue square on the right'). "
                "Use 64x64 images. For trying the pack on any CPU; real edits need a real checkpoint."
            ),
            inputs=[],
            outputs=[
                io.Model.Output(tooltip="The demo UNet (SD1 architecture, 64x64 images)."),
                io.Clip.Output(tooltip="Its text encoder."),
                io.Vae.Output(tooltip="Its 4x VAE."),
            ],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        if "demo" not in _CACHE:
            _CACHE["demo"] = load_demo_model()
        return io.NodeOutput(*_CACHE["demo"])
