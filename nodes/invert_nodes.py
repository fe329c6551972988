"""P2P Invert: real-image inversion (DDIM, null-text, negative-prompt, direct) for P2P Apply."""

import logging

from ..p2p_attention.inversion import METHODS, SAMPLER, SCHEDULER, invert

CATEGORY = "prompt_to_prompt"


class P2PInvert:
    NODE_ID = "P2PInvert"
    DISPLAY_NAME = "P2P Invert"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Inverts an encoded image (VAEEncode) into the noise a DDIM sampler turns back into it, under the "
        "source prompt. Connect LATENT to P2P Latent Batch and P2P_INVERSION to P2P Apply, then sample with "
        f"KSamplerAdvanced (add_noise disabled) or SamplerCustom (add_noise off), sampler '{SAMPLER}', "
        f"scheduler '{SCHEDULER}' and the same steps. null_text: best fidelity, slow (optimises one "
        "unconditional embedding per step). negative_prompt: no optimisation, the source prompt becomes the "
        "unconditional prompt. direct: the source item follows the inversion exactly (fast, faithful edits). "
        "ddim: plain DDIM inversion (baseline; drifts at high cfg). With null_text and negative_prompt the "
        "sampler's negative is replaced by the inversion's."
    )
    FUNCTION = "invert"
    RETURN_TYPES = ("LATENT", "P2P_INVERSION")
    RETURN_NAMES = ("latent", "inversion")
    OUTPUT_TOOLTIPS = (
        "The inverted noisy latent. Sample it with add_noise disabled (repeat it with P2P Latent Batch for edits).",
        "What the method needs while sampling (per-step null embeddings, the trajectory, the sigmas used). "
        "Connect to P2P Apply.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The SD1.x, SD2.x or SDXL model you will edit with (it is not modified)."}),
                "positive": (
                    "CONDITIONING",
                    {"tooltip": "The source prompt describing the image (CLIPTextEncode, one prompt). Use the "
                     "same text as the Prompt Pair's source."},
                ),
                "negative": (
                    "CONDITIONING",
                    {"tooltip": "The unconditional prompt (usually CLIPTextEncode of an empty text). null_text "
                     "starts its optimisation from it and uses it while sampling."},
                ),
                "latent": ("LATENT", {"tooltip": "VAEEncode of ONE image (batch 1)."}),
                "method": (
                    list(METHODS),
                    {"default": "null_text",
                     "tooltip": "ddim: plain DDIM inversion (baseline). null_text: optimise the unconditional "
                     "embedding per step (official Null-text Inversion; ~steps x inner_iterations UNet passes with "
                     "gradients). negative_prompt: source prompt as unconditional prompt, no optimisation. direct: "
                     "PnP direct inversion, the source is kept exactly on the inversion path."},
                ),
                "steps": (
                    "INT",
                    {"default": 50, "min": 1, "max": 1000,
                     "tooltip": "DDIM steps (scheduler ddim_uniform). The sampler must use the same number."},
                ),
                "guidance": (
                    "FLOAT",
                    {"default": 7.5, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                     "tooltip": "The cfg you will sample with. null_text optimises for exactly this value."},
                ),
                "inner_iterations": (
                    "INT",
                    {"default": 10, "min": 0, "max": 100,
                     "tooltip": "null_text only: at most this many Adam iterations per step (official 10); it "
                     "stops early once the step is reconstructed (loss < 1e-5 + i*2e-5)."},
                ),
            }
        }

    def invert(self, model, positive, negative, latent, method, steps, guidance, inner_iterations):
        import comfy.model_management
        import comfy.utils

        pbar = comfy.utils.ProgressBar(max(1, 2 * steps if method == "null_text" else steps))

        def progress(done, total):
            pbar.update_absolute(done, total)

        inversion = invert(
            model, positive, negative, latent, method=method, steps=steps, guidance=guidance,
            inner_iterations=inner_iterations, progress=progress,
            check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted,
            node=self.DISPLAY_NAME,
        )
        logging.info("%s: %s (%.1f s)", self.DISPLAY_NAME, inversion.summary(), inversion.seconds)
        return ({"samples": inversion.latent}, inversion)
