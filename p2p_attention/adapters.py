"""Which model adapter serves a MODEL, decided here and only here.

- UNet models (SD1.x, SD2.x, SDXL): unet_blocks.py (where attention sits), unet_runtime.py (the
  attn1/attn2 replace patch), unet_install.py (installation on a clone);
- MM-DiT models: families/ (one module per family: its config names, block lists, defaults),
  dit_blocks.py (blocks, token grid), text_streams.py (the text context's streams), dit_runtime.py
  (the joint-attention override), dit_install.py.

Both share the edit maths (maps.py, edits.py), the step clock (steps.py), the batch layout (batch.py),
the attention store (store.py) and local blend (blend.py).
"""

from __future__ import annotations

from .families import DiTFamily, family_of
from .unet_blocks import transformer_block_keys


def model_family(model_patcher) -> DiTFamily | None:
    """None for a UNet model, else its MM-DiT family (families.FAMILIES; any other model is refused)."""
    if transformer_block_keys(model_patcher.get_model_object("diffusion_model")):
        return None
    return family_of(model_patcher)
