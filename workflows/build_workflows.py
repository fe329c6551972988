"""Writes the pack's example workflows from one description, in both of ComfyUI's formats.

* `workflows/<name>.json`: the UI format, i.e. what ComfyUI's frontend saves and loads by drag
  and drop (nodes with their sockets, widget inputs and `widgets_values` in the frontend's widget
  order, links, a Markdown note). ComfyUI's template browser lists these files
  (`GET /workflow_templates`, folder `workflows/`).
* `workflows/api/<name>.json`: the API format of the same graph (what `POST /prompt` takes and
  the frontend's "Export (API)" writes), used by the server tests.

Widget order follows ComfyUI frontend 1.32.x and 1.49.x (comfyui-frontend-package, see
src/services/litegraphService.ts `#addInputs` and useIntWidget.ts): sockets first, then one widget
per primitive/COMBO input in `/object_info`'s `input_order` (required, then optional); an INT with
`control_after_generate` (or named seed / noise_seed) gets a second value ("fixed", "randomize",
...) right after it; a COMBO with `image_upload` gets a trailing upload button value "image".

tests/test_workflows.py checks the result independently (UI -> API converter, runs on the real
server, template listing) and tests/test_browser.py loads every file in the real frontend.

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


@dataclass
class Workflow:
    name: str
    arch: str  # "sd1" | "sdxl": which tiny test model replaces the checkpoint loader in tests
    note: str
    nodes: list[WNode] = field(default_factory=list)

    _column_y: dict[int, float] = field(default_factory=dict)

    def add(self, type_: str, col: int, height: float, /, _title: str | None = None, **values) -> WNode:
        """A node at the bottom of layout column `col` (0..4, left to right); `values` are its
        inputs: widget values, or `other_node[output_index]` for links."""
        x, width = COLUMNS[col]
        y = self._column_y.get(col, 20)
        self._column_y[col] = y + height + ROW_GAP
        n = WNode(len(self.nodes) + 1, type_, (x, y), (width, height), values, _title)
        self.nodes.append(n)
        return n


# Layout: (x, width) of each column; a node's title bar (30 px) and its source badge sit above
# `pos`, hence the gap.
COLUMNS = {0: (20, 420), 1: (500, 440), 2: (1000, 340), 3: (1400, 320), 4: (1780, 560)}
ROW_GAP = 70


# --------------------------------------------------------------------------- the workflows

NEGATIVE = ""
SAMPLER = dict(seed=8888, steps=50, cfg=7.5, sampler_name="ddim", scheduler="ddim_uniform", denoise=1.0)

COMMON_NOTE = """
**How it works.** *P2P Prompt Pair* encodes the source prompt and the edited prompt(s) into one
conditioning; *P2P Latent Batch* makes one latent per prompt with the same noise; the edit nodes
say which attention to share; *P2P Apply* patches the model. Any stock sampler then draws the
source image (batch item 0) and every edit (items 1..N) in one run.

**Tuning:** the prompts in *P2P Prompt Pair* (one edit per line), then the edit node's
`cross_replace` (lower = freer edit, higher = closer to the source) and `self_replace`
(higher keeps more of the layout). Keep the seed fixed while you tune.
"""


def _sd_base(wf: Workflow, ckpt: str, size: int, source: str, edits: str,
             ) -> tuple[WNode, WNode, WNode, WNode, WNode]:
    """Loader, prompt pair, negative prompt, latent batch: columns 0-1 of every workflow.
    Returns (loader, pair, negative, latent batch, note)."""
    note = wf.add("MarkdownNote", 0, 440, _title="Read me", text=wf.note.strip())
    loader = wf.add("CheckpointLoaderSimple", 0, 98, ckpt_name=ckpt)
    pair = wf.add("P2PPromptPair", 1, 250, clip=loader[1], source=source, edits=edits)
    neg = wf.add("CLIPTextEncode", 1, 120, _title="Negative prompt (all items)",
                 text=NEGATIVE, clip=loader[1])
    empty = wf.add("EmptyLatentImage", 1, 106, width=size, height=size, batch_size=1)
    batch = wf.add("P2PLatentBatch", 1, 46, latent=empty[0], prompts=pair[1])
    return loader, pair, neg, batch, note


def _sample_and_save(wf: Workflow, loader: WNode, pair: WNode, neg: WNode, batch: WNode, edit: WNode,
                     prefix: str) -> tuple[WNode, WNode, WNode]:
    apply = wf.add("P2PApply", 2, 130, model=loader[0], edit=edit[0],
                   self_attn_min_downsample=4, map_downsample=4, attention_path="fast")
    ks = wf.add("KSampler", 3, 262, model=apply[0], positive=pair[0], negative=neg[0],
                latent_image=batch[0], **SAMPLER)
    dec = wf.add("VAEDecode", 3, 46, samples=ks[0], vae=loader[2])
    wf.add("SaveImage", 4, 420, _title="Source + edits", images=dec[0],
                  filename_prefix=prefix)
    return apply, ks, dec


def word_swap(name: str, arch: str, ckpt: str, size: int) -> Workflow:
    model = "SDXL" if arch == "sdxl" else "SD1.5"
    wf = Workflow(name, arch, f"""
