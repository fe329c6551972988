"""Writes the pack's example workflows from one description, in both of ComfyUI's formats.

* `workflows/<name>.json`: the UI format, i.e. what ComfyUI's frontend saves and loads by drag
  and drop (nodes with their sockets, widget inputs and `widgets_values` in the frontend's widget
  order, links, a Markdown note). ComfyUI's template browser lists these files
  (`GET /workflow_templates`, folder `workflows/`).
* `workflows/api/<name>.json`: the API format of the same graph (what `POST /prompt` takes and
  the frontend's "Export (API)" writes), used by the server tests.

Each template kind is written twice from one function: on the pack's demo model (`p2p_demo*`, runs as
it is: P2P Demo Model as the loader, its latent size, captions in its words) and on a checkpoint
(`p2p_sd15_*`, `p2p_sdxl_*`), the same graph. The families ComfyUI's examples load from separate files
(Chroma, Z-Image, Qwen-Image, Flux.2 klein, Flux.2 dev, Lumina 2: `p2p_dit_*`) have one template each, on UNETLoader, CLIPLoader and
VAELoader, sampled as ComfyUI's own template of the family samples, and no demo twin. The thumbnails `workflows/<name>.jpg` are drawn by `make demo` (scripts/demo.py) from
runs of the demo templates (a template without a demo twin gets a card in words), not here.

Widget order follows ComfyUI frontend 1.32.x and 1.49.x (comfyui-frontend-package, see
src/services/litegraphService.ts `#addInputs` and useIntWidget.ts): sockets first, then one widget
per primitive/COMBO input in `/object_info`'s `input_order` (required, then optional); an INT with
`control_after_generate` (or named seed / noise_seed) gets a second value ("fixed", "randomize",
...) right after it; a COMBO with `image_upload` gets a trailing upload button value "image".

tests/graphs/test_workflows.py checks the result independently (UI -> API converter, runs on the real
server, template listing) and tests/browser/test_browser.py loads every file in the real frontend.

Usage (from the repository root):
    .venv/bin/python workflows/build_workflows.py            # node defs from a test ComfyUI server
    .venv/bin/python workflows/build_workflows.py --object-info object_info.json
    .venv/bin/python workflows/build_workflows.py --check    # exit 1 if a file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SD15_CKPT = "v1-5-pruned-emaonly.safetensors"
SDXL_CKPT = "sd_xl_base_1.0.safetensors"
# The single-file checkpoints of ComfyUI's own examples (comfyanonymous.github.io/ComfyUI_examples: flux,
# sd3): model, text encoders and VAE in one file, for CheckpointLoaderSimple.
FLUX_CKPT = "flux1-dev-fp8.safetensors"
SD35_CKPT = "sd3.5_large_fp8_scaled.safetensors"
PRIMITIVE_WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
VIRTUAL_NODES = {"Note", "MarkdownNote"}  # frontend-only: no /object_info entry, not in the API format


# --------------------------------------------------------------------------- node definitions


def ordered_inputs(node_def: dict) -> list[tuple[str, list, bool]]:
    """(name, spec, optional) in the order the frontend creates them (input_order, then the rest)."""
    out = []
    inputs = node_def.get("input", {})
    order = node_def.get("input_order", {})
    for section in ("required", "optional"):
        specs = inputs.get(section, {}) or {}
        names = list(order.get(section, [])) + [n for n in specs if n not in order.get(section, [])]
        for name in names:
            if name in specs:
                out.append((name, specs[name], section == "optional"))
    return out


def _input_type(spec: list) -> str:
    t = spec[0]
    return "COMBO" if isinstance(t, list) else str(t)


def _opts(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def unlisted_outputs(node_def: dict, output_links: list) -> bool:
    """True when the file lists none of the node's outputs: an output node (SaveImage,
    PreviewImage...) none of whose outputs is linked. The save nodes have an IMAGE output since
    ComfyUI 0.25.0 and none in 0.3.75; a file with `"outputs": []` loads cleanly in both frontends
    (1.49.6 adds the socket back, 1.32.9 has none), so the files are the same whichever ComfyUI's
    /object_info they are written from."""
    return bool(node_def.get("output_node")) and not any(output_links)


def is_widget(spec: list) -> bool:
    return _input_type(spec) in PRIMITIVE_WIDGET_TYPES and not _opts(spec).get("forceInput")


def widget_slots(node_def: dict) -> list[tuple[str, str | None]]:
    """The node's widgets in `widgets_values` order: (kind, input name); kind is "input",
    "control_after_generate" (of the preceding INT/COMBO) or "upload"."""
    slots: list[tuple[str, str | None]] = []
    upload = False
    for name, spec, _ in ordered_inputs(node_def):
        if not is_widget(spec):
            continue
        slots.append(("input", name))
        opts = _opts(spec)
        control = opts.get("control_after_generate")
        if control is None and _input_type(spec) == "INT":
            control = name in ("seed", "noise_seed")
        if control:
            slots.append(("control_after_generate", name))
        upload = upload or any(opts.get(f) for f in UPLOAD_FLAGS)
    if upload:
        slots.append(("upload", None))
    return slots


# --------------------------------------------------------------------------- description


@dataclass
class Out:
    node: WNode
    slot: int


@dataclass
class WNode:
    id: int
    type: str
    pos: tuple[float, float]
    size: tuple[float, float]
    values: dict[str, Any]
    title: str | None = None
    control: str = "fixed"  # control_after_generate of a seed widget

    def __getitem__(self, slot: int) -> Out:
        return Out(self, slot)


# Layout: (x, width) of each column. A node's title bar (30 px) sits above `pos`, hence the gap.
# Both frontends open a template (and a dropped file without `extra.ds`) with fitView: the graph's
# bounds fill 75% of the canvas, so a graph of W x H px opens at scale min(0.75 cw / W, 0.75 ch / H).
# The four-column templates (1430 x 760 px) open at >= 0.8 on a 1600x1000 canvas, the five-column
# ones (1740 x 850 px) on a full-HD browser window (1920x960 canvas); tests/browser/test_browser.py checks it.
COLUMNS_4 = {0: (0, 360), 1: (390, 340), 2: (760, 320), 3: (1110, 300)}
COLUMNS_5 = {0: (0, 340), 1: (370, 320), 2: (720, 320), 3: (1070, 300), 4: (1400, 320)}
# The flow-model real-image templates have a sixth column (the composite that keeps the photo's pixels outside
# the edited region): narrower columns keep them within the five-column width.
COLUMNS_6 = {0: (0, 360), 1: (385, 255), 2: (665, 255), 3: (945, 255), 4: (1225, 255), 5: (1505, 255)}
ROW_GAP = 50


@dataclass
class Workflow:
    name: str
    arch: str  # "sd1" | "sdxl" | "flux" | "sd35" | "chroma" | "zimage" | "qwen_image" | "flux2_klein" |
    # "flux2_dev" | "lumina2": the tiny
    # test model that replaces its loaders in tests; "demo": runs as is
    title: str  # what it shows, in a few words (its thumbnail's heading)
    labels: list[str]  # caption of each image of its main SaveImage, source first (thumbnail)
    twin: str | None = None  # a checkpoint template's demo-model twin: the same graph, which draws its thumbnail
    columns: dict[int, tuple[float, float]] = field(default_factory=lambda: dict(COLUMNS_4))
    nodes: list[WNode] = field(default_factory=list)

    _column_y: dict[int, float] = field(default_factory=dict)

    def add(self, type_: str, col: int, height: float, /, _title: str | None = None, **values) -> WNode:
        """A node at the bottom of layout column `col` (left to right); `values` are its inputs:
        widget values, or `other_node[output_index]` for links."""
        x, width = self.columns[col]
        y = self._column_y.get(col, 30)
        self._column_y[col] = y + height + ROW_GAP
        n = WNode(len(self.nodes) + 1, type_, (x, y), (width, height), values, _title)
        self.nodes.append(n)
        return n

    def note(self, height: float, *paragraphs: str) -> WNode:
        """The "Read me" MarkdownNote, top left. One line per paragraph (or list item): both
        frontends' markdown renderer drops the line break of a hard-wrapped paragraph and glues
        the words on either side together."""
        return self.add("MarkdownNote", 0, height, _title="Read me", text="\n\n".join(paragraphs))


# --------------------------------------------------------------------------- the models


SAMPLER = dict(seed=8888, steps=50, cfg=7.5, sampler_name="ddim", scheduler="ddim_uniform", denoise=1.0)
INVERSION = dict(method="direct", steps=50, guidance=7.5, inner_iterations=10)


@dataclass(frozen=True)
class Model:
    """What a template runs on: a checkpoint the user has, or the pack's embedded demo model."""

    key: str  # "demo" | "demo_flux" | "sd15" | "sdxl" | "flux" | "sd35" | "chroma" | "zimage" | "qwen_image" |
    # "flux2_klein" | "flux2_dev" | "lumina2":
    # its column of NAMES
    arch: str  # Workflow.arch: "demo" for the demo models, else the tiny test model standing in for it
    label: str  # in the note's title
    ckpt: str | None  # CheckpointLoaderSimple's file (UNETLoader's where `clip` is set); None: P2P Demo Model
    latent_px: int  # EmptyLatentImage width and height
    image_px: int  # the real-image template resizes the photo to this
    vae_downscale: int
    sampler: dict
    inversion: dict  # P2P Invert's settings; the real-image sampler matches its steps and guidance
    self_replace: str
    apply: dict  # P2P Apply on a generated image
    apply_inverted: dict  # P2P Apply with an inversion (self injection one level further, as the official notebook)
    demo_loader: str = "P2PDemoModel"  # the loader node when ckpt is None
    latent_node: str = "EmptyLatentImage"  # MM-DiT: EmptySD3LatentImage (16 channels), as ComfyUI's examples
    flux_guidance: float | None = None  # Flux.1 dev: FluxGuidance on the positive (cfg 1: no uncond pass)
    flow: bool = False  # flow matching (Flux.1, SD3): inversion and its sampling on euler / simple
    # The families ComfyUI's examples load from separate files (Chroma, Z-Image, Qwen-Image): UNETLoader (the
    # diffusion model: `ckpt`), CLIPLoader (file, type) and VAELoader instead of CheckpointLoaderSimple;
    # aura_shift: ModelSamplingAuraFlow's shift on the model, as their examples
    clip: tuple[str, str] | None = None
    vae: str | None = None
    aura_shift: float | None = None
    t5_options: tuple[int, int] | None = None  # T5TokenizerOptions (min_padding, min_length) on the CLIP
    negative: str = ""  # the negative prompt's text
    # Lumina 2: a key of CLIP Text Encode (Lumina 2)'s system prompts. That node encodes the negative; the Prompt
    # Pair's source is written as the node writes a prompt, "<system prompt> <Prompt Start> <prompt>" (the edits
    # take the source's, spiece_tokens.shared_system_prompt)
    system_prompt: str | None = None
    zero_negative: bool = False  # the negative is ConditioningZeroOut of the positive (a distilled model at cfg 1)
    # SamplerCustomAdvanced with CFGGuider, KSamplerSelect, RandomNoise and this scheduler node (width, height,
    # steps) instead of KSampler: Flux.2's resolution-dependent schedule (Flux2Scheduler) has no KSampler twin
    custom_scheduler: str | None = None
    # with custom_scheduler: "BasicGuider" (a guidance-distilled model at cfg 1, FluxGuidance on the positive: no
    # negative prompt, as ComfyUI's Flux.2 dev example) instead of CFGGuider
    guider: str = "CFGGuider"
    note: str = ""  # the family's paragraph in the template's note


