"""P2P Demo Model and P2P Demo Flux Model: the pack's embedded tiny text-to-image models (no download)."""

from comfy_api.v0_0_2 import io

from ..p2p_attention.errors import P2PError
from ..p2p_models.demo_dit import load_demo_dit_model
from ..p2p_models.demo_unet import load_demo_model
from ..p2p_models.weights import DemoWeightsError
from .common import node_schema
from .messages import reported_by


class _DemoLoader(io.ComfyNode):
    """A loader without inputs: MODEL, CLIP, VAE of one embedded model (ComfyUI's cache keeps them)."""

    DESCRIPTION_TEXT = ""
    TOOLTIPS = ("", "", "")  # MODEL, CLIP, VAE

    @staticmethod
    def load():
        raise NotImplementedError

    @classmethod
    def define_schema(cls):
        model, clip, vae = cls.TOOLTIPS
        return node_schema(cls, description=cls.DESCRIPTION_TEXT, inputs=[], outputs=[
            io.Model.Output(tooltip=model), io.Clip.Output(tooltip=clip), io.Vae.Output(tooltip=vae)])

    @classmethod
    def execute(cls) -> io.NodeOutput:
        with reported_by(cls):
            try:
                return io.NodeOutput(*cls.load())
            except DemoWeightsError as e:
                raise P2PError(str(e)) from None


class P2PDemoModel(_DemoLoader):
    NODE_ID = "P2PDemoModel"
    DISPLAY_NAME = "P2P Demo Model"
    DESCRIPTION_TEXT = (
        "Loads the tiny demo model shipped with the pack (trained by training/train_demo.py on captioned "
        "coloured shapes, e.g. 'a big red circle on the left and a small blue square on the right'). "
        "Use a 128x128 EmptyLatentImage: its 2x VAE makes that a 16x16 latent and 32x32 images. "
        "For trying the pack on any CPU; real edits need a real checkpoint."
    )
    TOOLTIPS = ("The demo UNet (SD1 architecture, a 16x16 latent).", "Its text encoder.",
                "Its 2x VAE (32x32 images).")
    load = staticmethod(load_demo_model)


class P2PDemoFluxModel(_DemoLoader):
    NODE_ID = "P2PDemoFluxModel"
    DISPLAY_NAME = "P2P Demo Flux Model"
    DESCRIPTION_TEXT = (
        "Loads the tiny MM-DiT demo model shipped with the pack: ComfyUI's Flux.1-schnell classes at a "
        "tiny size (T5 text only, no guidance embedding), trained by training/train_dit_demo.py on the "
        "same captioned shapes as P2P Demo Model. Use a 64x64 EmptySD3LatentImage (its 8x8 latent, "
        "32x32 images), euler / simple and cfg 4. For trying the MM-DiT path on any CPU; its edits are "
        "weaker than the SD1 demo's (README, The demo)."
    )
    TOOLTIPS = ("The demo Flux model (8x8x16 latent, 64 image tokens).",
                "Its text encoders (tiny T5 with the real T5 tokenizer; CLIP-L unused).", "Its 4x VAE (32x32 images).")
    load = staticmethod(load_demo_dit_model)
