"""The settings every inversion method shares: the sampler and schedule an inversion is made for (and
sampled back with), the wrapper keys, and the official null-text settings."""

from __future__ import annotations

SAMPLER = "ddim"
SCHEDULER = "ddim_uniform"
# Flow-matching models (Flux.1, SD3): ComfyUI's euler on the model's own (shifted) flow schedule.
FLOW_SAMPLER = "euler"
FLOW_SCHEDULER = "simple"
INVERSION_KEY = "p2p_inversion"  # its OUTER_SAMPLE wrapper's key
_COUNT_KEY = "p2p_inversion_count"
_EULER_FUNCTIONS = ("sample_euler",)  # "ddim" and "euler" (s_churn 0): the step the inversion inverts

# Official null-text settings (Mokady et al. 2023), written for 50 steps.
NULL_TEXT_LR = 1e-2
NULL_TEXT_EPSILON = 1e-5
NULL_TEXT_EPSILON_SLOPE = 2e-5
_OFFICIAL_STEPS = 50


def is_flow(model_patcher) -> bool:
    """Flow matching (x = (1 - sigma) x0 + sigma noise): CONST model sampling (Flux.1, SD3)."""
    import comfy.model_sampling

    return isinstance(model_patcher.get_model_object("model_sampling"), comfy.model_sampling.CONST)


def sampling_for(model_patcher) -> tuple[str, str]:
    """(sampler, scheduler) an inversion of this model is made for and sampled back with."""
    return (FLOW_SAMPLER, FLOW_SCHEDULER) if is_flow(model_patcher) else (SAMPLER, SCHEDULER)