SD15 = Model("sd15", "sd1", "SD1.5", SD15_CKPT, 512, 512, 8, SAMPLER, INVERSION, "0.4",
             dict(self_attn_min_downsample=4, map_downsample=4), dict(self_attn_min_downsample=2, map_downsample=4))
SDXL = Model("sdxl", "sdxl", "SDXL", SDXL_CKPT, 1024, 1024, 8, SAMPLER, INVERSION, "0.4",
             dict(self_attn_min_downsample=4, map_downsample=4), dict(self_attn_min_downsample=2, map_downsample=4))
# The demo model (nodes/demo_nodes.py): a 2x VAE, so 128 px latents are its 16x16 latent and 32 px images;
# the settings of `make demo` (scripts/demo.py): 20 ddim steps at cfg 5, self injection and maps at 8x8.
DEMO = Model("demo", "demo", "demo model", None, 128, 32, 2,
             dict(seed=7, steps=20, cfg=5.0, sampler_name="ddim", scheduler="ddim_uniform", denoise=1.0),
             dict(method="direct", steps=20, guidance=5.0, inner_iterations=10), "0.6",
             dict(self_attn_min_downsample=1, map_downsample=2), dict(self_attn_min_downsample=1, map_downsample=2))

# MM-DiT (P2P Apply's measured defaults, docs/mmdit_controls.md: mmdit_structure values_outside_edit in every
# block, self_blocks "auto"; the UNet-only downsample inputs stay at their defaults). Flux.1 dev as ComfyUI's
# example: 20 euler / simple steps, cfg 1, FluxGuidance 3.5; SD3.5 Large: 28 euler / sgm_uniform steps, cfg 4.5
# (its checkpoint sets shift 3).
DIT_APPLY = dict(self_attn_min_downsample=0, map_downsample=4, self_blocks="auto", mmdit_structure="values_outside_edit")
FLUX = Model("flux", "flux", "Flux.1 dev", FLUX_CKPT, 1024, 1024, 8,
             dict(seed=8888, steps=20, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0),
             dict(method="direct", steps=20, guidance=1.0, inner_iterations=10), "0.4", DIT_APPLY, DIT_APPLY,
             latent_node="EmptySD3LatentImage", flux_guidance=3.5, flow=True)
SD35 = Model("sd35", "sd35", "SD3.5 Large", SD35_CKPT, 1024, 1024, 8,
             dict(seed=8888, steps=28, cfg=4.5, sampler_name="euler", scheduler="sgm_uniform", denoise=1.0),
             dict(method="direct", steps=28, guidance=4.5, inner_iterations=10), "0.4", DIT_APPLY, DIT_APPLY,
             latent_node="EmptySD3LatentImage", flow=True)
# The MM-DiT demo (P2P Demo Flux Model, a tiny Flux.1-schnell): a 4x VAE, so 64 px latents are its 8x8
# latent and 32 px images; training/dit_eval.py's settings (20 euler / simple steps, cfg 4) and the MM-DiT
# defaults. It has no guidance embedding: its FluxGuidance node (the checkpoint twin's graph) is inert.
DEMO_FLUX = Model("demo_flux", "demo", "Flux demo model", None, 64, 32, 4,
                  dict(seed=7, steps=20, cfg=4.0, sampler_name="euler", scheduler="simple", denoise=1.0),
                  dict(method="direct", steps=20, guidance=4.0, inner_iterations=10), "0.4", DIT_APPLY, DIT_APPLY,
                  demo_loader="P2PDemoFluxModel", latent_node="EmptySD3LatentImage", flux_guidance=3.5, flow=True)

