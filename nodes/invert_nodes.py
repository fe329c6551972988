"""P2P Invert: real-image inversion (DDIM, null-text, negative-prompt, direct) for P2P Apply."""

import logging

from comfy_api.v0_0_2 import io

from ..p2p_attention.inversion import METHODS, SAMPLER, SCHEDULER, invert
from .common import Inversion, node_schema
from .messages import reported_by


class P2PInvert(io.ComfyNode):
    NODE_ID = "P2PInvert"
    DISPLAY_NAME = "P2P Invert"

    @classmethod
    def define_schema(cls):
        return node_schema(
            cls,
            description=(
                "Inverts an encoded image (VAEEncode) into the noise a DDIM sampler turns back into it, under "
                "the source prompt. Connect LATENT to P2P Latent Batch and P2P_INVERSION to P2P Apply, then "
                f"sample with KSamplerAdvanced (add_noise disabled) or SamplerCustom (add_noise off), sampler "
                f"'{SAMPLER}', scheduler '{SCHEDULER}' and the same steps. null_text_fast (default): null-text "
                "inversion started from the source prompt (3-4 samplings' time; more faithful than null_text "
                "where measured). null_text: the official settings (started from the negative; ~15-20 samplings' time), for comparison with "
                "the paper. negative_prompt: no optimisation, the source prompt becomes the unconditional prompt "
                "(faster than one sampling). direct: the source item follows the inversion exactly (fast, "
                "faithful edits). ddim: plain DDIM inversion (baseline; drifts at high cfg). With the null-text "
                "methods and negative_prompt the sampler's negative is replaced by the inversion's."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The SD1.x, SD2.x or SDXL model you will edit with (it is not "
                               "modified)."),
                io.Conditioning.Input("positive", tooltip="The source prompt describing the image "
                                      "(CLIPTextEncode, one prompt). Use the same text as the Prompt Pair's source."),
                io.Conditioning.Input("negative", tooltip="The unconditional prompt (usually CLIPTextEncode of an "
                                      "empty text). null_text starts its optimisation from it and uses it while "
                                      "sampling; null_text_fast and negative_prompt use the source prompt instead."),
                io.Latent.Input("latent", tooltip="VAEEncode of ONE image (batch 1)."),
                io.Combo.Input(
                    "method", options=list(METHODS), default="null_text_fast",
                    tooltip="ddim: plain DDIM inversion (baseline). null_text_fast: null-text inversion started "
                    "from the source prompt's embedding (usually one gradient iteration per step; stops a step "
                    "once more iterations cannot reach the official threshold). null_text: the official "
                    "Null-text Inversion (started from the negative; up to steps x inner_iterations UNet passes "
                    "with gradients). negative_prompt: source prompt as unconditional prompt, no optimisation. "
                    "direct: PnP direct inversion, the source is kept exactly on the inversion path.",
                ),
                io.Int.Input("steps", default=50, min=1, max=1000,
                             tooltip="DDIM steps (scheduler ddim_uniform). The sampler must use the same number."),
                io.Float.Input("guidance", default=7.5, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="The cfg you will sample with. null_text optimises for exactly this value."),
                io.Int.Input("inner_iterations", default=10, min=0, max=100,
                             tooltip="null_text and null_text_fast: at most this many Adam iterations per step "
                             "(official 10); a step stops early once it is reconstructed (loss < 1e-5 + i*2e-5)."),
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
    def execute(cls, model, positive, negative, latent, method, steps, guidance, inner_iterations) -> io.NodeOutput:
        import comfy.model_management
        import comfy.utils

        pbar = comfy.utils.ProgressBar(max(1, steps))  # the engine reports its own total

        def progress(done, total):
            pbar.update_absolute(done, total)

        with reported_by(cls):
            inversion = invert(
                model, positive, negative, latent, method=method, steps=steps, guidance=guidance,
                inner_iterations=inner_iterations, progress=progress,
                check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted,
            )
        logging.info("%s: %s (%.1f s)", cls.DISPLAY_NAME, inversion.summary(), inversion.seconds)
        return io.NodeOutput({"samples": inversion.latent}, inversion)
