"""P2P Attention Maps: the store as an IMAGE grid and a MASK."""

from ..p2p_attention.visualize import token_grid, word_mask


class P2PAttentionMaps:
    NODE_ID = "P2PAttentionMaps"
    DISPLAY_NAME = "P2P Attention Maps"
    CATEGORY = "prompt_to_prompt"
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("maps", "mask")
    OUTPUT_TOOLTIPS = (
        "One cell per token of the chosen prompt: where that word attends, token under it.",
        "The chosen words' attention region at image size (soft, or binary above the threshold).",
    )
    DESCRIPTION = (
        "Shows which region each word controls, from the cross-attention recorded by P2P Apply during "
        "sampling. Connect the sampler's LATENT so it runs after sampling."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "attention_store": ("P2P_STORE", {"tooltip": "From P2P Apply."}),
                "samples": ("LATENT", {"tooltip": "The sampler's output (sampled with P2P Apply's MODEL)."}),
                "prompt_index": ("INT", {"default": 0, "min": 0, "max": 63,
                                         "tooltip": "0 = the source prompt, k = edit k."}),
                "words": ("STRING", {"default": "cat",
                                     "tooltip": "Words of that prompt for the MASK output, comma separated."}),
                "threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                        "tooltip": "0: soft mask; above 0: binary mask at this share of the max."}),
            },
            "optional": {
                "image": ("IMAGE", {"tooltip": "The decoded batch: maps are drawn over its item prompt_index."}),
                "vae_downscale": ("INT", {"default": 8, "min": 1, "max": 64,
                                          "tooltip": "Pixels per latent pixel, for the MASK size without an image."}),
            },
        }

    def render(self, attention_store, samples, prompt_index, words, threshold, image=None, vae_downscale=8):
        if image is not None:
            size = tuple(image.shape[1:3])
        else:
            h, w = samples["samples"].shape[-2:]
            size = (h * vae_downscale, w * vae_downscale)
        grid = token_grid(attention_store, prompt_index, image, node=self.DISPLAY_NAME)
        mask = word_mask(attention_store, prompt_index, words, size, threshold, node=self.DISPLAY_NAME)
        return (grid, mask)