# The families with separate model files, as ComfyUI's own templates (the comfyui-workflow-templates package that
# ComfyUI 0.33.0 installs: image_chroma_text_to_image, image_z_image_turbo, image_qwen_image,
# image_flux2_klein_text_to_image, image_flux2_text_to_image) load and sample them: their file names, CLIPLoader types, shifts, steps, cfg,
# samplers, schedulers and negatives. Where a template differs from its example, the note says why (docs/workflows.md
# has the table). No demo model of these families: their templates have no demo twin.
# Chroma's example: SamplerCustomAdvanced with CFGGuider 3.5, KSamplerSelect euler, BasicScheduler beta 26 steps
# and RandomNoise, which is what one KSampler (euler / beta, 26 steps, cfg 3.5) samples: the template keeps the
# KSampler of the other family templates.
CHROMA_NEGATIVE = ("This low quality greyscale unfinished sketch is inaccurate and flawed. The image is very blurred "
                   "and lacks detail with excessive chromatic aberrations and artifacts. The image is overly saturated "
                   "with excessive bloom. It has a toony aesthetic with bold outlines and flat colors.")
CHROMA = Model("chroma", "chroma", "Chroma", "Chroma1-HD-fp8mixed.safetensors", 1024, 1024, 8,
               dict(seed=8888, steps=26, cfg=3.5, sampler_name="euler", scheduler="beta", denoise=1.0),
               dict(method="direct", steps=26, guidance=3.5, inner_iterations=10), "0.4", DIT_APPLY, DIT_APPLY,
               latent_node="EmptySD3LatentImage", flow=True, clip=("t5xxl_fp8_e4m3fn_scaled.safetensors", "chroma"),
               vae="ae.safetensors", aura_shift=1.0, t5_options=(0, 0), negative=CHROMA_NEGATIVE,
               note="**On Chroma.** A Flux.1-schnell derivative without guidance distillation: real CFG (3.5) with "
                    "the negative prompt of ComfyUI's Chroma example; its T5 stream is aligned word by word with the "
                    "source. As that example: *T5 Tokenizer Options* 0 / 0 (no padding), shift 1, euler / beta, 26 "
                    "steps; its SamplerCustomAdvanced chain samples what this one *KSampler* does.")
ZIMAGE = Model("zimage", "zimage", "Z-Image Turbo", "z_image_turbo_bf16.safetensors", 1024, 1024, 8,
               dict(seed=8888, steps=8, cfg=1.0, sampler_name="res_multistep", scheduler="simple", denoise=1.0),
               dict(method="direct", steps=8, guidance=1.0, inner_iterations=10), "0.4", DIT_APPLY, DIT_APPLY,
               latent_node="EmptySD3LatentImage", flow=True, clip=("qwen_3_4b.safetensors", "lumina2"),
               vae="ae.safetensors", aura_shift=3.0, zero_negative=True,
               note="**On Z-Image.** One stream of text and image tokens (Qwen3 4B text encoder: CLIPLoader type "
                    "`lumina2`); Turbo is distilled: as ComfyUI's example, 8 `res_multistep` steps at cfg 1 and a "
                    "zeroed negative (never evaluated at cfg 1).")
QWEN_IMAGE = Model("qwen_image", "qwen_image", "Qwen-Image", "qwen_image_fp8_e4m3fn.safetensors", 1328, 1328, 8,
                   dict(seed=8888, steps=20, cfg=4.0, sampler_name="euler", scheduler="simple", denoise=1.0),
                   dict(method="direct", steps=20, guidance=4.0, inner_iterations=10), "0.4", DIT_APPLY, DIT_APPLY,
                   latent_node="EmptySD3LatentImage", flow=True,
                   clip=("qwen_2.5_vl_7b_fp8_scaled.safetensors", "qwen_image"), vae="qwen_image_vae.safetensors",
                   aura_shift=3.1,
                   note="**On Qwen-Image.** Text and image attend jointly (Qwen2.5-VL text encoder, its chat "
                        "template around each prompt); real CFG (4, 20 steps, as ComfyUI's example without its "
                        "Lightning LoRA) with a negative prompt.")
# Flux.2 klein as ComfyUI's example's default (its active subgraph): the 4B base model, Flux2Scheduler 20 steps,
# CFGGuider 5 with an empty negative, euler, EmptyFlux2LatentImage (128 channels, 16x). Needs ComfyUI 0.9.2 or newer
# (template_order.MIN_COMFYUI: the template browser of an older ComfyUI does not list it).
FLUX2_KLEIN = Model("flux2_klein", "flux2_klein", "Flux.2 klein 4B", "flux-2-klein-base-4b.safetensors", 1024, 1024,
                    16, dict(seed=8888, steps=20, cfg=5.0, sampler_name="euler"),
                    dict(method="direct", steps=20, guidance=5.0, inner_iterations=10), "0.4", DIT_APPLY, DIT_APPLY,
                    latent_node="EmptyFlux2LatentImage", flow=True, clip=("qwen_3_4b.safetensors", "flux2"),
                    vae="flux2-vae.safetensors", custom_scheduler="Flux2Scheduler",
                    note="**On Flux.2 klein.** Flux's double and single blocks with a Qwen3 4B text encoder (CLIPLoader "
                         "type `flux2`, its chat template around each prompt); the base model samples with real CFG "
                         "(5, 20 steps of *Flux2Scheduler*, as ComfyUI's example). For the distilled `flux-2-klein-4b`: "
                         "`steps` 4 in *Flux2Scheduler*, `cfg` 1 in *CFG Guider*. Needs ComfyUI 0.9.2 or newer (older ones do not list this template).")
# Flux.2 dev as ComfyUI's example (image_flux2_text_to_image, its Turbo LoRA off as by default): flux2_dev_fp8mixed,
# Mistral 3 Small (CLIPLoader type flux2), Flux2Scheduler 20 steps, FluxGuidance 4 with BasicGuider (guidance-distilled:
# cfg 1, no negative), euler, EmptyFlux2LatentImage. Its VAE: flux2-vae, the full one (ComfyUI's Flux.2 dev edit
# example's; the text-to-image example loads the small-decoder VAE). Runs on both ComfyUIs under test (0.3.75 has the
# Mistral text encoder and the Flux.2 nodes): no MIN_COMFYUI.
FLUX2_DEV = Model("flux2_dev", "flux2_dev", "Flux.2 dev", "flux2_dev_fp8mixed.safetensors", 1024, 1024, 16,
                  dict(seed=8888, steps=20, cfg=1.0, sampler_name="euler"),
                  dict(method="direct", steps=20, guidance=1.0, inner_iterations=10), "0.4", DIT_APPLY, DIT_APPLY,
                  latent_node="EmptyFlux2LatentImage", flux_guidance=4.0, flow=True,
                  clip=("mistral_3_small_flux2_bf16.safetensors", "flux2"), vae="flux2-vae.safetensors",
                  custom_scheduler="Flux2Scheduler", guider="BasicGuider",
                  note="**On Flux.2 dev.** Flux's double and single blocks with a Mistral 3 Small text encoder "
                       "(CLIPLoader type `flux2`); guidance-distilled: *FluxGuidance* 4 on the prompts and *Basic "
                       "Guider* (cfg 1, no negative prompt), 20 steps of *Flux2Scheduler*, as ComfyUI's example "
                       "(without its Turbo LoRA). The VAE is the full `flux2-vae` (ComfyUI's text-to-image example "
                       "loads a small-decoder one; the full VAE is the one its Flux.2 edit examples load).")
