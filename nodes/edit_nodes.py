"""P2P Word Swap, P2P Refine, P2P Reweight, P2P Local Blend and P2P Apply."""

from comfy_api.v0_0_2 import io

from ..p2p_attention.apply import apply_edit
from ..p2p_attention.blend import make_blend
from ..p2p_attention.edits import make_plan, with_blend
from ..p2p_attention.joint_injection import STRUCTURES, VALUES
from ..p2p_attention.unet_install import DEFAULT_MAP_DOWNSAMPLE, SELF_MIN_DOWNSAMPLE_AUTO
from ..p2p_attention.widget_text import ATTENTION_PATHS
from .common import Edit, Inversion, Prompts, Store, node_schema
from .messages import explainer, reported_by, ui_text


def _prompts():
    return Prompts.Input("prompts", tooltip="From P2P Prompt Pair.")


def _edit_in():
    return Edit.Input("edit", optional=True, tooltip="Optional edit to stack on (e.g. Reweight on a Word Swap).")


def _cross():
    return io.String.Input(
        "cross_replace", default="0.8",
        tooltip="Share of steps during which the edit's cross-attention maps come from the source: "
        "'0.8' (first 80%), '0.1-0.8' (a window) or per word 'default: 0.8, dog: 0.4'. The last node of "
        "a stack sets the windows.",
    )


def _self():
    return io.String.Input(
        "self_replace", default="0.4",
        tooltip="Share of steps during which the edit's self-attention maps come from the source "
        "('0.4' or '0.1-0.4'); keeps the layout. Only at small maps (see P2P Apply). 0 turns it off.",
    )


def _edit_out(tooltip="An edit plan: connect to P2P Apply, or stack another control on it."):
    return Edit.Output(display_name="edit", tooltip=tooltip)


class _EditNode(io.ComfyNode):
    """Word Swap and Refine (Reweight adds its weights): one edit plan from the engine."""

    NODE_ID = None
    DISPLAY_NAME = None
    DESCRIPTION_TEXT = None
    MODE = None

    @classmethod
    def edit_inputs(cls):
        return [_prompts(), _cross(), _self(), _edit_in()]

    @classmethod
    def define_schema(cls):
        return node_schema(
            cls,
            description=cls.DESCRIPTION_TEXT,
            inputs=cls.edit_inputs(),
            outputs=[_edit_out()],
        )

    @classmethod
    def execute(cls, prompts, cross_replace, self_replace, edit=None, weights="") -> io.NodeOutput:
        with reported_by(cls) as warnings:
            plan = make_plan(prompts, edit, cls.MODE, cross_replace, self_replace, weights)
            return io.NodeOutput(plan, ui=ui_text(warnings))


class P2PWordSwap(_EditNode):
    NODE_ID = "P2PWordSwap"
    DISPLAY_NAME = "P2P Word Swap"
    MODE = "swap"
    DESCRIPTION_TEXT = (
        "Replace words (e.g. cat -> dog): each edit prompt must have as many words as the source. The edit "
        "takes the source's cross-attention maps, so the layout stays. For added or removed words use P2P Refine."
    )


class P2PRefine(_EditNode):
    NODE_ID = "P2PRefine"
    DISPLAY_NAME = "P2P Refine"
    MODE = "refine"
    DESCRIPTION_TEXT = (
        "Add or remove words (e.g. 'a cake' -> 'a chocolate cake'): tokens shared with the source keep the "
        "source's maps (aligned by global alignment), new tokens attend on their own."
    )


class P2PReweight(_EditNode):
    NODE_ID = "P2PReweight"
    DISPLAY_NAME = "P2P Reweight"
    MODE = None
    DESCRIPTION_TEXT = (
        "Turn words up or down (e.g. 'fluffy: 3, red: -1') in every edit prompt that contains them, by "
        "scaling their cross-attention. Alone it edits the source's maps (use the same prompt as edit); "
        "stacked on a Word Swap or Refine it scales that edit's maps."
    )

    @classmethod
    def edit_inputs(cls):
        weights = io.String.Input(
            "weights", default="fluffy: 2.0", multiline=True,
            tooltip="word: weight pairs, comma or newline separated; negative weights allowed.",
        )
        return [_prompts(), weights, _cross(), _self(), _edit_in()]