# Prompt-to-Prompt: word swap ({model})

Replaces a word while keeping the composition: *a photo of a **cat** riding a bicycle* ->
*a photo of a **dog** riding a bicycle*. The edit prompt must have as many words as the source
(use the refine workflow to add or remove words).
{COMMON_NOTE}
Checkpoint: `{ckpt}` at {size}x{size}; any {model} checkpoint works.
""")
    loader, pair, neg, batch, _ = _sd_base(
        wf, ckpt, size, "a photo of a cat riding a bicycle", "a photo of a dog riding a bicycle")
    swap = wf.add("P2PWordSwap", 2, 106, prompts=pair[1], cross_replace="0.8",
                  self_replace="0.4")
    _sample_and_save(wf, loader, pair, neg, batch, swap, f"p2p/{name}")
    return wf


def refine() -> Workflow:
    name = "p2p_refine"
    wf = Workflow(name, "sd1", f"""
# Prompt-to-Prompt: refine (SD1.5)

Adds (or removes) words: *a painting of a squirrel eating a burger* -> *a **watercolor**
painting of a squirrel eating a burger*. Words shared with the source keep the source's
attention; new words attend freely. Several edit lines give several edits in one run.
{COMMON_NOTE}
Checkpoint: `{SD15_CKPT}` at 512x512.
""")
    loader, pair, neg, batch, _ = _sd_base(
        wf, SD15_CKPT, 512, "a painting of a squirrel eating a burger",
        "a watercolor painting of a squirrel eating a burger\na charcoal painting of a squirrel eating a burger")
    ref = wf.add("P2PRefine", 2, 106, prompts=pair[1], cross_replace="0.8", self_replace="0.4")
    _sample_and_save(wf, loader, pair, neg, batch, ref, f"p2p/{name}")
    return wf


def reweight_on_swap() -> Workflow:
    name = "p2p_reweight_on_swap"
    wf = Workflow(name, "sd1", f"""
# Prompt-to-Prompt: reweight stacked on a word swap (SD1.5)

*a photo of a cat sitting on a snowy mountain* -> *a photo of a dog sitting on a snowy
mountain*, with *snowy* turned up. *P2P Reweight* takes the swap as its `edit` input: stacked
controls combine, and the last node of the stack sets the replace windows.

**Change first:** `weights` in *P2P Reweight* (`word: weight`, one pair per line; below 1 tones a
word down, negative values remove it).
{COMMON_NOTE}
Checkpoint: `{SD15_CKPT}` at 512x512.
""")
    loader, pair, neg, batch, _ = _sd_base(
        wf, SD15_CKPT, 512, "a photo of a cat sitting on a snowy mountain",
        "a photo of a dog sitting on a snowy mountain")
    swap = wf.add("P2PWordSwap", 2, 106, prompts=pair[1], cross_replace="0.8", self_replace="0.4")
    rew = wf.add("P2PReweight", 2, 200, prompts=pair[1], weights="snowy: 2.5",
                 cross_replace="0.8", self_replace="0.4", edit=swap[0])
    _sample_and_save(wf, loader, pair, neg, batch, rew, f"p2p/{name}")
    return wf


def local_blend_maps() -> Workflow:
    name = "p2p_local_blend_attention_maps"
    wf = Workflow(name, "sd1", f"""
