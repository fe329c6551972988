"""P2P Demo Model: the pack's embedded tiny text-to-image model (no download)."""

from comfy_api.v0_0_2 import io

from ..p2p_attention.demo_model import load_demo_model
from .common import node_schema


class P2PDemoModel(io.ComfyNode):
    NODE_ID = "P2PDemoModel"
    DISPLAY_NAME = "P2P Demo Model"

    @classmethod
    def define_schema(cls):
        return node_schema(
            cls,
            description=(
                "Loads the tiny demo model shipped with the pack (trained by training/train_demo.py on captioned "
                "coloured shapes, e.g. 'a big red circle on the left and a small blue square on the right'). "
                "Use a 128x128 EmptyLatentImage: its 2x VAE makes that a 16x16 latent and 32x32 images. "
                "For trying the pack on any CPU; real edits need a real checkpoint."
            ),
            inputs=[],
            outputs=[
                io.Model.Output(tooltip="The demo UNet (SD1 architecture, a 16x16 latent)."),
                io.Clip.Output(tooltip="Its text encoder."),
                io.Vae.Output(tooltip="Its 2x VAE (32x32 images)."),
            ],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(*load_demo_model())  # ComfyUI's own cache keeps the loaded outputs
