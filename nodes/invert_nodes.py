"""P2P Invert: real-image inversion (DDIM / ODE, fixed-point, null-text, negative-prompt, direct) for P2P Apply."""

import logging

from comfy_api.v0_0_2 import io

from ..p2p_attention.inversion import FLOW_SAMPLER, FLOW_SCHEDULER, METHODS, SAMPLER, SCHEDULER, invert
from .common import Inversion, Prompts, node_schema
from .messages import reported_by, ui_text


class P2PInvert(io.ComfyNode):
    NODE_ID = "P2PInvert"
    DISPLAY_NAME = "P2P Invert"

    @classmethod
    def define_schema(cls):
        return node_schema(
            cls,
            description=(
                "Inverts an encoded image (VAEEncode) into the noise the sampler turns back into it, under the "
                "source prompt. Connect LATENT to P2P Latent Batch and P2P_INVERSION to P2P Apply, then sample with "
                "KSamplerAdvanced (add_noise disabled) or SamplerCustom (add_noise off) and the same steps: sampler "
                f"'{SAMPLER}', scheduler '{SCHEDULER}' on SD1.x/SD2.x/SDXL; sampler '{FLOW_SAMPLER}', scheduler "
                f"'{FLOW_SCHEDULER}' on Flux.1 and SD3 (flow matching). fixed_point (default): each step solved so that the sampler retraces it "
                "(warm-started fixed-point iterations; the closest reconstruction where measured, at about a plain "
                "sampling's cost per iteration, no gradients). null_text_fast: null-text "
                "inversion started from the source prompt (3-4 samplings' time; more faithful than null_text "
                "where measured). null_text: the official settings (started from the negative; ~15-20 samplings' "
                "time). negative_prompt: no optimisation, the source prompt becomes the unconditional prompt. "
                "direct: the source item follows the inversion exactly (fast, faithful edits; the choice on Flux). "
                "ddim: plain DDIM / ODE inversion "
                "(baseline). With the null-text methods and negative_prompt the sampler's negative is replaced by "
                "the inversion's; Flux.1 (guidance-distilled, no negative branch) refuses them."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The SD1.x, SD2.x, SDXL, Flux.1 or SD3/SD3.5 model you will edit "
                               "with (it is not modified)."),
                io.Conditioning.Input("positive", optional=True, tooltip="The source prompt describing the image "
                                      "(CLIPTextEncode, one prompt), the same text as the Prompt Pair's source. "
                                      "Optional with 'prompts' connected."),
                io.Conditioning.Input("negative", tooltip="The unconditional prompt (usually CLIPTextEncode of an "
                                      "empty text). null_text starts its optimisation from it and uses it while "
                                      "sampling; null_text_fast and negative_prompt use the source prompt instead."),
                io.Latent.Input("latent", tooltip="VAEEncode of ONE image (batch 1)."),
                io.Combo.Input(
                    "method", options=list(METHODS), default="fixed_point",
                    tooltip="ddim: plain DDIM inversion (baseline). null_text_fast: null-text inversion started "
                    "from the source prompt's embedding (usually one gradient iteration per step; stops a step "
                    "once more iterations cannot reach the official threshold). null_text: the official "
                    "Null-text Inversion (started from the negative; up to steps x inner_iterations UNet passes "
                    "with gradients). negative_prompt: source prompt as unconditional prompt, no optimisation. "
                    "direct: PnP direct inversion, the source is kept exactly on the inversion path. fixed_point: "
                    "every step solved by fixed-point iteration of the sampler's guided step, warm-started with the "
                    "previous velocity (AIDI / ReNoise, FireFlow's reuse); up to inner_iterations model calls per "
                    "step, usually 2-3.",
                ),
                io.Int.Input("steps", default=50, min=1, max=1000,
                             tooltip="Inversion steps (scheduler ddim_uniform; simple on Flux.1 / SD3). The sampler "
                             "must use the same number."),
                io.Float.Input("guidance", default=7.5, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="The cfg you will sample with. null_text and fixed_point solve for exactly this value. Flux.1: 1 (its "
                               "distilled guidance comes from FluxGuidance on the positive)."),
                io.Int.Input("inner_iterations", default=10, min=0, max=100,
                             tooltip="null_text and null_text_fast: at most this many Adam iterations per step "
                             "(official 10); a step stops early once it is reconstructed (loss < 1e-5 + i*2e-5). "
                             "fixed_point: at most this many model calls per step (1 costs what ddim costs)."),
                Prompts.Input("prompts", optional=True,
                              tooltip="From P2P Prompt Pair: invert under its source prompt, so it is written once "
                              "(leave 'positive' empty). With a positive too, the positive is used and a "
                              "difference from the source is warned about."),
            ],
            outputs=[
                io.Latent.Output(
                    display_name="latent",
                    tooltip="The inverted noisy latent. Sample it with add_noise disabled (repeat it with P2P "
                    "Latent Batch for edits)."),
                Inversion.Output(
                    display_name="inversion",
                    tooltip="What the method needs while sampling (per-step null embeddings, the trajectory, the "
                    "sigmas used). Connect to P2P Apply."),
            ],
        )

    @classmethod
    def execute(cls, model, negative, latent, method, steps, guidance, inner_iterations, positive=None,
                prompts=None) -> io.NodeOutput:
        import comfy.model_management
        import comfy.utils

        pbar = comfy.utils.ProgressBar(max(1, steps))  # the engine reports its own total

        def progress(done, total):
            pbar.update_absolute(done, total)

        with reported_by(cls) as warnings:
            inversion = invert(
                model, positive, negative, latent, method=method, steps=steps, guidance=guidance,
                inner_iterations=inner_iterations, progress=progress,
                check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted, prompts=prompts,
            )
        logging.info("%s: %s (%.1f s)", cls.DISPLAY_NAME, inversion.summary(), inversion.seconds)
        return io.NodeOutput({"samples": inversion.latent}, inversion, ui=ui_text(warnings))
