"""The MM-DiT families Prompt-to-Prompt supports, one module each; which one a MODEL is (family_of).

Adding a family: a module with its DiTFamily, listed in FAMILIES (CONTRIBUTING.md, Adding an MM-DiT
family)."""

from __future__ import annotations

from ..errors import P2PError
from .base import DiTFamily
from .chroma import CHROMA
from .flux import FLUX
from .flux2 import FLUX2_DEV, FLUX2_KLEIN
from .lumina2 import LUMINA2
from .qwen_image import QWEN_IMAGE
from .sd3 import SD3
from .zimage import ZIMAGE

FAMILIES: tuple[DiTFamily, ...] = (FLUX, SD3, FLUX2_KLEIN, FLUX2_DEV, ZIMAGE, LUMINA2, QWEN_IMAGE, CHROMA)
UNET_LABELS = ("SD1.x", "SD2.x", "SDXL")
# Model configs ComfyUI ships that are refused by name (not MM-DiT image models this pack edits yet).
NOT_YET = "HiDream and video DiTs"


def family_of(model_patcher) -> DiTFamily:
    """The family of a MODEL that is not a UNet; any other model is refused by name."""
    dm = model_patcher.get_model_object("diffusion_model")
    config = type(model_patcher.model.model_config).__name__
    for family in FAMILIES:
        if config in family.configs and family.supports(dm):
            return family
    supported = ", ".join((*UNET_LABELS, *(f.label for f in FAMILIES)))
    raise P2PError(f"this MODEL ({config}) is not supported: Prompt-to-Prompt runs on {supported} (and their "
                   f"fine-tunes). {NOT_YET} are not supported yet.")
