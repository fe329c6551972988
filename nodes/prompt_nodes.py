"""P2P Prompt Pair and P2P Latent Batch."""

from comfy_api.v0_0_2 import io

from ..p2p_attention.conditioning import encode_prompt_set, latent_batch, split_edit_lines
from .common import Prompts, node_schema
from .messages import reported_by, ui_text


class P2PPromptPair(io.ComfyNode):
    NODE_ID = "P2PPromptPair"
    DISPLAY_NAME = "P2P Prompt Pair"

    @classmethod
    def define_schema(cls):
        return node_schema(
            cls,
            description=(
                "Encodes a source prompt and one or more edited prompts into ONE conditioning whose rows "
                "are assigned item by item (source = batch item 0, edit k = item k). Feed it to the sampler's "
                "positive input with a P2P Latent Batch of the same size."
            ),
            inputs=[
                io.Clip.Input("clip", tooltip="The text encoder of the checkpoint (SD1.x, SD2.x or SDXL)."),
                io.String.Input("source", multiline=True, default="a photo of a cat riding a bicycle",
                                tooltip="The prompt of the image to edit (batch item 0)."),
                io.String.Input("edits", multiline=True, default="a photo of a dog riding a bicycle",
                                tooltip="Edited prompts, one per line; each becomes one more batch item."),
            ],
            outputs=[
                io.Conditioning.Output(
                    display_name="conditioning",
                    tooltip="Positive conditioning with one row per batch item: source first, then each edit."),
                Prompts.Output(display_name="prompts",
                               tooltip="Token ids and words of every prompt, for the P2P edit nodes."),
            ],
        )

    @classmethod
    def execute(cls, clip, source, edits) -> io.NodeOutput:
        with reported_by(cls) as warnings:
            conditioning, prompts = encode_prompt_set(clip, source, split_edit_lines(edits))
            return io.NodeOutput(conditioning, prompts, ui=ui_text(warnings))


class P2PLatentBatch(io.ComfyNode):
    NODE_ID = "P2PLatentBatch"
    DISPLAY_NAME = "P2P Latent Batch"

    @classmethod
    def define_schema(cls):
        return node_schema(
            cls,
            description=(
                "Repeats a single latent to the source + N edits of a Prompt Pair, all sharing the same "
                "initial noise (same batch_index), so edits start from exactly the source's noise."
            ),
            inputs=[
                io.Latent.Input("latent", tooltip="One latent: EmptyLatentImage (batch 1) or an encoded image."),
                Prompts.Input("prompts", tooltip="From P2P Prompt Pair: sets the batch size to 1 + edits."),
            ],
            outputs=[io.Latent.Output(tooltip="A latent batch of 1 + N items with identical initial noise.")],
        )

    @classmethod
    def execute(cls, latent, prompts) -> io.NodeOutput:
        with reported_by(cls):
            return io.NodeOutput(latent_batch(latent, 1 + prompts.n_edits))