# Lumina 2 as ComfyUI's Lumina 2 example (comfyanonymous.github.io/ComfyUI_examples/lumina2; the
# comfyui-workflow-templates packages have no Lumina-Image 2.0 template, only the NetaYume fine-tune's): its split
# files (lumina_2_model_bf16, gemma_2_2b_fp16 as CLIPLoader type lumina2, ae), ModelSamplingAuraFlow shift 6,
# res_multistep / simple 25 steps at cfg 4 (real CFG), the "superior" system prompt before both prompts and the
# negative "blurry ugly bad". Runs on both ComfyUIs under test (both have the nodes and the Gemma 2 encoder).
LUMINA2_SYSTEM_PROMPTS = {  # CLIPTextEncodeLumina2.SYSTEM_PROMPT (comfy_extras/nodes_lumina2.py)
    "superior": "You are an assistant designed to generate superior images with the superior degree of image-text "
                "alignment based on textual prompts or user prompts.",
}
LUMINA2 = Model("lumina2", "lumina2", "Lumina 2", "lumina_2_model_bf16.safetensors", 1024, 1024, 8,
                dict(seed=8888, steps=25, cfg=4.0, sampler_name="res_multistep", scheduler="simple", denoise=1.0),
                dict(method="direct", steps=25, guidance=4.0, inner_iterations=10), "0.4", DIT_APPLY, DIT_APPLY,
                latent_node="EmptySD3LatentImage", flow=True, clip=("gemma_2_2b_fp16.safetensors", "lumina2"),
                vae="ae.safetensors", aura_shift=6.0, negative="blurry ugly bad", system_prompt="superior",
                note="**On Lumina 2.** One stream of text and image tokens (Gemma 2 2B text encoder: CLIPLoader type "
                     "`lumina2`); real CFG (4, 25 `res_multistep` steps, shift 6, as ComfyUI's example). Its prompts "
                     "carry a system prompt: write the source as *CLIP Text Encode (Lumina 2)* writes a prompt, "
                     "`<system prompt> <Prompt Start> <prompt>`; the edits take the source's. The negative goes "
                     "through that node with the same system prompt.")
SPLIT_MODELS = (CHROMA, ZIMAGE, QWEN_IMAGE, FLUX2_KLEIN, FLUX2_DEV, LUMINA2)

DEMO_A = "a big red circle on the left and a small blue square on the right"
DEMO_WORDS = ("a, big, small, red, green, blue, yellow, purple, white, circle, square, triangle, star, "
              "on the left, and, on the right, above")
DEMO_PHOTO = "p2p_demo_photo.png"  # drawn by scripts/demo.py into the input folder (make demo, make demo-ui)
DEMO_PHOTO_CAPTION = "a big yellow circle on the left and a big blue square on the right"
DEMO_PHOTO_EDIT = "a big yellow circle on the left and a big red square on the right"
REAL_IMAGE = "example.png"  # ships in every ComfyUI's input/ folder
REAL_SOURCE = "a drawing of a girl in a pink dress on a green hill"
REAL_EDITS = ("a drawing of a girl in a blue dress on a green hill\n"
              "a drawing of a girl in a red dress on a green hill")

HOW_IT_WORKS = (
    "**How it works.** *P2P Prompt Pair* encodes the source prompt and the edits (one per line); *P2P Latent "
    "Batch* gives every prompt the same noise; the edit nodes say which attention the edits share with the "
    "source; *P2P Apply* patches the model. The sampler then draws the source (item 0) and every edit in one batch."
)


def _dit_notes(model: Model) -> list[str]:
    """What an MM-DiT template's user needs to know beyond the UNet ones."""
    if model.key in ("flux", "demo_flux"):
        notes = ["**On Flux.** Text and image attend jointly: unchanged words keep the source's attention and, "
                 "during `self_replace`, the edit takes the source's image values outside the edited words' region "
                 "(P2P Apply's `mmdit_structure`). Flux.1 dev is guidance-distilled: cfg 1 with *FluxGuidance*."]
        if model.ckpt is None:
            notes.append("The demo model samples at cfg 4 and ignores *FluxGuidance* (kept: the graph is the Flux.1 "
                         "dev one).")
        return notes
    if model.key == "sd35":
        return ["**On SD3.5.** Its CLIP-L, CLIP-G and T5 token streams are each aligned word by word with the "
                "source; text and image attend jointly; new words keep their own attention, and during "
                "`self_replace` the edit takes the source's image values outside the new words' region in every "
                "joint block (P2P Apply's `mmdit_structure`). cfg 4.5 with a negative prompt, as ComfyUI's example."]
    if model.note:
        return [model.note]
    return []


def _model_note(model: Model, twin_of: str | None) -> str:
    if model.ckpt is None and model.demo_loader == "P2PDemoFluxModel":
        return (f"**Runs as is** on *P2P Demo Flux Model*, a tiny Flux trained on coloured shapes (32x32 images; "
                f"a 64x64 EmptySD3LatentImage is its 8x8 latent): press **Run**. Words it knows: {DEMO_WORDS}. "
                f"For Flux.1 dev: `{twin_of}`.")
    if model.ckpt is None:
        return (f"**Runs as is** on *P2P Demo Model*, the pack's tiny model trained on coloured shapes (32x32 "
                f"images; a 128x128 EmptyLatentImage is its 16x16 latent): press **Run**. The words it knows: "
                f"{DEMO_WORDS}. The same graph for a real checkpoint: `{twin_of}`.")
    if model.clip is not None:
        return (f"**Model files** (ComfyUI's {model.label} example): `{model.ckpt}` in *Load Diffusion Model*, "
                f"`{model.clip[0]}` in *Load CLIP* (type `{model.clip[1]}`), `{model.vae}` in *Load VAE*; "
                f"{model.latent_px}x{model.latent_px}. The pack's demo models have no {model.label} twin.")
    where = (f"**Checkpoint:** `{model.ckpt}` at {model.latent_px}x{model.latent_px} (any {model.label} "
             f"checkpoint")
    if model.key == "flux":
        where += ("; or a Flux.1 model of your own through UNETLoader, DualCLIPLoader (t5xxl + clip_l, type flux) "
                  "and VAELoader")
    if twin_of is None:
        return where + "). The pack's demo models have no SD3 twin: this one needs the checkpoint."
    return where + f"). Without one, `{twin_of}` runs the same graph on the pack's demo model."


@dataclass
class SplitLoader:
    """UNETLoader, CLIPLoader and VAELoader (and the family's ModelSamplingAuraFlow) as one loader: [0] the
    model, [1] the CLIP, [2] the VAE."""

    outs: tuple[Out, Out, Out]

    def __getitem__(self, slot: int) -> Out:
        return self.outs[slot]


LOADER_COLUMN = 9  # the split loaders' own layout column (COLUMNS_SPLIT)
# Six columns (the five-column templates' width): the note, the loaders, then the five-column layout's 1-4
COLUMNS_SPLIT = {0: COLUMNS_6[0], LOADER_COLUMN: COLUMNS_6[1], 1: COLUMNS_6[2], 2: COLUMNS_6[3], 3: COLUMNS_6[4],
                 4: COLUMNS_6[5]}


def _loader(wf: Workflow, model: Model) -> WNode | SplitLoader:
    if model.clip is not None:
        col = LOADER_COLUMN
        unet = wf.add("UNETLoader", col, 82, unet_name=model.ckpt, weight_dtype="default")
        clip = wf.add("CLIPLoader", col, 106, clip_name=model.clip[0], type=model.clip[1])[0]
        if model.t5_options is not None:
            # titled unlike either display name (0.33.0: "T5 Tokenizer Options", 0.3.75: its id): the API files carry
            # titles, and the frontend saves a title only where it differs from the node's own
            clip = wf.add("T5TokenizerOptions", col, 82, _title="T5 Tokenizer Options (no padding)", clip=clip, min_padding=model.t5_options[0],
                          min_length=model.t5_options[1])[0]
        vae = wf.add("VAELoader", col, 58, vae_name=model.vae)
        m = unet[0]
        if model.aura_shift is not None:
            m = wf.add("ModelSamplingAuraFlow", col, 58, model=m, shift=model.aura_shift)[0]
        return SplitLoader((m, clip, vae[0]))
    if model.ckpt is None:
        return wf.add(model.demo_loader, 0, 66)
    return wf.add("CheckpointLoaderSimple", 0, 98, ckpt_name=model.ckpt)