class P2PApply(io.ComfyNode):
    NODE_ID = "P2PApply"
    DISPLAY_NAME = "P2P Apply"

    @classmethod
    def define_schema(cls):
        return node_schema(
            cls,
            description=(
                "Patches a copy of the MODEL with the edit (the input MODEL is untouched). Sample it with any "
                "stock sampler node, the Prompt Pair's conditioning as positive and a P2P Latent Batch: item 0 "
                "is the source image, items 1..N the edits."
            ),
            inputs=[
                io.Model.Input("model", tooltip="An SD1.x, SD2.x, SDXL, Flux.1 or SD3/SD3.5 model."),
                Edit.Input("edit", tooltip="From P2P Word Swap / Refine / Reweight (stacked or not)."),
                io.Int.Input(
                    "self_attn_min_downsample", default=SELF_MIN_DOWNSAMPLE_AUTO, min=0, max=64, optional=True,
                    tooltip="UNet models: self-attention is injected only at layers at least this many times smaller than "
                    "the latent. 0 = auto, as the official notebooks: 4 for generated images (16x16 maps at "
                    "512 px for SD1.x, 32x32 at 1024 px for SDXL), 2 with an inversion (32x32 at 512 px). "
                    "Lower it to keep more of the source's layout.",
                ),
                io.Int.Input(
                    "map_downsample", default=DEFAULT_MAP_DOWNSAMPLE, min=1, max=64, optional=True,
                    tooltip="UNet models: resolution of the attention store and local blend, as a factor of the latent "
                    "(4 = 16x16 maps at 512 px SD1.x, 32x32 at 1024 px SDXL); the nearest level the UNet has "
                    "is used.",
                ),
                Inversion.Input(
                    "inversion", optional=True,
                    tooltip="From P2P Invert, to edit a real image. Sample with KSamplerAdvanced (add_noise "
                    "disabled) or SamplerCustom (add_noise off) with sampler ddim, scheduler ddim_uniform and "
                    "the inversion's steps, on P2P Invert's LATENT through P2P Latent Batch.",
                ),
                io.String.Input(
                    "self_blocks", default="auto", optional=True,
                    tooltip="Flux / SD3 only: the blocks where self_replace injects the source (mmdit_structure). "
                    "auto = every block (values_outside_edit, image_qk); for self_maps Flux's single blocks 20-37 "
                    "(where RF-Solver-Edit and FireFlow inject the source) and every joint block on SD3; or e.g. "
                    "'single 20-37, double 0-18', 'all', 'none'.",
                ),
                io.Combo.Input(
                    "mmdit_structure", options=list(STRUCTURES), default=VALUES, optional=True,
                    tooltip="Flux / SD3 only: what the edit takes from the source during self_replace. "
                    "values_outside_edit (measured best): the source's image values outside the edited words' "
                    "region (Local Blend's words when stacked, else the changed words), so the rest of the image "
                    "stays; image_qk: the source's image queries and keys everywhere (Shin et al. 2025); "
                    "self_maps: the source's image-to-image attention maps (as on a UNet).",
                ),
                io.Combo.Input(
                    "attention_path", options=list(ATTENTION_PATHS), default="fast", optional=True,
                    tooltip="fast: memory-efficient attention, no map materialised. reference: materialises "
                    "every edited map as in the paper (slow; for checking).",
                ),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The patched model."),
                Store.Output(display_name="attention_store",
                             tooltip="Cross-attention maps recorded while sampling (for P2P Attention Maps)."),
            ],
        )

    @classmethod
    def execute(cls, model, edit, self_attn_min_downsample=SELF_MIN_DOWNSAMPLE_AUTO,
                map_downsample=DEFAULT_MAP_DOWNSAMPLE, attention_path="fast", inversion=None,
                self_blocks="auto", mmdit_structure=VALUES) -> io.NodeOutput:
        with reported_by(cls) as warnings:
            patched, runtime = apply_edit(
                model, edit, attention_path=attention_path, self_attn_min_downsample=self_attn_min_downsample,
                map_downsample=map_downsample, inversion=inversion, explain=explainer(cls), self_blocks=self_blocks,
                mmdit_structure=mmdit_structure,
            )
            return io.NodeOutput(patched, runtime.store, ui=ui_text(warnings))


class P2PLocalBlend(io.ComfyNode):
    NODE_ID = "P2PLocalBlend"
    DISPLAY_NAME = "P2P Local Blend"

    @classmethod
    def define_schema(cls):
        return node_schema(
            cls,
            description=(
                "Keeps everything outside the edited words' region equal to the source: the region is where "
                "the words' cross-attention (source's or edit's) exceeds the threshold. Stacks with Word Swap, "
                "Refine and Reweight; alone it only blends."
            ),
            inputs=[
                _prompts(),
                io.String.Input("words", default="cat, dog",
                                tooltip="Words whose region may change, comma separated; each is looked up in "
                                "every prompt that has it (e.g. 'cat, dog' for cat -> dog)."),
                io.String.Input("subtract", default="", tooltip="Words whose region must stay as the source."),
                io.Float.Input("threshold", default=0.3, min=0.0, max=1.0, step=0.01,
                               tooltip="Share of the map's maximum above which a pixel is edited."),
                io.Float.Input("subtract_threshold", default=0.3, min=0.0, max=1.0, step=0.01,
                               tooltip="The same for the subtract words."),
                io.Float.Input("start_blend", default=0.2, min=0.0, max=1.0, step=0.01,
                               tooltip="Share of steps before blending starts (maps settle first)."),
                io.Int.Input("dilation", default=1, min=0, max=8,
                             tooltip="Max-pool radius in map pixels (1 = the official 3x3)."),
                _edit_in(),
            ],
            outputs=[_edit_out("The edit with local blend: connect to P2P Apply or stack more controls.")],
        )

    @classmethod
    def execute(cls, prompts, words, subtract, threshold, subtract_threshold, start_blend, dilation,
                edit=None) -> io.NodeOutput:
        with reported_by(cls) as warnings:
            spec = make_blend(prompts, words, subtract, threshold, subtract_threshold, start_blend, dilation)
            return io.NodeOutput(with_blend(edit, prompts, spec), ui=ui_text(warnings))
