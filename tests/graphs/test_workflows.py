"""The example workflows in workflows/: the API twins describe the same graphs as the UI files, run
on the real ComfyUI server (tiny model in place of the checkpoint; the demo-model templates as they
are), are listed by ComfyUI's template browser with their thumbnails; each demo template is its
checkpoint twin's graph on the demo model, in the demo model's words; the notes render (no
hard-wrapped paragraph) and the graphs open at a readable zoom; and every node of the pack documents
itself (description, input tooltips).

tests/browser/test_browser.py loads the same files in the real frontend."""

from __future__ import annotations

import io
import re
import sys

import pytest
from harness import ComfyServer, load_pack_module
from PIL import Image
from workflow_util import (
    CHECKPOINT_TEMPLATES,
    DEMO_TEMPLATES,
    PACK_TEMPLATES_NAME,
    REPO,
    WORKFLOWS,
    check_history_images,
    input_images,
    load_api,
    load_builder,
    load_ui,
    runnable,
    template_order,
    template_params,
    tiny_api,
    ui_to_api,
    widget_inputs,
    widget_value_errors,
    workflow_files,
)

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ComfyServer(tmp_path_factory.mktemp("comfy_workflows")) as srv:
        yield srv


@pytest.fixture(scope="module")
def object_info(server):
    return server.object_info()


def test_every_workflow_file_is_registered_and_has_an_api_twin():
    assert workflow_files() == set(WORKFLOWS), "add new workflows to WORKFLOWS in tests/support/workflow_util.py"
    api_files = {p.stem for p in (REPO / "workflows" / "api").glob("*.json")}
    assert api_files == set(WORKFLOWS)


# The tests that load or run a template on this ComfyUI take their names from template_params: a template that
# needs a newer ComfyUI (template_order.MIN_COMFYUI: Flux.2 klein on 0.3.75) is skipped with its reason there.
@pytest.mark.parametrize("name", template_params(sorted(WORKFLOWS)))
def test_api_twin_is_the_ui_graph(name, object_info):
    ui, api = load_ui(name), load_api(name)
    assert ui.get("version") == 0.4 and isinstance(ui.get("links"), list)
    converted = ui_to_api(ui, object_info)
    assert sorted(converted, key=int) == sorted(api, key=int), "different node ids"
    for nid in converted:
        assert converted[nid]["class_type"] == api[nid]["class_type"], f"node {nid}"
        assert converted[nid]["inputs"] == api[nid]["inputs"], f"node {nid} ({api[nid]['class_type']})"
        assert converted[nid].get("_meta") == api[nid].get("_meta"), f"node {nid} title"
    assert not widget_value_errors(api, object_info)


@pytest.mark.parametrize("name", template_params(sorted(WORKFLOWS)))
def test_ui_workflow_matches_the_frontend_node_layout(name, object_info):
    """Each node's sockets and widget inputs are the ones the frontend creates for it (so a drop
    restores every link and widget in place), as this server's /object_info defines the node;
    stock loaders name the usual checkpoints."""
    ui = load_ui(name)
    for node in ui["nodes"]:
        if node["type"] not in object_info:
            continue
        d = object_info[node["type"]]
        names = [i["name"] for i in node["inputs"]]
        widgets = [i["name"] for i in node["inputs"] if "widget" in i]
        assert widgets == widget_inputs(d), f"node {node['id']} ({node['type']})"
        sockets = [n for n in names if n not in widgets]
        assert names == sockets + widgets, f"node {node['id']}: sockets come before widget inputs"
        want = d["output"]
        if d.get("output_node") and not any(o.get("links") for o in node["outputs"]):
            # an output node with nothing linked lists no outputs: the save nodes have an IMAGE
            # output since ComfyUI 0.25.0 (none in 0.3.75), which a newer frontend adds on load
            want = []
        assert [o["type"] for o in node["outputs"]] == want, f"node {node['id']} outputs"
        if node["type"] == "CheckpointLoaderSimple":
            want = CHECKPOINTS[WORKFLOWS[name]]
            assert node["widgets_values"] == [want]