def _front(wf: Workflow, model: Model, source: str, edits: str) -> tuple[WNode, WNode, WNode, WNode]:
    """Loader, prompt pair, negative prompt, latent batch: columns 0-1 (the note is column 0's first node).
    Returns (loader, pair, negative, latent batch)."""
    loader = _loader(wf, model)
    if model.system_prompt is not None:
        source = f"{LUMINA2_SYSTEM_PROMPTS[model.system_prompt]} <Prompt Start> {source}"
    pair = wf.add("P2PPromptPair", 1, 200, clip=loader[1], source=source, edits=edits)
    if model.guider == "BasicGuider":  # guidance-distilled at cfg 1 (ComfyUI's Flux.2 dev example): no negative
        neg = None
    elif model.zero_negative:  # a distilled model at cfg 1 (ComfyUI's example): no negative prompt to write
        neg = wf.add("ConditioningZeroOut", 1, 26, _title="Negative: zeroed (cfg 1)", conditioning=pair[0])
    elif model.system_prompt is not None:  # the node writes the system prompt before the negative
        neg = wf.add("CLIPTextEncodeLumina2", 1, 130, _title="Negative prompt (all items)", clip=loader[1],
                     system_prompt=model.system_prompt, user_prompt=model.negative)
    else:
        neg = wf.add("CLIPTextEncode", 1, 100, _title="Negative prompt (all items)", text=model.negative,
                     clip=loader[1])
    empty = wf.add(model.latent_node, 1, 106, width=model.latent_px, height=model.latent_px, batch_size=1)
    batch = wf.add("P2PLatentBatch", 1, 46, latent=empty[0], prompts=pair[1])
    return loader, pair, neg, batch


# The demo models draw 32x32 images: enlarged (nearest-exact, so every pixel stays a sharp block) before a
# save or preview node, they are readable on the node and in the queue's previews.
DEMO_ENLARGE = 8


def _shown(wf: Workflow, model: Model, images: Out, col: int, scale: int = DEMO_ENLARGE) -> Out:
    """`images` as a save/preview node gets them: on a demo model, enlarged `scale` times."""
    if model.ckpt is not None:
        return images
    return wf.add("ImageScaleBy", col, 82, _title=f"Enlarge x{scale} (demo: 32 px images)", image=images,
                  upscale_method="nearest-exact", scale_by=float(scale))[0]


def _sample_and_save(wf: Workflow, model: Model, loader: WNode, pair: WNode, neg: WNode, batch: WNode,
                     edit: WNode, save_col: int = 3, save_height: float = 300) -> tuple[WNode, WNode, WNode]:
    apply = wf.add("P2PApply", 2, 146, model=loader[0], edit=edit[0], **model.apply, attention_path="fast")
    positive = pair[0]
    if model.flux_guidance is not None:
        positive = wf.add("FluxGuidance", 2, 58, conditioning=pair[0], guidance=model.flux_guidance)[0]
    if model.custom_scheduler is not None:  # ComfyUI's Flux.2 example: its own schedule, SamplerCustomAdvanced
        s = model.sampler
        col = LOADER_COLUMN  # the sampling setup under the loaders, the sampler beside the edit
        noise = wf.add("RandomNoise", col, 82, noise_seed=s["seed"])
        select = wf.add("KSamplerSelect", col, 58, sampler_name=s["sampler_name"])
        sigmas = wf.add(model.custom_scheduler, col, 106, steps=s["steps"], width=model.latent_px,
                        height=model.latent_px)
        # titled unlike "CFG Guider" (0.33.0) and "CFGGuider" (0.3.75), as T5TokenizerOptions; BasicGuider likewise
        if model.guider == "BasicGuider":
            guider = wf.add("BasicGuider", 3, 74, _title="Basic Guider (cfg 1)", model=apply[0], conditioning=positive)
        else:
            guider = wf.add("CFGGuider", 3, 98, _title="CFG Guider (real CFG)", model=apply[0], positive=positive,
                            negative=neg[0], cfg=s["cfg"])
        ks = wf.add("SamplerCustomAdvanced", 3, 126, noise=noise[0], guider=guider[0], sampler=select[0],
                    sigmas=sigmas[0], latent_image=batch[0])
    else:
        ks = wf.add("KSampler", 3, 262, model=apply[0], positive=positive, negative=neg[0],
                    latent_image=batch[0], **model.sampler)
    dec = wf.add("VAEDecode", 3, 46, samples=ks[0], vae=loader[2])
    shown = _shown(wf, model, dec[0], save_col)
    if model.ckpt is not None or save_col != 3:
        wf.add("SaveImage", save_col, save_height, _title="Source + edits", images=shown, filename_prefix=f"p2p/{wf.name}")
    else:  # the four-column demo templates: the enlarged images need less height than a checkpoint's
        wf.add("SaveImage", save_col, 220, _title="Source + edits", images=shown, filename_prefix=f"p2p/{wf.name}")
    return apply, ks, dec, shown


# The file names are all the template browser shows of a custom node pack's template (its card's title, cut
# after about 25 characters; frontend 1.32 also writes the name with spaces as its description), so they are
# short and say what the template does. Both frontends list a pack's templates in the server's order by default
# (1.32.9 sorts by date, which these have none of; 1.49.6's default sort keeps the order), and the pack serves
# them sorted by name (template_order.py): the demo ones first, numbered in reading order.
NAMES = {  # kind -> {Model.key: file name}
    "word_swap": {"demo": "p2p_demo1_word_swap", "sd15": "p2p_sd15_word_swap", "sdxl": "p2p_sdxl_word_swap"},
    "refine": {"demo": "p2p_demo2_refine", "sd15": "p2p_sd15_refine", "sd35": "p2p_sd35_refine"},
    "reweight": {"demo": "p2p_demo3_reweight", "sd15": "p2p_sd15_reweight"},
    "local_blend": {"demo": "p2p_demo4_local_blend", "sd15": "p2p_sd15_local_blend",
                    "demo_flux": "p2p_demo6_flux_blend", "flux": "p2p_flux_local_blend",
                    # after the demo ones by name (`p2p_chroma_*` would sort first); template_order.py lists them last
                    "chroma": "p2p_dit_chroma_blend", "zimage": "p2p_dit_zimage_blend",
                    "qwen_image": "p2p_dit_qwen_image_blend", "flux2_klein": "p2p_dit_flux2klein_blend",
                    "flux2_dev": "p2p_dit_flux2dev_blend", "lumina2": "p2p_dit_lumina2_blend"},
    "real_image": {"demo": "p2p_demo5_photo_edit", "sd15": "p2p_sd15_photo_edit",
                   "demo_flux": "p2p_demo7_flux_photo", "flux": "p2p_flux_photo_edit"},
}
TWINS = {"sd15": "demo", "sdxl": "demo", "flux": "demo_flux", "demo": "sd15", "demo_flux": "flux"}


def _name_and_twin(kind: str, model: Model) -> tuple[str, str | None, str | None]:
    """(file name, demo twin or None, the other one to mention in the note: a demo template's checkpoint twin,
    a checkpoint template's demo twin)."""
    names = NAMES[kind]
    other = names.get(TWINS.get(model.key, ""))
    return names[model.key], (other if model.ckpt is not None else None), other


# --------------------------------------------------------------------------- the templates


