"""P2P Demo Model: the pack's embedded tiny text-to-image model (no download)."""

from ..p2p_attention.demo_model import load_demo_model

_CACHE = {}


class P2PDemoModel:
    NODE_ID = "P2PDemoModel"
    DISPLAY_NAME = "P2P Demo Model"
    CATEGORY = "prompt_to_prompt"
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    OUTPUT_TOOLTIPS = ("The demo UNet (SD1 architecture, 64x64 images).", "Its text encoder.", "Its 4x VAE.")
    DESCRIPTION = (
        "Loads the tiny demo model shipped with the pack (trained by training/train_demo.py on captioned "
        "coloured shapes, e.g. 'a big red circle on the left and a small blue square on the right'). "
        "Use 64x64 images. For trying the pack on any CPU; real edits need a real checkpoint."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def load(self):
        if "demo" not in _CACHE:
            _CACHE["demo"] = load_demo_model()
        return _CACHE["demo"]
