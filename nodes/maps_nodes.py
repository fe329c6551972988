"""P2P Attention Maps: the store as an IMAGE grid and a MASK."""

from comfy_api.v0_0_2 import io

from ..p2p_attention.visualize import check_samples, token_grid, word_mask
from .common import Store, node_schema
from .messages import reported_by


class P2PAttentionMaps(io.ComfyNode):
    NODE_ID = "P2PAttentionMaps"
    DISPLAY_NAME = "P2P Attention Maps"

    @classmethod
    def define_schema(cls):
        return node_schema(
            cls,
            description=(
                "Shows which region each word controls, from the cross-attention recorded by P2P Apply during "
                "sampling. Connect the sampler's LATENT so it runs after sampling."
            ),
            inputs=[
                Store.Input("attention_store", tooltip="From P2P Apply."),
                io.Latent.Input("samples", tooltip="The sampler's output (sampled with P2P Apply's MODEL)."),
                io.Int.Input("prompt_index", default=0, min=0, max=63, tooltip="0 = the source prompt, k = edit k."),
                io.String.Input("words", default="cat",
                                tooltip="Words of that prompt for the MASK output, comma separated."),
                io.Float.Input("threshold", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="0: soft mask; above 0: binary mask at this share of the max."),
                io.Image.Input("image", optional=True,
                               tooltip="The decoded batch: maps are drawn over its item prompt_index."),
                io.Int.Input("vae_downscale", default=8, min=1, max=64, optional=True,
                             tooltip="Pixels per latent pixel, for the MASK size without an image."),
            ],
            outputs=[
                io.Image.Output(display_name="maps", tooltip="One cell per token of the chosen prompt: where that "
                                "word attends, token under it."),
                io.Mask.Output(display_name="mask", tooltip="The chosen words' attention region at image size "
                               "(soft, or binary above the threshold)."),
            ],
        )

    @classmethod
    def execute(cls, attention_store, samples, prompt_index, words, threshold, image=None,
                vae_downscale=8) -> io.NodeOutput:
        if image is not None:
            size = tuple(image.shape[1:3])
        else:
            h, w = samples["samples"].shape[-2:]
            size = (h * vae_downscale, w * vae_downscale)
        with reported_by(cls):
            check_samples(attention_store, samples)
            grid = token_grid(attention_store, prompt_index, image)
            mask = word_mask(attention_store, prompt_index, words, size, threshold)
        return io.NodeOutput(grid, mask)
