"""The pack's example workflows (workflows/*.json, UI format; workflows/api/*.json, API format) as
test material: a UI -> API converter that follows the widget rules of ComfyUI frontends 1.32 and 1.49, the
tiny-model version of a workflow, and what a finished run must have produced.

Used by tests/graphs/test_workflows.py (server) and tests/browser/test_browser.py (real frontend).
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = REPO / "workflows"
API_DIR = WORKFLOW_DIR / "api"
PACK_TEMPLATES_NAME = "comfyui-prompt-to-prompt"  # the custom_nodes folder name the tests link the pack as

# Every workflow in workflows/, with the tiny test model that stands in for its checkpoint ("demo": the
# template runs as it is, on the pack's demo model). A new workflow is one UI/API JSON pair plus one line here.
WORKFLOWS: dict[str, str] = {
    "p2p_demo1_word_swap": "demo",
    "p2p_demo2_refine": "demo",
    "p2p_demo3_reweight": "demo",
    "p2p_demo4_local_blend": "demo",
    "p2p_demo5_photo_edit": "demo",
    "p2p_demo6_flux_blend": "demo",
    "p2p_demo7_flux_photo": "demo",
    "p2p_sd15_word_swap": "sd1",
    "p2p_sd15_refine": "sd1",
    "p2p_sd15_reweight": "sd1",
    "p2p_sd15_local_blend": "sd1",
    "p2p_sd15_photo_edit": "sd1",
    "p2p_sdxl_word_swap": "sdxl",
    "p2p_flux_local_blend": "flux",
    "p2p_flux_photo_edit": "flux",
    "p2p_sd35_refine": "sd35",
    "p2p_dit_chroma_blend": "chroma",
    "p2p_dit_zimage_blend": "zimage",
    "p2p_dit_qwen_image_blend": "qwen_image",
    "p2p_dit_flux2klein_blend": "flux2_klein",
    "p2p_dit_flux2dev_blend": "flux2_dev",
    "p2p_dit_lumina2_blend": "lumina2",
}
# The test-only node standing in for a checkpoint of each arch, and its input naming the model.
TINY_LOADERS = {"sd1": ("P2PTestTinyModel", "arch"), "sdxl": ("P2PTestTinyModel", "arch"),
                "flux": ("P2PTestTinyDiTModel", "family"), "sd35": ("P2PTestTinyDiTModel", "family"),
                "chroma": ("P2PTestTinyDiTModel", "family"), "zimage": ("P2PTestTinyDiTModel", "family"),
                "flux2_klein": ("P2PTestTinyDiTModel", "family"), "flux2_dev": ("P2PTestTinyDiTModel", "family"),
                "lumina2": ("P2PTestTinyDiTModel", "family"), "qwen_image": ("P2PTestTinyQwenImage", None)}
# The families loaded from separate files (UNETLoader, CLIPLoader, VAELoader, as ComfyUI's examples): in tests
# one tiny loader takes the UNETLoader's id and the CLIP and VAE loaders' links (slot of its outputs).
SPLIT_LOADERS = {"UNETLoader": 0, "CLIPLoader": 1, "VAELoader": 2}
DEMO_TEMPLATES = [name for name, arch in WORKFLOWS.items() if arch == "demo"]
CHECKPOINT_TEMPLATES = [name for name, arch in WORKFLOWS.items() if arch != "demo"]

# Frontend-only nodes: drawn in the UI, absent from /object_info and from the API format.
VIRTUAL_NODES = {"Note", "MarkdownNote"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
# Inputs whose options are files (models, input images): the test server's folders do not hold the
# names a user's workflow refers to, so any name is accepted.
FILE_INPUTS = {("CheckpointLoaderSimple", "ckpt_name"), ("LoadImage", "image"), ("UNETLoader", "unet_name"),
               ("CLIPLoader", "clip_name"), ("VAELoader", "vae_name")}
TINY_TITLES = {"P2PTestTinyModel": "P2P Test Tiny Model (tests only)",
               "P2PTestTinyDiTModel": "P2P Test Tiny DiT Model (tests only)",
               "P2PTestTinyQwenImage": "P2P Test Tiny Qwen-Image (tests only)"}
TINY_SIZE = 64
TINY_STEPS = 4
# Nodes whose width/height set the image size (latents, the real-image workflow's resize): TINY_SIZE in tests.
# Flux2Scheduler's width and height set its schedule's shift: the latent's size, as in ComfyUI's Flux.2 example.
SIZED_NODES = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyFlux2LatentImage", "Flux2Scheduler", "ImageScale")


def _template_order_module():
    """template_order.py (the pack's template listing: order, the ComfyUI each template needs), from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("p2p_template_order", REPO / "template_order.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def comfyui_version() -> tuple[int, ...]:
    """The version of the ComfyUI under test (its comfyui_version.py; conftest put its tree on sys.path)."""
    version = _template_order_module().comfyui_version()
    assert version is not None, "no comfyui_version.py on sys.path: is ComfyUI's tree there?"
    return version


def unavailable_reason(name: str) -> str | None:
    """Why template `name` cannot run on the ComfyUI under test (template_order.MIN_COMFYUI), or None."""
    return _template_order_module().unavailable_reason(name, comfyui_version())


def runnable(names) -> list[str]:
    """`names` without the templates the ComfyUI under test cannot run (the ones its template browser hides)."""
    return [n for n in names if unavailable_reason(n) is None]


def template_params(names) -> list:
    """pytest parameters of `names`, those the ComfyUI under test cannot run skipped with their reason: the tests
    that need this ComfyUI to load or run a template take their names from here."""
    import pytest

    out = []
    for name in names:
        reason = unavailable_reason(name)
        out.append(pytest.param(name, marks=pytest.mark.skip(reason=reason)) if reason else name)
    return out


def load_builder():
    """workflows/build_workflows.py as a module: the templates' descriptions (all_workflows, render)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("p2p_build_workflows", WORKFLOW_DIR / "build_workflows.py")
    builder = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = builder  # dataclasses look their module up
    try:
        spec.loader.exec_module(builder)
    finally:
        del sys.modules[spec.name]
    return builder


def template_order(names) -> list[str]:
    """The order the pack serves its templates in (template_order.py's, loaded from its file)."""
    return _template_order_module().template_order(names)


def load_ui(name: str) -> dict:
    return json.loads((WORKFLOW_DIR / f"{name}.json").read_text())


def load_api(name: str) -> dict:
    return json.loads((API_DIR / f"{name}.json").read_text())


def workflow_files() -> set[str]:
    return {p.stem for p in WORKFLOW_DIR.glob("*.json")}


# --------------------------------------------------------------------------- UI -> API


def _inputs_in_order(node_def: dict) -> list[tuple[str, list, bool]]:
    order = node_def.get("input_order", {})
    out = []
    for section in ("required", "optional"):
        specs = node_def.get("input", {}).get(section) or {}
        names = list(order.get(section, []))
        names += [n for n in specs if n not in names]
        out += [(n, specs[n], section == "optional") for n in names if n in specs]
    return out


def _type(spec: list) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def _options(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def widget_slots(node_def: dict) -> list[tuple[str, str]]:
    """(kind, name) of each entry of `widgets_values`, as frontends 1.32 and 1.49 create the widgets: kind
    "input" (a widget input), "control" (the control_after_generate of the preceding INT, e.g. a
    seed) or "upload" (the button the Comfy.UploadImage extension adds, input `upload`)."""
    slots: list[tuple[str, str]] = []
    upload = False
    for name, spec, _ in _inputs_in_order(node_def):
        opts = _options(spec)
        if _type(spec) not in WIDGET_TYPES or opts.get("forceInput"):
            continue
        slots.append(("input", name))
        control = opts.get("control_after_generate")
        if control is None:
            control = _type(spec) == "INT" and name in ("seed", "noise_seed")
        if control:
            slots.append(("control", "control_after_generate"))
        upload = upload or any(opts.get(f) for f in UPLOAD_FLAGS)
    if upload:
        slots.append(("upload", "upload"))
    return slots


def widget_inputs(node_def: dict) -> list[str]:
    """Names of the node's inputs that are widgets (entries with `widget` in a saved node's inputs)."""
    return [name for kind, name in widget_slots(node_def) if kind != "control"]


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """The API prompt of a UI workflow (what the frontend's graphToPrompt sends to /prompt).

    Strict: raises AssertionError on anything a clean workflow must not have (unknown node types,
    a widgets_values of the wrong length, links that disagree with the nodes' sockets or with the
    node definitions' types, muted/bypassed nodes, primitives/reroutes)."""
    links = {lk[0]: lk for lk in ui["links"]}
    assert len(links) == len(ui["links"]), "duplicate link ids"
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert len(nodes) == len(ui["nodes"]), "duplicate node ids"
    assert ui.get("last_node_id", 0) >= max(nodes), "last_node_id below a node id"
    assert ui.get("last_link_id", 0) >= max(links, default=0), "last_link_id below a link id"
    api: dict[str, dict] = {}
    for node in ui["nodes"]:
        nid, ntype = node["id"], node["type"]
        where = f"node {nid} ({ntype})"
        if ntype in VIRTUAL_NODES:
            continue
        assert ntype in object_info, f"{where}: no such node type on the server"
        assert node.get("mode", 0) == 0, f"{where}: muted or bypassed"
        d = object_info[ntype]
        inputs: dict[str, Any] = {}
        slots = widget_slots(d)
        values = node.get("widgets_values", [])
        assert isinstance(values, list) and len(values) == len(slots), (
            f"{where}: widgets_values {values!r} do not match the frontend's widgets {slots}"
        )
        for (kind, name), value in zip(slots, values):
            if kind == "input":
                inputs[name] = value
        specs = {name: (spec, opt) for name, spec, opt in _inputs_in_order(d)}
        for slot, inp in enumerate(node.get("inputs", [])):
            if ("upload", inp["name"]) in slots:
                continue
            assert inp["name"] in specs, f"{where}: unknown input {inp['name']!r}"
            if inp.get("link") is None:
                continue
            lk = links[inp["link"]]
            _, origin, origin_slot, target, target_slot, ltype = lk
            assert (target, target_slot) == (nid, slot), f"{where}: link {lk} does not end at input {slot}"
            src = nodes[origin]
            src_def = object_info[src["type"]]
            assert src_def["output"][origin_slot] == ltype, f"link {lk}: type is not the source's output"
            want = _type(specs[inp["name"]][0])
            assert ltype == want or want == "*", f"{where}: {ltype} linked into {inp['name']} ({want})"
            assert lk[0] in (src["outputs"][origin_slot].get("links") or []), (
                f"link {lk} missing from node {origin}'s output {origin_slot}"
            )
            inputs[inp["name"]] = [str(origin), origin_slot]
        for name, (_spec, optional) in specs.items():
            if not optional:
                assert name in inputs, f"{where}: required input {name!r} has neither a widget nor a link"
        api[str(nid)] = {
            "inputs": inputs,
            "class_type": ntype,
            "_meta": {"title": node.get("title") or d.get("display_name") or ntype},
        }
    return api


def widget_value_errors(api: dict, object_info: dict) -> list[str]:
    """Values /prompt's validation would reject: out-of-range numbers, unknown COMBO choices
    (file lists excepted), wrong types."""
    errors = []
    for nid, node in api.items():
        d = object_info[node["class_type"]]
        specs = {name: spec for name, spec, _ in _inputs_in_order(d)}
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                continue
            spec = specs[name]
            t, opts = _type(spec), _options(spec)
            where = f"node {nid} ({node['class_type']}).{name} = {value!r}"
            if t == "COMBO":
                choices = spec[0] if isinstance(spec[0], list) else opts.get("options", [])
                if value not in choices and (node["class_type"], name) not in FILE_INPUTS:
                    errors.append(f"{where}: not one of {choices[:10]}")
            elif t in ("INT", "FLOAT"):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    errors.append(f"{where}: not a number")
                elif t == "INT" and value != int(value):
                    errors.append(f"{where}: not an integer")
                elif not (opts.get("min", float("-inf")) <= value <= opts.get("max", float("inf"))):
                    errors.append(f"{where}: outside [{opts.get('min')}, {opts.get('max')}]")
            elif t == "STRING" and not isinstance(value, str):
                errors.append(f"{where}: not a string")
            elif t == "BOOLEAN" and not isinstance(value, bool):
                errors.append(f"{where}: not a boolean")
    return errors


# --------------------------------------------------------------------------- tiny versions


def tiny_api(api: dict, arch: str) -> dict:
    """The API prompt with every checkpoint loader replaced (same node id, so the same links) by
    the test-only tiny model of its arch (a family's UNETLoader likewise, its CLIPLoader and VAELoader dropped
    and their links taken by the tiny loader's CLIP and VAE outputs; every other node kept), latents and
    resized images of TINY_SIZE px, TINY_STEPS sampling (and inversion) steps, one null-text inner iteration.
    A demo template ("demo") runs as it is."""
    out = copy.deepcopy(api)
    if arch == "demo":
        return out
    split = {nid: SPLIT_LOADERS[n["class_type"]] for nid, n in out.items() if n["class_type"] in SPLIT_LOADERS}
    if split:
        (unet,) = [nid for nid, slot in split.items() if slot == 0]
        for nid in split:
            if nid != unet:
                del out[nid]
        for node in out.values():
            for key, v in node["inputs"].items():
                if isinstance(v, list) and v[0] in split:
                    node["inputs"][key] = [unet, split[v[0]]]
    for node in out.values():
        ct, inputs = node["class_type"], node["inputs"]
        if ct in ("CheckpointLoaderSimple", "UNETLoader"):
            tiny, key = TINY_LOADERS[arch]
            node.update(class_type=tiny, inputs={key: arch, "seed": 0} if key else {"seed": 0},
                        _meta={"title": TINY_TITLES[tiny]})
        if ct in SIZED_NODES:
            inputs.update(width=TINY_SIZE, height=TINY_SIZE)
        # every `steps` (P2P Invert's and the sampler's) shrinks to the same value: P2P Apply refuses
        # to sample an inversion with another schedule
        for key, small in (("steps", TINY_STEPS), ("inner_iterations", 1)):
            if isinstance(inputs.get(key), int):
                inputs[key] = min(inputs[key], small)
    return out


def input_images(api: dict) -> dict[str, bytes]:
    """PNG files the workflow's LoadImage nodes need in ComfyUI's input folder (TINY_SIZE px)."""
    from PIL import Image

    files = {}
    for node in api.values():
        if node["class_type"] == "LoadImage":
            img = Image.new("RGB", (TINY_SIZE, TINY_SIZE))
            img.putdata([(4 * x, 4 * y, 128) for y in range(TINY_SIZE) for x in range(TINY_SIZE)])
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            files[node["inputs"]["image"]] = buf.getvalue()
    return files


def image_output_nodes(api: dict, object_info: dict) -> list[str]:
    """Ids of the output nodes that take an IMAGE (SaveImage, PreviewImage, ...)."""
    out = []
    for nid, node in api.items():
        d = object_info[node["class_type"]]
        if d.get("output_node") and any(
            _type(spec) == "IMAGE" for _, spec, _ in _inputs_in_order(d)
        ):
            out.append(nid)
    return sorted(out, key=int)


def expected_batch(api: dict, save_id: str) -> int | None:
    """1 + edits for an image node fed by VAEDecode of a P2P batch, else None (any count)."""
    src = api[save_id]["inputs"].get("images")
    if not isinstance(src, list) or api[src[0]]["class_type"] != "VAEDecode":
        return None
    pairs = [n for n in api.values() if n["class_type"] == "P2PPromptPair"]
    if len(pairs) != 1:
        return None
    edits = [ln for ln in pairs[0]["inputs"]["edits"].splitlines() if ln.strip()]
    return 1 + len(edits)


def check_history_images(entry: dict, api: dict, object_info: dict) -> dict[str, list[dict]]:
    """Every image output node of `api` has images in the /history entry (the P2P batch: one per
    prompt); returns {node id: image records}."""
    outputs = entry.get("outputs", {})
    found = {}
    for nid in image_output_nodes(api, object_info):
        images = (outputs.get(nid) or {}).get("images") or []
        title = api[nid].get("_meta", {}).get("title")
        assert images, f"no images from node {nid} ({api[nid]['class_type']} '{title}') in /history"
        want = expected_batch(api, nid)
        assert want is None or len(images) == want, f"node {nid}: {len(images)} images, expected {want}"
        found[nid] = images
    return found
