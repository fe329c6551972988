"""P2P Word Swap, P2P Refine, P2P Reweight and P2P Apply."""

from ..p2p_attention.blend import make_blend
from ..p2p_attention.edits import make_plan, with_blend
from ..p2p_attention.patch import DEFAULT_MAP_DOWNSAMPLE, SELF_MIN_DOWNSAMPLE_AUTO, apply_edit

CATEGORY = "prompt_to_prompt"

_PROMPTS = ("P2P_PROMPTS", {"tooltip": "From P2P Prompt Pair."})
_EDIT_IN = ("P2P_EDIT", {"tooltip": "Optional edit to stack on (e.g. Reweight on a Word Swap)."})
_CROSS = (
    "STRING",
    {
        "default": "0.8",
        "tooltip": "Share of steps during which the edit's cross-attention maps come from the source: "
        "'0.8' (first 80%), '0.1-0.8' (a window) or per word 'default: 0.8, dog: 0.4'. The last node of "
        "a stack sets the windows.",
    },
)
_SELF = (
    "STRING",
    {
        "default": "0.4",
        "tooltip": "Share of steps during which the edit's self-attention maps come from the source "
        "('0.4' or '0.1-0.4'); keeps the layout. Only at small maps (see P2P Apply). 0 turns it off.",
    },
)


class _EditNode:
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = ("P2P_EDIT",)
    RETURN_NAMES = ("edit",)
    OUTPUT_TOOLTIPS = ("An edit plan: connect to P2P Apply, or stack another control on it.",)
    MODE = None

    @classmethod
    def INPUT_TYPES(cls):  # Word Swap and Refine; Reweight adds its weights
        return {
            "required": {"prompts": _PROMPTS, "cross_replace": _CROSS, "self_replace": _SELF},
            "optional": {"edit": _EDIT_IN},
        }

    def build(self, prompts, cross_replace, self_replace, edit=None, weights=""):
        plan = make_plan(self.DISPLAY_NAME, prompts, edit, self.MODE, cross_replace, self_replace, weights)
        return (plan,)


class P2PWordSwap(_EditNode):
    NODE_ID = "P2PWordSwap"
    DISPLAY_NAME = "P2P Word Swap"
    MODE = "swap"
    DESCRIPTION = (
        "Replace words (e.g. cat -> dog): each edit prompt must have as many words as the source. The edit "
        "takes the source's cross-attention maps, so the layout stays. For added or removed words use P2P Refine."
    )


class P2PRefine(_EditNode):
    NODE_ID = "P2PRefine"
    DISPLAY_NAME = "P2P Refine"
    MODE = "refine"
    DESCRIPTION = (
        "Add or remove words (e.g. 'a cake' -> 'a chocolate cake'): tokens shared with the source keep the "
        "source's maps (aligned by global alignment), new tokens attend on their own."
    )


class P2PReweight(_EditNode):
    NODE_ID = "P2PReweight"
    DISPLAY_NAME = "P2P Reweight"
    MODE = None
    DESCRIPTION = (
        "Turn words up or down (e.g. 'fluffy: 3, red: -1') in every edit prompt that contains them, by "
        "scaling their cross-attention. Alone it edits the source's maps (use the same prompt as edit); "
        "stacked on a Word Swap or Refine it scales that edit's maps."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "prompts": _PROMPTS,
                "weights": (
                    "STRING",
                    {"default": "fluffy: 2.0", "multiline": True,
                     "tooltip": "word: weight pairs, comma or newline separated; negative weights allowed."},
                ),
                "cross_replace": _CROSS,
                "self_replace": _SELF,
            },
            "optional": {"edit": _EDIT_IN},
        }