def test_workflow_files_are_what_the_builder_writes(object_info):
    builder = load_builder()
    built = {wf.name for wf in builder.all_workflows()}
    assert built == set(WORKFLOWS)
    for wf in builder.all_workflows():
        ui, api = builder.render(wf, object_info)
        assert builder.dumps(ui) == (REPO / "workflows" / f"{wf.name}.json").read_text(), (
            f"{wf.name}.json is stale: run .venv/bin/python workflows/build_workflows.py"
        )
        assert builder.dumps(api) == (REPO / "workflows" / "api" / f"{wf.name}.json").read_text()
        assert wf.arch == WORKFLOWS[wf.name]


@pytest.mark.parametrize("name", template_params(sorted(WORKFLOWS)))
def test_workflow_runs_on_the_server(name, server, object_info):
    api = tiny_api(load_api(name), WORKFLOWS[name])
    for filename, data in input_images(api).items():
        (server.input_dir / filename).write_bytes(data)
    prompt_id = server.queue(api)
    entry = server.wait(prompt_id, timeout=300)
    found = check_history_images(entry, api, object_info)
    for images in found.values():
        for img in images:
            data = server.fetch_image(img["filename"], img.get("subfolder", ""), img.get("type", "output"))
            assert Image.open(io.BytesIO(data)).size[0] > 0


def test_template_browser_lists_every_workflow(server):
    """Listed by name (template_order.py sorts the pack's entry; ComfyUI globs the folder unsorted), so both
    frontends' default order shows the demo templates first, in reading order, the `p2p_dit_*` families last;
    without the templates this ComfyUI cannot run (template_order.MIN_COMFYUI), whose files are still served."""
    for path in ("/workflow_templates", "/api/workflow_templates"):
        listed = server.get_json(path)
        assert listed.get(PACK_TEMPLATES_NAME) == template_order(runnable(WORKFLOWS)), listed
        assert listed[PACK_TEMPLATES_NAME][: len(DEMO_TEMPLATES)] == DEMO_TEMPLATES
    for name in WORKFLOWS:  # the frontend fetches the file from here when a template is opened
        served = server.get_json(f"/api/workflow_templates/{PACK_TEMPLATES_NAME}/{name}.json")
        assert served == load_ui(name)


def test_every_template_has_its_thumbnail(server):
    """Both frontends show <name>.jpg from the template folder (api/workflow_templates/<pack>/<name>.jpg) in a
    square card, and their placeholder when it is missing; scripts/demo.py (make demo) draws them."""
    assert {p.stem for p in (REPO / "workflows").glob("*.jpg")} == set(WORKFLOWS), "run make demo"
    for name in WORKFLOWS:
        status, body = server._request("GET", f"/api/workflow_templates/{PACK_TEMPLATES_NAME}/{name}.jpg")
        assert status == 200, f"{name}.jpg: HTTP {status}"
        img = Image.open(io.BytesIO(body))
        assert img.format == "JPEG" and img.size == (384, 384), (name, img.format, img.size)
        assert body == (REPO / "workflows" / f"{name}.jpg").read_bytes()


def test_template_names_sort_the_demo_ones_first_and_say_what_they_do():
    """The template browser shows only the file name of a custom node pack's template (1.32.9 also as its
    description, with spaces), sorted A-Z on request: the demo templates come first, in reading order."""
    assert sorted(WORKFLOWS)[: len(DEMO_TEMPLATES)] == DEMO_TEMPLATES
    for name in WORKFLOWS:
        assert re.fullmatch(r"p2p_(demo[1-9]|sd15|sdxl|flux|sd35|dit)_[a-z0-9_]+", name), name
        assert len(name.split("_")) >= 3, f"{name}: say what it does"
        # a template card's title is cut after about 25 characters ("p2p_demo_3_reweight_on_word_" was)
        assert len(name) <= 24, f"{name}: longer than a template card shows"
    readme = (REPO / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in WORKFLOWS), "README: list every template"


def _enlarged(node: dict) -> bool:
    """A demo template's ImageScaleBy that enlarges the 32 px images before a save or preview node."""
    return node["class_type"] == "ImageScaleBy" and node["_meta"]["title"].startswith("Enlarge")