def word_swap(model: Model) -> Workflow:
    name, twin, other = _name_and_twin("word_swap", model)
    if model.ckpt is None:
        source = DEMO_A
        edits = ("a big green circle on the left and a small blue square on the right\n"
                 "a big red circle on the left and a small yellow square on the right")
        labels = ["source", "red -> green", "blue -> yellow"]
        what = ("Recolours one shape per edit and keeps the rest: *a big **red** circle on the left and a small "
                "blue square on the right* → a ***green*** circle (edit 1), a ***yellow*** square (edit 2).")
    else:
        source, edits = "a photo of a cat riding a bicycle", "a photo of a dog riding a bicycle"
        labels = ["source", "cat -> dog"]
        what = ("Replaces a word and keeps the composition: *a photo of a **cat** riding a bicycle* → *a photo of "
                "a **dog** riding a bicycle*.")
    wf = Workflow(name, model.arch, "word swap", labels, twin)
    wf.note(
        520,
        f"# Word swap ({model.label})",
        what,
        "**Change first:** the prompts of *P2P Prompt Pair* (an edit has as many words as the source; the refine "
        "template adds words), then `cross_replace` of *P2P Word Swap* (lower = freer edit) and `self_replace` "
        "(higher = more of the layout kept). Keep the seed fixed while you tune.",
        HOW_IT_WORKS,
        _model_note(model, other),
    )
    loader, pair, neg, batch = _front(wf, model, source, edits)
    swap = wf.add("P2PWordSwap", 2, 102, prompts=pair[1], cross_replace="0.8", self_replace=model.self_replace)
    _sample_and_save(wf, model, loader, pair, neg, batch, swap)
    return wf


def refine(model: Model) -> Workflow:
    name, twin, other = _name_and_twin("refine", model)
    if model.ckpt is None:
        source, edits = "a red circle above a blue square", "a big red circle above a small blue square"
        labels = ["source", "+ big, + small"]
        what = ("Adds words: *a red circle above a blue square* → *a **big** red circle above a **small** blue "
                "square*. Words shared with the source keep its attention; the new ones attend freely.")
    else:
        source = "a painting of a squirrel eating a burger"
        edits = ("a watercolor painting of a squirrel eating a burger\n"
                 "a charcoal painting of a squirrel eating a burger")
        labels = ["source", "+ watercolor", "+ charcoal"]
        what = ("Adds (or removes) words: *a painting of a squirrel eating a burger* → *a **watercolor** painting "
                "of a squirrel eating a burger*, and a **charcoal** one. Words shared with the source keep its "
                "attention; the new ones attend freely.")
    wf = Workflow(name, model.arch, "refine: add words", labels, twin)
    wf.note(
        520,
        f"# Refine ({model.label})",
        what,
        "**Change first:** the edit lines of *P2P Prompt Pair* (one edit per line, several edits in one run), "
        "then `cross_replace` of *P2P Refine* (lower = freer edit) and `self_replace` (higher = more of the "
        "layout kept).",
        HOW_IT_WORKS,
        *_dit_notes(model),
        _model_note(model, other),
    )
    loader, pair, neg, batch = _front(wf, model, source, edits)
    ref = wf.add("P2PRefine", 2, 102, prompts=pair[1], cross_replace="0.8", self_replace=model.self_replace)
    _sample_and_save(wf, model, loader, pair, neg, batch, ref)
    return wf


def reweight_on_swap(model: Model) -> Workflow:
    name, twin, other = _name_and_twin("reweight", model)
    if model.ckpt is None:
        source, edits = DEMO_A, "a big green circle on the left and a small blue square on the right"
        weights = "small: 8"
        labels = ["source", "red -> green, small x8"]
        what = ("Recolours the circle (*P2P Word Swap*) and turns *small* up eight times (*P2P Reweight*, stacked "
                "on the swap). On this tiny model a reweight barely shows (about 2 grey levels on average); on a "
                "real checkpoint it turns a word visibly up or down.")
    else:
        source, edits = "a photo of a cat sitting on a snowy mountain", "a photo of a dog sitting on a snowy mountain"
        weights = "snowy: 2.5"
        labels = ["source", "cat -> dog, snowy x2.5"]
        what = ("*a photo of a **cat** sitting on a snowy mountain* → *a photo of a **dog** sitting on a snowy "
                "mountain*, with *snowy* turned up (*P2P Reweight*, stacked on the swap).")
    wf = Workflow(name, model.arch, "reweight on a word swap", labels, twin)
    wf.note(
        520,
        f"# Reweight stacked on a word swap ({model.label})",
        what,
        "**Change first:** `weights` of *P2P Reweight* (`word: weight`, comma separated; below 1 tones a word "
        "down, a negative weight removes it). Stacked controls combine; the last node of the stack sets the "
        "replace windows.",
        HOW_IT_WORKS,
        _model_note(model, other),
    )
    loader, pair, neg, batch = _front(wf, model, source, edits)
    swap = wf.add("P2PWordSwap", 2, 102, prompts=pair[1], cross_replace="0.8", self_replace=model.self_replace)
    rew = wf.add("P2PReweight", 2, 160, prompts=pair[1], weights=weights, cross_replace="0.8",
                 self_replace=model.self_replace, edit=swap[0])
    _sample_and_save(wf, model, loader, pair, neg, batch, rew)
    return wf


def local_blend_maps(model: Model) -> Workflow:
    name, twin, other = _name_and_twin("local_blend", model)
    if model.ckpt is None:
        # the Flux demo recolours red to purple on every seed tried (12 of 12), to green on 4 of 24
        new = "purple" if model.key == "demo_flux" else "green"
        source, edits = DEMO_A, f"a big {new} circle on the left and a small blue square on the right"
        blend_words, map_words, map_threshold = "circle", "circle", 0.3
        labels = ["source", f"red -> {new} in 'circle'"]
        what = (f"*a big **red** circle ...* → a ***{new}*** circle, and nothing but the circle may change: *P2P "
                "Local Blend* keeps the source outside the attention region of its `words`.")
    else:
        source, edits = "a photo of a cat sitting on a wooden chair", "a photo of a dog sitting on a wooden chair"
        blend_words, map_words, map_threshold = "cat, dog", "cat", 0.0
        labels = ["source", "cat -> dog in 'cat, dog'"]
        what = ("*a photo of a **cat** sitting on a wooden chair* → *... a **dog** ...*, and nothing but the animal "
                "may change: *P2P Local Blend* keeps the source outside the attention region of its `words`.")
    flux = model.key in ("flux", "demo_flux") or model.clip is not None
    title = "word swap + local blend" if flux else "local blend + attention maps"
    wf = Workflow(name, model.arch, title, labels, twin,
                  columns=dict(COLUMNS_SPLIT if model.clip is not None else COLUMNS_5))
    wf.note(
        640 if flux else 560,
        f"# {'Word swap + local blend + attention maps' if flux else 'Local blend + attention maps'} ({model.label})",
        what,
        "*P2P Attention Maps* shows where each token of prompt `prompt_index` (0 = the source) attended while "
        "sampling (grid saved as `p2p/attention_maps`), and the mask of its `words` (preview).",
        "**Change first:** `words` and `threshold` of *P2P Local Blend* (lower threshold = larger edited region; "
        "`dilation` grows it); check the region on the mask preview.",
        HOW_IT_WORKS,
        *_dit_notes(model),
        _model_note(model, other),
    )
    loader, pair, neg, batch = _front(wf, model, source, edits)
    swap = wf.add("P2PWordSwap", 2, 102, prompts=pair[1], cross_replace="0.8", self_replace=model.self_replace)
    blend = wf.add("P2PLocalBlend", 2, 200, prompts=pair[1], words=blend_words, subtract="", threshold=0.3,
                   subtract_threshold=0.3, start_blend=0.2, dilation=1, edit=swap[0])
    demo = model.ckpt is None
    apply, ks, dec, shown = _sample_and_save(wf, model, loader, pair, neg, batch, blend, save_col=4,
                                             save_height=230 if demo else 280)
    # on a demo model the maps are drawn over the enlarged images: the grid and the mask come out enlarged too
    maps = wf.add("P2PAttentionMaps", 3, 170, attention_store=apply[1], samples=ks[0], prompt_index=0,
                  words=map_words, threshold=map_threshold, image=shown, vae_downscale=model.vae_downscale)
    wf.add("SaveImage", 4, 150 if demo else 180, _title="Attention maps (source tokens)", images=maps[0],
           filename_prefix="p2p/attention_maps")
    m2i = wf.add("MaskToImage", 3, 26, mask=maps[1])
    wf.add("PreviewImage", 4, 150 if demo else 180, _title="Mask of the chosen words", images=m2i[0])
    return wf