class P2PApply:
    NODE_ID = "P2PApply"
    DISPLAY_NAME = "P2P Apply"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Patches a copy of the MODEL with the edit (the input MODEL is untouched). Sample it with any stock "
        "sampler node, the Prompt Pair's conditioning as positive and a P2P Latent Batch: item 0 is the "
        "source image, items 1..N the edits."
    )
    FUNCTION = "apply"
    RETURN_TYPES = ("MODEL", "P2P_STORE")
    RETURN_NAMES = ("model", "attention_store")
    OUTPUT_TOOLTIPS = (
        "The patched model.",
        "Cross-attention maps recorded while sampling (for P2P Attention Maps).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "An SD1.x, SD2.x or SDXL model."}),
                "edit": ("P2P_EDIT", {"tooltip": "From P2P Word Swap / Refine / Reweight (stacked or not)."}),
            },
            "optional": {
                "self_attn_min_downsample": (
                    "INT",
                    {"default": SELF_MIN_DOWNSAMPLE_AUTO, "min": 0, "max": 64,
                     "tooltip": "Self-attention is injected only at layers at least this many times smaller "
                     "than the latent. 0 = auto, as the official notebooks: 4 for generated images (16x16 "
                     "maps at 512 px for SD1.x, 32x32 at 1024 px for SDXL), 2 with an inversion (32x32 at "
                     "512 px). Lower it to keep more of the source's layout."},
                ),
                "map_downsample": (
                    "INT",
                    {"default": DEFAULT_MAP_DOWNSAMPLE, "min": 1, "max": 64,
                     "tooltip": "Resolution of the attention store and local blend, as a factor of the latent "
                     "(4 = 16x16 maps at 512 px SD1.x, 32x32 at 1024 px SDXL); the nearest level the UNet has "
                     "is used."},
                ),
                "inversion": (
                    "P2P_INVERSION",
                    {"tooltip": "From P2P Invert, to edit a real image. Sample with KSamplerAdvanced "
                     "(add_noise disabled) or SamplerCustom (add_noise off) with sampler ddim, scheduler "
                     "ddim_uniform and the inversion's steps, on P2P Invert's LATENT through P2P Latent Batch."},
                ),
                "attention_path": (
                    ["fast", "reference"],
                    {"default": "fast",
                     "tooltip": "fast: memory-efficient attention, no map materialised. reference: "
                     "materialises every edited map as in the paper (slow; for checking)."},
                ),
            },
        }

    def apply(self, model, edit, self_attn_min_downsample=SELF_MIN_DOWNSAMPLE_AUTO,
              map_downsample=DEFAULT_MAP_DOWNSAMPLE, attention_path="fast", inversion=None):
        patched, runtime = apply_edit(
            model, edit, reference=attention_path == "reference", self_min_downsample=self_attn_min_downsample,
            map_downsample=map_downsample, inversion=inversion, node=self.DISPLAY_NAME,
        )
        return (patched, runtime.store)


class P2PLocalBlend:
    NODE_ID = "P2PLocalBlend"
    DISPLAY_NAME = "P2P Local Blend"
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = ("P2P_EDIT",)
    RETURN_NAMES = ("edit",)
    OUTPUT_TOOLTIPS = ("The edit with local blend: connect to P2P Apply or stack more controls.",)
    DESCRIPTION = (
        "Keeps everything outside the edited words' region equal to the source: the region is where the "
        "words' cross-attention (source's or edit's) exceeds the threshold. Stacks with Word Swap, Refine "
        "and Reweight; alone it only blends."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "prompts": _PROMPTS,
                "words": ("STRING", {"default": "cat, dog",
                                     "tooltip": "Words whose region may change, comma separated; each is "
                                     "looked up in every prompt that has it (e.g. 'cat, dog' for cat -> dog)."}),
                "subtract": ("STRING", {"default": "", "tooltip": "Words whose region must stay as the source."}),
                "threshold": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.01,
                                        "tooltip": "Share of the map's maximum above which a pixel is edited."}),
                "subtract_threshold": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.01,
                                                 "tooltip": "The same for the subtract words."}),
                "start_blend": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 1.0, "step": 0.01,
                                          "tooltip": "Share of steps before blending starts (maps settle first)."}),
                "dilation": ("INT", {"default": 1, "min": 0, "max": 8,
                                     "tooltip": "Max-pool radius in map pixels (1 = the official 3x3)."}),
            },
            "optional": {"edit": _EDIT_IN},
        }

    def build(self, prompts, words, subtract, threshold, subtract_threshold, start_blend, dilation, edit=None):
        spec = make_blend(self.DISPLAY_NAME, prompts, words, subtract, threshold, subtract_threshold,
                          start_blend, dilation)
        return (with_blend(self.DISPLAY_NAME, edit, prompts, spec),)
