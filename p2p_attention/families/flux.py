"""Flux.1 (dev, schnell and their fine-tunes): double-stream then single-stream blocks, [txt | img]
joint calls through optimized_attention; the blocks name themselves (block_type double/single)."""

from .base import DiTFamily

# Self-map injection: the later single-stream blocks (20-37 of 38), where RF-Solver-Edit and FireFlow
# inject the source's values.
FLUX = DiTFamily(name="flux", label="Flux.1", configs=("Flux", "FluxSchnell"),
                 block_lists=(("double", "double_blocks"), ("single", "single_blocks")), context_layer="txt_in",
                 map_blocks=("single", 20 / 38), distilled=True)