METHOD_CHOICE = ("4. `method` of *P2P Invert*: `direct` (exact reconstruction, fast), `null_text` (the official null-text "
                 "inversion, slowest), `negative_prompt`, `ddim` (the baseline, drifts).")
METHOD_CHOICE_FLOW = ("4. `method` of *P2P Invert*: `direct` (exact reconstruction, fast), `fixed_point` (closer "
                      "than `ddim`), `ddim` (drifts); Flux.1 refuses `null_text` and `negative_prompt`.")


def real_image_edit(model: Model) -> Workflow:
    name, twin, other = _name_and_twin("real_image", model)
    inversion = model.inversion
    steps, guidance, px = inversion["steps"], inversion["guidance"], model.image_px
    sampler, scheduler = ("euler", "simple") if model.flow else ("ddim", "ddim_uniform")
    if model.ckpt is None:
        image, source, edits, words = DEMO_PHOTO, DEMO_PHOTO_CAPTION, DEMO_PHOTO_EDIT, "square"
        labels = ["reconstruction", "blue -> red square"]
        what = (f"Edits an image you load: `{DEMO_PHOTO}`, shapes drawn by the demo's dataset renderer (`make "
                f"demo-ui` puts it in the input folder). *P2P Invert* finds the noise the sampler redraws it from; "
                f"then *a big **blue** square* → ***red***, only inside *square*. Saved: the reconstruction (item 0) "
                f"and the edit.")
    else:
        image, source, edits, words = REAL_IMAGE, REAL_SOURCE, REAL_EDITS, "dress"
        labels = ["reconstruction", "pink -> blue dress", "pink -> red dress"]
        what = ("Edits an image you load (ComfyUI's `example.png` at first): *P2P Invert* finds the noise from "
                "which the sampler redraws it under the source prompt; then the edit (*a girl in a **pink** "
                "dress* → ***blue*** / ***red***, only inside *dress*) works as on a generated image. Saved: the "
                "reconstruction (item 0) and the edits.")
    wf = Workflow(name, model.arch, "edit a real image", labels, twin,
                  columns=dict(COLUMNS_6 if model.flow else COLUMNS_5))
    wf.note(
        660 if model.flow else 600,
        f"# Edit a real image ({model.label})",
        what,
        "**Change first:**",
        f"1. the image in *Load Image* (*Upscale Image* makes it {px}x{px});\n"
        "2. the **source prompt**, a short description of the image, in `source` of *P2P Prompt Pair* "
        "(*P2P Invert* reads it from there);\n"
        "3. `edits` (same word count) and `words` of *P2P Local Blend*, the region that may change;\n"
        + (METHOD_CHOICE_FLOW if model.flow else METHOD_CHOICE),
        f"**The sampler must match the inversion** (P2P Apply says what differs): *KSampler (Advanced)*, "
        f"`add_noise` disable, `{sampler}` / `{scheduler}`, `steps` {steps}, `cfg` = `guidance` ({guidance:g}).",
        *_dit_notes(model)[1:],  # "On Flux" is the word swap + local blend template's
        *([KEEP_OUTSIDE] if model.flow else []),
        _model_note(model, other),
    )
    loader = _loader(wf, model)
    pair = wf.add("P2PPromptPair", 1, 200, clip=loader[1], source=source, edits=edits)
    neg = wf.add("CLIPTextEncode", 1, 100, _title="Negative prompt (all items)", text=model.negative, clip=loader[1])
    img = wf.add("LoadImage", 2, 260, image=image)
    scaled = wf.add("ImageScale", 2, 130, image=img[0], upscale_method="lanczos", width=px, height=px, crop="center")
    enc = wf.add("VAEEncode", 2, 46, pixels=scaled[0], vae=loader[2])
    positive = pair[0]
    if model.flux_guidance is not None:  # the sampler's distilled guidance; P2P Invert's source (`prompts`) has
        positive = wf.add("FluxGuidance", 1, 58, _title="FluxGuidance (sampler)", conditioning=pair[0],  # 3.5 too
                          guidance=model.flux_guidance)[0]
    # The source prompt once: P2P Invert inverts under the Prompt Pair's own source encoding.
    inv = wf.add("P2PInvert", 2, 190, model=loader[0], prompts=pair[1], negative=neg[0], latent=enc[0],
                 **inversion)
    batch = wf.add("P2PLatentBatch", 3, 46, latent=inv[0], prompts=pair[1])
    swap = wf.add("P2PWordSwap", 3, 102, prompts=pair[1], cross_replace="0.8", self_replace=model.self_replace)
    blend = wf.add("P2PLocalBlend", 3, 200, prompts=pair[1], words=words, subtract="", threshold=0.3,
                   subtract_threshold=0.3, start_blend=0.2, dilation=1, edit=swap[0])
    apply = wf.add("P2PApply", 3, 150, model=loader[0], edit=blend[0], inversion=inv[1], **model.apply_inverted,
                   attention_path="fast")
    ks = wf.add("KSamplerAdvanced", 4, 334, model=apply[0], positive=positive, negative=neg[0],
                latent_image=batch[0], add_noise="disable", noise_seed=0, steps=steps, cfg=guidance,
                sampler_name=sampler, scheduler=scheduler, start_at_step=0, end_at_step=10000,
                return_with_leftover_noise="disable")
    dec = wf.add("VAEDecode", 4, 46, samples=ks[0], vae=loader[2])
    shown, save_col = dec[0], 4
    if model.flow:
        shown, save_col = _keep_outside(wf, model, apply, ks, dec, words), 5
    wf.add("SaveImage", save_col, 300 if model.ckpt is not None else 220, _title="Reconstruction + edits",
           images=_shown(wf, model, shown, save_col), filename_prefix=f"p2p/{name}")
    return wf


# A VAE decoder normalises over the whole image (GroupNorm, mid-block attention): on the Flux demo model a
# strong edit of one object shifts the colour of another although its latent is the source's to the bit
# (the yellow circle turned orange, mean G 209 -> 183, when the square turned red). Pasting the edit onto the
# reconstruction inside the blend's region only keeps everything else pixel-exact.
KEEP_OUTSIDE = ("**Outside the edit: the reconstruction's pixels.** The decoder mixes the whole image, so an edit "
                "can tint what the blend kept: *Image Composite Masked* pastes each edit onto the reconstruction "
                "only inside the blend's region (*P2P Attention Maps* of the same `words`, grown by one token).")


