"""P2P Demo Model and P2P Demo Flux Model: the pack's embedded tiny text-to-image models (no download)."""

from comfy_api.v0_0_2 import io

from ..p2p_attention.demo_dit_model import load_demo_dit_model
from ..p2p_attention.demo_model import load_demo_model
from .common import node_schema
from .messages import reported_by


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
        with reported_by(cls):
            return io.NodeOutput(*load_demo_model())  # ComfyUI's own cache keeps the loaded outputs


class P2PDemoFluxModel(io.ComfyNode):
    NODE_ID = "P2PDemoFluxModel"
    DISPLAY_NAME = "P2P Demo Flux Model"

    @classmethod
    def define_schema(cls):
        return node_schema(
            cls,
            description=(
                "Loads the tiny MM-DiT demo model shipped with the pack: ComfyUI's Flux.1-schnell classes at a "
                "tiny size (T5 text only, no guidance embedding), trained by training/train_dit_demo.py on the "
                "same captioned shapes as P2P Demo Model. Use a 64x64 EmptySD3LatentImage (its 8x8 latent, "
                "32x32 images), euler / simple and cfg 4. For trying the MM-DiT path on any CPU; its edits are "
                "weaker than the SD1 demo's (README, The demo)."
            ),
            inputs=[],
            outputs=[
                io.Model.Output(tooltip="The demo Flux model (8x8x16 latent, 64 image tokens)."),
                io.Clip.Output(tooltip="Its text encoders (tiny T5 with the real T5 tokenizer; CLIP-L unused)."),
                io.Vae.Output(tooltip="Its 4x VAE (32x32 images)."),
            ],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        with reported_by(cls):
            return io.NodeOutput(*load_demo_dit_model())
