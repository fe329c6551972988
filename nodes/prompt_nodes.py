"""P2P Prompt Pair and P2P Latent Batch."""

from ..p2p_attention.conditioning import encode_prompt_set, latent_batch, split_edit_lines

CATEGORY = "prompt_to_prompt"


class P2PPromptPair:
    NODE_ID = "P2PPromptPair"
    DISPLAY_NAME = "P2P Prompt Pair"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Encodes a source prompt and one or more edited prompts into ONE conditioning whose rows "
        "are assigned item by item (source = batch item 0, edit k = item k). Feed it to the sampler's "
        "positive input with a P2P Latent Batch of the same size."
    )
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING", "P2P_PROMPTS")
    RETURN_NAMES = ("conditioning", "prompts")
    OUTPUT_TOOLTIPS = (
        "Positive conditioning with one row per batch item: source first, then each edit.",
        "Token ids and words of every prompt, for the P2P edit nodes.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "clip": ("CLIP", {"tooltip": "The text encoder of the checkpoint (SD1.x, SD2.x or SDXL)."}),
                "source": (
                    "STRING",
                    {"multiline": True, "default": "a photo of a cat riding a bicycle",
                     "tooltip": "The prompt of the image to edit (batch item 0)."},
                ),
                "edits": (
                    "STRING",
                    {"multiline": True, "default": "a photo of a dog riding a bicycle",
                     "tooltip": "Edited prompts, one per line; each becomes one more batch item."},
                ),
            }
        }

    def encode(self, clip, source, edits):
        return encode_prompt_set(clip, source, split_edit_lines(edits), node=self.DISPLAY_NAME)


class P2PLatentBatch:
    NODE_ID = "P2PLatentBatch"
    DISPLAY_NAME = "P2P Latent Batch"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Repeats a single latent to the source + N edits of a Prompt Pair, all sharing the same "
        "initial noise (same batch_index), so edits start from exactly the source's noise."
    )
    FUNCTION = "batch"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("A latent batch of 1 + N items with identical initial noise.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "latent": ("LATENT", {"tooltip": "One latent: EmptyLatentImage (batch 1) or an encoded image."}),
                "prompts": ("P2P_PROMPTS", {"tooltip": "From P2P Prompt Pair: sets the batch size to 1 + edits."}),
            }
        }

    def batch(self, latent, prompts):
        return (latent_batch(latent, 1 + prompts.n_edits, node=self.DISPLAY_NAME),)