def _keep_outside(wf: Workflow, model: Model, apply: WNode, ks: WNode, dec: WNode, words: str) -> Out:
    """Every edit pasted onto the reconstruction (item 0) inside the blend region, the reconstruction elsewhere."""
    token_px = model.vae_downscale * (1 if model.ckpt is None else 2)  # Flux.1 packs 2x2 latent cells per token
    maps = wf.add("P2PAttentionMaps", 4, 170, attention_store=apply[1], samples=ks[0], prompt_index=1,
                  words=words, threshold=0.3, vae_downscale=model.vae_downscale)
    # titled: ComfyUI 0.33.0 renamed these nodes' display names ("Grow Mask"), which the API files carry
    grown = wf.add("GrowMask", 4, 82, _title="Grow the region by one token", mask=maps[1], expand=token_px,
                   tapered_corners=False)
    outside = wf.add("InvertMask", 5, 26, _title="Outside the region", mask=grown[0])
    rec = wf.add("ImageFromBatch", 5, 82, _title="Reconstruction (item 0)", image=dec[0], batch_index=0, length=1)
    return wf.add("ImageCompositeMasked", 5, 138, _title="Edits inside the region only", destination=dec[0],
                  source=rec[0], x=0, y=0,
                  resize_source=False, mask=outside[0])[0]


def all_workflows() -> list[Workflow]:
    """The demo-model templates first (they run as they are), then the checkpoint ones."""
    kinds = (word_swap, refine, reweight_on_swap, local_blend_maps, real_image_edit)
    return [*(k(DEMO) for k in kinds), local_blend_maps(DEMO_FLUX), real_image_edit(DEMO_FLUX),
            *(k(SD15) for k in kinds), word_swap(SDXL), local_blend_maps(FLUX), real_image_edit(FLUX), refine(SD35),
            *(local_blend_maps(m) for m in SPLIT_MODELS)]


# --------------------------------------------------------------------------- rendering


def _topological_order(wf: Workflow) -> dict[int, int]:
    deps = {n.id: {v.node.id for v in n.values.values() if isinstance(v, Out)} for n in wf.nodes}
    order: dict[int, int] = {}
    while len(order) < len(wf.nodes):
        ready = [i for i in deps if i not in order and deps[i] <= set(order)]
        if not ready:
            raise ValueError(f"{wf.name}: cycle")
        for i in sorted(ready):
            order[i] = len(order)
    return order


def render(wf: Workflow, object_info: dict) -> tuple[dict, dict]:
    """(UI workflow, API prompt) of a description."""
    order = _topological_order(wf)
    # Pass 1: every node's input list (sockets first, then widget inputs, as the frontend builds
    # them) and the links, numbered in node-id then slot order.
    links: list[list] = []
    out_links: dict[tuple[int, int], list[int]] = {}
    node_inputs: dict[int, list[dict]] = {}
    for n in wf.nodes:
        if n.type in VIRTUAL_NODES:
            continue
        specs = ordered_inputs(object_info[n.type])
        unknown = set(n.values) - {name for name, _, _ in specs}
        if unknown:
            raise ValueError(f"{wf.name}: {n.type} has no inputs {sorted(unknown)}")
        sockets, widgets = [], []
        for name, spec, optional in specs:
            entry = {"localized_name": name, "name": name}
            if optional:
                entry["shape"] = 7
            entry["type"] = _input_type(spec)
            if is_widget(spec):
                entry["widget"] = {"name": name}
                widgets.append(entry)
            else:
                sockets.append(entry)
        if any(kind == "upload" for kind, _ in widget_slots(object_info[n.type])):
            # the frontend's Comfy.UploadImage extension adds an `upload` button input last
            widgets.append({"localized_name": "choose file to upload", "name": "upload", "type": "IMAGEUPLOAD",
                            "widget": {"name": "upload"}})
        inputs = sockets + widgets
        for slot, entry in enumerate(inputs):
            v = n.values.get(entry["name"])
            entry["link"] = None
            if isinstance(v, Out):
                link_id = len(links) + 1
                links.append([link_id, v.node.id, v.slot, n.id, slot, object_info[v.node.type]["output"][v.slot]])
                out_links.setdefault((v.node.id, v.slot), []).append(link_id)
                entry["link"] = link_id
        node_inputs[n.id] = inputs

    # Pass 2: the nodes, and the API prompt (widget values first, then links, as graphToPrompt).
    ui_nodes, api = [], {}
    for n in wf.nodes:
        base = {"id": n.id, "type": n.type, "pos": list(n.pos), "size": list(n.size), "flags": {},
                "order": order[n.id], "mode": 0}
        if n.type in VIRTUAL_NODES:
            node = dict(base, inputs=[], outputs=[])
            if n.title:
                node["title"] = n.title
            # the frontend's note colours (LGraphCanvas.node_colors.yellow), as it saves them
            node.update(properties={}, widgets_values=[n.values["text"]], color="#432", bgcolor="#653")
            ui_nodes.append(node)
            continue
        d = object_info[n.type]
        specs = ordered_inputs(d)
        inputs = node_inputs[n.id]
        api_inputs: dict[str, Any] = {}
        values = []
        for kind, name in widget_slots(d):
            if kind == "input":
                spec = next(s for nm, s, _ in specs if nm == name)
                v = n.values.get(name)
                if isinstance(v, Out) or name not in n.values:
                    v = _opts(spec).get("default")
                    if v is None and isinstance(spec[0], list) and spec[0]:
                        v = spec[0][0]
                values.append(v)
                if not isinstance(n.values.get(name), Out):
                    api_inputs[name] = v
            elif kind == "control_after_generate":
                values.append(n.control)
            else:
                values.append("image")
        for entry in inputs:
            v = n.values.get(entry["name"])
            if isinstance(v, Out):
                api_inputs[entry["name"]] = [str(v.node.id), v.slot]
        missing = [name for name, spec, opt in specs if not opt and name not in api_inputs]
        if missing:
            raise ValueError(f"{wf.name}: {n.type} (node {n.id}) lacks required inputs {missing}")
        names = d.get("output_name") or d["output"]
        outputs = [
            {"localized_name": names[i], "name": names[i], "type": t, "links": out_links.get((n.id, i))}
            for i, t in enumerate(d["output"])
        ]
        if unlisted_outputs(d, [o["links"] for o in outputs]):
            outputs = []
        node = dict(base, inputs=inputs, outputs=outputs)
        if n.title:
            node["title"] = n.title
        node["properties"] = {"Node name for S&R": n.type}
        node["widgets_values"] = values
        ui_nodes.append(node)
        api[str(n.id)] = {"inputs": api_inputs, "class_type": n.type,
                          "_meta": {"title": n.title or d.get("display_name") or n.type}}
    ui = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-prompt-to-prompt/workflows/{wf.name}")),
        "revision": 0,
        "last_node_id": max(n.id for n in wf.nodes),
        "last_link_id": len(links),
        "nodes": ui_nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }
    return ui, api


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def fetch_object_info() -> dict:
    """/object_info of a real ComfyUI server with this pack (tests/support/harness.py's ComfyServer)."""
    import tempfile

    sys.path.append(str(REPO))
    sys.path.append(str(REPO / "tests" / "support"))
    from harness import ComfyServer

    with tempfile.TemporaryDirectory(prefix="p2p_build_wf_") as tmp:
        with ComfyServer(tmp) as srv:
            return srv.object_info()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--object-info", type=Path, help="a saved /object_info JSON instead of starting a server")
    ap.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    args = ap.parse_args(argv)
    info = json.loads(args.object_info.read_text()) if args.object_info else fetch_object_info()
    stale = []
    (HERE / "api").mkdir(exist_ok=True)
    for wf in all_workflows():
        ui, api = render(wf, info)
        for path, obj in ((HERE / f"{wf.name}.json", ui), (HERE / "api" / f"{wf.name}.json", api)):
            text = dumps(obj)
            if args.check:
                if not path.is_file() or path.read_text() != text:
                    stale.append(path)
            else:
                path.write_text(text)
                print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print("out of date (run workflows/build_workflows.py):", *map(str, stale), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