def _twin_graph(api: dict) -> dict:
    """The graph without its values: class types (a checkpoint loader counts as a demo model) and links, the
    demo templates' enlarging nodes left out (their consumers linked to what they enlarge), nodes numbered
    in order."""
    skip = {nid: node["inputs"]["image"] for nid, node in api.items() if _enlarged(node)}
    number = {nid: i for i, nid in enumerate(n for n in api if n not in skip)}

    def source(link):
        while link[0] in skip:
            link = skip[link[0]]
        return (number[link[0]], link[1])

    out = {}
    for nid, node in api.items():
        if nid in skip:
            continue
        ct = node["class_type"]
        ct = "loader" if ct in ("CheckpointLoaderSimple", "P2PDemoModel", "P2PDemoFluxModel") else ct
        links = {k: source(v) for k, v in node["inputs"].items() if isinstance(v, list)}
        out[number[nid]] = (ct, links)
    return out


# The checkpoint each template names (ComfyUI's examples' file names).
CHECKPOINTS = {"sd1": "v1-5-pruned-emaonly.safetensors", "sdxl": "sd_xl_base_1.0.safetensors",
               "flux": "flux1-dev-fp8.safetensors", "sd35": "sd3.5_large_fp8_scaled.safetensors"}

# The checkpoint templates no demo model can run: the pack has no SD3 demo model.
NO_DEMO_TWIN = {"p2p_sd35_refine", "p2p_dit_chroma_blend", "p2p_dit_zimage_blend", "p2p_dit_qwen_image_blend",
                "p2p_dit_flux2klein_blend", "p2p_dit_flux2dev_blend", "p2p_dit_lumina2_blend"}


@pytest.mark.parametrize("name", sorted(CHECKPOINT_TEMPLATES))
def test_demo_twin_is_the_checkpoint_graph_on_the_demo_model(name):
    twin = {wf.name: wf.twin for wf in load_builder().all_workflows()}[name]
    if name in NO_DEMO_TWIN:
        assert twin is None
        return
    assert WORKFLOWS[twin] == "demo"
    assert _twin_graph(load_api(twin)) == _twin_graph(load_api(name)), f"{twin} is not {name}'s graph"


def _texts(api: dict) -> list[str]:
    out = []
    for node in api.values():
        i = node["inputs"]
        if node["class_type"] == "P2PPromptPair":
            out += [i["source"], *i["edits"].splitlines()]
        elif node["class_type"] == "CLIPTextEncode":
            out.append(i["text"])
        elif node["class_type"] in ("P2PLocalBlend", "P2PAttentionMaps"):
            out += [w.strip() for w in i["words"].split(",")]
        elif node["class_type"] == "P2PReweight":
            out += [w.split(":")[0].strip() for w in i["weights"].replace("\n", ",").split(",") if w.strip()]
    return out


@pytest.mark.parametrize("name", DEMO_TEMPLATES)
def test_demo_template_is_sized_and_worded_for_the_demo_model(name):
    """P2P Demo Model as the loader with a 128 px EmptyLatentImage (its 16x16 latent: the node's description),
    or P2P Demo Flux Model with a 64 px EmptySD3LatentImage (its 8x8 latent); 32 px images; only words of
    the demo models' captions (training/shapes_dataset.py)."""
    sys.path.append(str(REPO / "training"))
    from shapes_dataset import vocabulary

    api = load_api(name)
    types = [n["class_type"] for n in api.values()]
    assert "CheckpointLoaderSimple" not in types
    loaders = {"P2PDemoModel": ("EmptyLatentImage", 128), "P2PDemoFluxModel": ("EmptySD3LatentImage", 64)}
    (loader,) = [t for t in types if t in loaders]
    latent_node, px = loaders[loader]
    for node in api.values():
        if node["class_type"] in ("EmptyLatentImage", "EmptySD3LatentImage"):
            assert node["class_type"] == latent_node
            assert (node["inputs"]["width"], node["inputs"]["height"]) == (px, px)
        if node["class_type"] == "ImageScale":
            assert (node["inputs"]["width"], node["inputs"]["height"]) == (32, 32)
    unknown = {w for text in _texts(api) for w in text.split() if w not in vocabulary()}
    assert not unknown, f"{name}: words the demo model never saw: {unknown}"


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_notes_keep_each_paragraph_on_one_line(name):
    """Both frontends' Markdown renderer (tiptap) joins a hard-wrapped paragraph's lines without a space
    ("a *watercolor*painting"): a block of several lines must be a list, one item per line."""
    for node in load_ui(name)["nodes"]:
        if node["type"] not in ("MarkdownNote", "Note"):
            continue
        for block in node["widgets_values"][0].split("\n\n"):
            lines = block.splitlines()
            if len(lines) > 1:
                bad = [ln for ln in lines if not re.match(r"\s*(\d+\.|[-*]) ", ln)]
                assert not bad, f"{name}: hard-wrapped paragraph {lines}"