# Prompt-to-Prompt: local blend + attention maps (SD1.5)

*a photo of a cat sitting on a wooden chair* -> *a photo of a dog sitting on a wooden chair*,
and nothing but the animal may change: *P2P Local Blend* keeps every pixel outside the
attention region of `words` equal to the source.

*P2P Attention Maps* shows, per token of prompt `prompt_index` (0 = source), where it attended
during sampling (grid saved as `p2p/attention_maps`), and the mask of its `words` (preview).

**Change first:** `words` and `threshold` of *P2P Local Blend* (lower threshold = larger edited
region; `dilation` grows it). Check the region with the mask preview.
{COMMON_NOTE}
Checkpoint: `{SD15_CKPT}` at 512x512.
""")
    loader, pair, neg, batch, _ = _sd_base(
        wf, SD15_CKPT, 512, "a photo of a cat sitting on a wooden chair",
        "a photo of a dog sitting on a wooden chair")
    swap = wf.add("P2PWordSwap", 2, 106, prompts=pair[1], cross_replace="0.8", self_replace="0.4")
    blend = wf.add("P2PLocalBlend", 2, 210, prompts=pair[1], words="cat, dog", subtract="",
                   threshold=0.3, subtract_threshold=0.3, start_blend=0.2, dilation=1, edit=swap[0])
    apply, ks, dec = _sample_and_save(wf, loader, pair, neg, batch, blend, f"p2p/{name}")
    maps = wf.add("P2PAttentionMaps", 3, 200, attention_store=apply[1], samples=ks[0],
                  prompt_index=0, words="cat", threshold=0.0, image=dec[0], vae_downscale=8)
    wf.add("SaveImage", 4, 420, _title="Attention maps (source tokens)", images=maps[0],
           filename_prefix="p2p/attention_maps")
    m2i = wf.add("MaskToImage", 3, 26, mask=maps[1])
    wf.add("PreviewImage", 3, 300, _title="Mask of the chosen words", images=m2i[0])
    return wf


REAL_IMAGE = "example.png"  # ships in every ComfyUI's input/ folder
REAL_SOURCE = "a drawing of a girl in a pink dress on a green hill"
REAL_EDITS = ("a drawing of a girl in a blue dress on a green hill\n"
              "a drawing of a girl in a red dress on a green hill")
INVERSION = dict(method="direct", steps=50, guidance=7.5, inner_iterations=10)


def real_image_edit() -> Workflow:
    name = "p2p_real_image_edit"
    steps, guidance = INVERSION["steps"], INVERSION["guidance"]
    wf = Workflow(name, "sd1", f"""
# Prompt-to-Prompt: edit a real image (SD1.5)

Edits an image you load instead of a generated one: *P2P Invert* finds the noise from which the
sampler redraws your image under the source prompt, then the edit works as on a generated image.
The saved batch is the **reconstruction** of your image (item 0, left) and the **edits** (items
1..N) side by side: *a drawing of a girl in a **pink** dress* -> ***blue*** / ***red*** dress.

**Change first:**
1. the image in *Load Image* (*Upscale Image* scales and centre-crops it to 512x512);
2. the **source prompt**, a short description of your image, in **both** places: *Source prompt for
   P2P Invert* and `source` of *P2P Prompt Pair*. The texts must be identical: the image is
   inverted under the one and redrawn with the other;
3. the edit line(s): `edits` of *P2P Prompt Pair* (one edit per line; a word swap keeps the
   number of words, use *P2P Refine* to add words) and `words` of *P2P Local Blend*, the region
   that may change (bypass it with Ctrl+B to let the whole image change);
4. `method` of *P2P Invert*:
   * `direct` (default): the reconstruction is exact (item 0 follows the inversion); fast, one
     pass of `steps` UNet calls. Edits stay close to your image.
   * `null_text`: the official Null-text Inversion, optimises the unconditional embedding at every
     step (up to `steps` x `inner_iterations` UNet passes with gradients): slowest, the best
     fidelity on eps-prediction models such as SD1.5. The negative prompt is then the optimised one.
   * `negative_prompt`: no optimisation, the source prompt becomes the negative prompt; fast.
   * `ddim`: plain DDIM inversion, the baseline; drifts from your image at cfg {guidance:g}.

