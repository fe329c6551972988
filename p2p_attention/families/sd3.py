"""SD3 / SD3.5: joint blocks, [context | x] joint calls (q/k/v as [B, L, H*D]) and SD3.5 Medium's
image-only second attention; the blocks do not name themselves: tagged by block replace patches. No
published block choice for self-map injection: every joint block (Shin et al. edit all)."""

from .base import DiTFamily

SD3 = DiTFamily(name="sd3", label="SD3/SD3.5", configs=("SD3",), block_lists=(("joint", "joint_blocks"),),
                context_layer="context_embedder", tag_blocks=True)