def _fit_view_scale(ui: dict, width: int, height: int) -> float:
    """The zoom both frontends open a template at (LGraphCanvas fitView: the nodes' bounds, title bars and
    10 px padding included, fill 75% of the canvas)."""
    x0 = min(n["pos"][0] for n in ui["nodes"]) - 10
    y0 = min(n["pos"][1] - 30 for n in ui["nodes"]) - 10
    x1 = max(n["pos"][0] + n["size"][0] for n in ui["nodes"]) + 10
    y1 = max(n["pos"][1] + n["size"][1] for n in ui["nodes"]) + 10
    return min(0.75 * width / max(x1 - x0, 300), 0.75 * height / max(y1 - y0, 300))


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_template_opens_at_a_readable_zoom(name):
    """At least 0.8 on a full-HD browser window (a 1920x960 canvas); tests/browser/test_browser.py measures it in
    both frontends."""
    assert _fit_view_scale(load_ui(name), 1920, 960) >= 0.8
    assert not load_ui(name)["extra"].get("ds"), "a saved view: frontend 1.32 would restore it instead of fitting"


def test_every_node_and_input_is_documented(object_info):
    pack = load_pack_module()
    problems = []
    for node_id in sorted(cls.NODE_ID for cls in pack.nodes.NODES):
        d = object_info[node_id]
        if not str(d.get("description") or "").strip():
            problems.append(f"{node_id}: no description")
        for section in ("required", "optional"):
            for name, spec in (d["input"].get(section) or {}).items():
                opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if not str(opts.get("tooltip") or "").strip():
                    problems.append(f"{node_id}.{name}: no tooltip")
        tips = d.get("output_tooltips") or []
        if len(tips) != len(d["output"]) or not all(str(t or "").strip() for t in tips):
            problems.append(f"{node_id}: output tooltips {tips!r} for outputs {d['output']}")
    assert not problems, "\n".join(problems)



def _inversion_sampling(api: dict) -> list[tuple[str, dict, dict, dict]]:
    """(sampler id, sampler, its P2P Apply, that Apply's P2P Invert) for every sampler node whose
    model is a P2P Apply with an `inversion` input."""
    out = []
    for nid, node in api.items():
        model = node["inputs"].get("model")
        if not isinstance(model, list) or api[model[0]]["class_type"] != "P2PApply":
            continue
        apply = api[model[0]]
        link = apply["inputs"].get("inversion")
        if isinstance(link, list):
            out.append((nid, node, apply, api[link[0]]))
    return out