**The sampler must match the inversion** (P2P Apply refuses anything else): *KSampler
(Advanced)* with `add_noise` disable, sampler `ddim`, scheduler `ddim_uniform`, `steps` equal to
P2P Invert's `steps` ({steps}), `start_at_step` 0, `end_at_step` at least the steps,
`return_with_leftover_noise` disable, and `cfg` equal to P2P Invert's `guidance` ({guidance:g}).
Change steps or guidance in both nodes together. KSampler (plain) always adds noise: it cannot
sample an inverted latent.

**Tuning:** the edit node's `cross_replace` (lower = freer edit, higher = closer to the image) and
`self_replace` (higher keeps more of the layout); `threshold` of *P2P Local Blend* (lower = larger
edited region).

Checkpoint: `{SD15_CKPT}` at 512x512.
""")
    wf.add("MarkdownNote", 0, 640, _title="Read me", text=wf.note.strip())
    loader = wf.add("CheckpointLoaderSimple", 0, 98, ckpt_name=SD15_CKPT)
    image = wf.add("LoadImage", 0, 340, image=REAL_IMAGE)
    scaled = wf.add("ImageScale", 0, 130, image=image[0], upscale_method="lanczos", width=512, height=512,
                    crop="center")
    pair = wf.add("P2PPromptPair", 1, 250, clip=loader[1], source=REAL_SOURCE, edits=REAL_EDITS)
    src = wf.add("CLIPTextEncode", 1, 120, _title="Source prompt for P2P Invert (= pair's source)",
                 text=REAL_SOURCE, clip=loader[1])
    neg = wf.add("CLIPTextEncode", 1, 120, _title="Negative prompt (all items)", text=NEGATIVE, clip=loader[1])
    enc = wf.add("VAEEncode", 1, 46, pixels=scaled[0], vae=loader[2])
    inv = wf.add("P2PInvert", 1, 230, model=loader[0], positive=src[0], negative=neg[0], latent=enc[0],
                 **INVERSION)
    batch = wf.add("P2PLatentBatch", 1, 46, latent=inv[0], prompts=pair[1])
    swap = wf.add("P2PWordSwap", 2, 106, prompts=pair[1], cross_replace="0.8", self_replace="0.4")
    blend = wf.add("P2PLocalBlend", 2, 210, prompts=pair[1], words="dress", subtract="",
                   threshold=0.3, subtract_threshold=0.3, start_blend=0.2, dilation=1, edit=swap[0])
    # Self injection down to 32x32 at 512 px, as the official real-image (null-text) notebook.
    apply = wf.add("P2PApply", 2, 150, model=loader[0], edit=blend[0], inversion=inv[1],
                   self_attn_min_downsample=2, map_downsample=4, attention_path="fast")
    ks = wf.add("KSamplerAdvanced", 3, 334, model=apply[0], positive=pair[0], negative=neg[0],
                latent_image=batch[0], add_noise="disable", noise_seed=0, steps=steps, cfg=guidance,
                sampler_name="ddim", scheduler="ddim_uniform", start_at_step=0, end_at_step=10000,
                return_with_leftover_noise="disable")
    dec = wf.add("VAEDecode", 3, 46, samples=ks[0], vae=loader[2])
    wf.add("SaveImage", 4, 420, _title="Reconstruction + edits", images=dec[0], filename_prefix=f"p2p/{name}")
    return wf


def all_workflows() -> list[Workflow]:
    return [
        word_swap("p2p_word_swap", "sd1", SD15_CKPT, 512),
        refine(),
        reweight_on_swap(),
        local_blend_maps(),
        word_swap("p2p_sdxl_word_swap", "sdxl", SDXL_CKPT, 1024),
        real_image_edit(),
    ]


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
    """/object_info of a real ComfyUI server with this pack (tests/harness.py's ComfyServer)."""
    import tempfile

    sys.path.append(str(REPO))
    sys.path.append(str(REPO / "tests"))
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