def _through_guidance(api: dict, link: list) -> dict:
    """The node a conditioning input comes from, past a FluxGuidance."""
    node = api[link[0]]
    return api[node["inputs"]["conditioning"][0]] if node["class_type"] == "FluxGuidance" else node


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_inversion_workflows_sample_with_the_inversion_settings(name):
    """What P2P Apply's inversion wrapper requires (KSamplerAdvanced without noise, ddim /
    ddim_uniform on UNet models, euler / simple on flow models, the inversion's steps, the whole schedule), in the file and in its tiny version
    (steps shrunk alike on both nodes); P2P Invert takes the Prompt Pair's source (its `prompts` input)."""
    api = load_api(name)
    cases = _inversion_sampling(api)
    if not any(n["class_type"] == "P2PInvert" for n in api.values()):
        assert not cases
        return
    assert cases, "P2P Invert's inversion reaches no sampler through P2P Apply"
    for version in (api, tiny_api(api, WORKFLOWS[name])):
        for nid, ks, _apply, inv in _inversion_sampling(version):
            where = f"node {nid} ({ks['class_type']})"
            assert ks["class_type"] == "KSamplerAdvanced", where
            i, s = inv["inputs"], ks["inputs"]
            assert s["add_noise"] == "disable", where
            flow = any(n["class_type"] in ("P2PDemoFluxModel", "EmptySD3LatentImage") for n in api.values()) or \
                WORKFLOWS[name] in ("flux", "sd35")
            want = ("euler", "simple") if flow else ("ddim", "ddim_uniform")
            assert (s["sampler_name"], s["scheduler"]) == want, where
            assert s["steps"] == i["steps"], f"{where}: steps {s['steps']} != P2P Invert's {i['steps']}"
            assert s["start_at_step"] == 0 and s["end_at_step"] >= s["steps"], where
            assert s["return_with_leftover_noise"] == "disable", where
            assert s["cfg"] == i["guidance"], where
            # the sampler's latent is P2P Invert's LATENT repeated by P2P Latent Batch
            batch = version[s["latent_image"][0]]
            assert batch["class_type"] == "P2PLatentBatch", where
            assert version[batch["inputs"]["latent"][0]] is inv, where
    for _, ks, _apply, inv in cases:
        pair = _through_guidance(api, ks["inputs"]["positive"])
        assert pair["class_type"] == "P2PPromptPair"
        # the source prompt typed once: P2P Invert reads it from the same Prompt Pair
        assert "positive" not in inv["inputs"] and api[inv["inputs"]["prompts"][0]] is pair
        if api[ks["inputs"]["positive"][0]]["class_type"] == "FluxGuidance":  # Flux: one distilled guidance,
            assert api[ks["inputs"]["positive"][0]]["inputs"]["guidance"] == 3.5  # the Prompt Pair's default
        # the official 50 steps on a SD checkpoint, 20 on Flux.1 dev (ComfyUI's example); make demo's 20 on the demo
        assert inv["inputs"]["method"] == "direct"
        assert inv["inputs"]["steps"] == (20 if WORKFLOWS[name] in ("demo", "flux") else 50)


def test_flux_demo_photo_edit_keeps_the_kept_object_s_colour(server):
    """p2p_demo7_flux_photo on the real demo photo: the square turns red and the circle keeps the
    reconstruction's colour (the decoder alone turned it orange, mean RGB 234/209/48 -> 228/183/56: the
    template pastes the edit onto the reconstruction inside the blend's region only; docs/workflows.md)."""
    import numpy as np

    sys.path.append(str(REPO / "scripts"))
    sys.path.append(str(REPO / "training"))
    import demo

    demo.draw_photo(server.input_dir / demo.PHOTO)
    photo = np.asarray(Image.open(server.input_dir / demo.PHOTO).convert("RGB"), np.float64)
    circle = (photo[..., 0] > 150) & (photo[..., 1] > 150) & (photo[..., 2] < 120)  # yellow
    square = (photo[..., 2] > 150) & (photo[..., 0] < 120)  # blue
    api = load_api("p2p_demo7_flux_photo")
    save = next(nid for nid, n in api.items() if n["class_type"] == "SaveImage")
    images = server.run(api, timeout=300)[save]["images"]
    rec, edit = (np.asarray(Image.open(io.BytesIO(server.fetch_image(i["filename"], i.get("subfolder", ""))))
                            .convert("RGB"), np.float64) for i in images)
    k = rec.shape[0] // photo.shape[0]  # enlarged x8, nearest-exact
    rec, edit = rec[::k, ::k], edit[::k, ::k]
    assert circle.sum() > 50 and square.sum() > 50
    assert np.abs(edit - rec)[circle].mean() < 1.0, (rec[circle].mean(0), edit[circle].mean(0))
    red = edit[square].mean(0)
    assert red[0] > red[2] + 40 and np.abs(edit - rec)[square].mean() > 40, red
