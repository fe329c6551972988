"""The example workflows in workflows/: the API twins describe the same graphs as the UI files, run
on the real ComfyUI server (tiny model in place of the checkpoint), are listed by ComfyUI's
template browser; and every node of the pack documents itself (description, input tooltips).

tests/test_browser.py loads the same files in the real frontend."""

from __future__ import annotations

import importlib.util
import io
import sys

import pytest
from harness import ComfyServer, load_pack_module
from PIL import Image
from workflow_util import (
    PACK_TEMPLATES_NAME,
    REPO,
    WORKFLOWS,
    check_history_images,
    input_images,
    load_api,
    load_ui,
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
    assert workflow_files() == set(WORKFLOWS), "add new workflows to WORKFLOWS in tests/workflow_util.py"
    api_files = {p.stem for p in (REPO / "workflows" / "api").glob("*.json")}
    assert api_files == set(WORKFLOWS)


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
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


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
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
            want = "sd_xl_base_1.0.safetensors" if WORKFLOWS[name] == "sdxl" else "v1-5-pruned-emaonly.safetensors"
            assert node["widgets_values"] == [want]


def test_workflow_files_are_what_the_builder_writes(object_info):
    spec = importlib.util.spec_from_file_location("p2p_build_workflows", REPO / "workflows" / "build_workflows.py")
    builder = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = builder  # dataclasses look their module up
    try:
        spec.loader.exec_module(builder)
    finally:
        del sys.modules[spec.name]
    built = {wf.name for wf in builder.all_workflows()}
    assert built == set(WORKFLOWS)
    for wf in builder.all_workflows():
        ui, api = builder.render(wf, object_info)
        assert builder.dumps(ui) == (REPO / "workflows" / f"{wf.name}.json").read_text(), (
            f"{wf.name}.json is stale: run .venv/bin/python workflows/build_workflows.py"
        )
        assert builder.dumps(api) == (REPO / "workflows" / "api" / f"{wf.name}.json").read_text()
        assert wf.arch == WORKFLOWS[wf.name]


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
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
    listed = server.get_json("/workflow_templates")
    assert sorted(listed.get(PACK_TEMPLATES_NAME, [])) == sorted(WORKFLOWS), listed
    for name in WORKFLOWS:  # the frontend fetches the file from here when a template is opened
        served = server.get_json(f"/api/workflow_templates/{PACK_TEMPLATES_NAME}/{name}.json")
        assert served == load_ui(name)


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


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_inversion_workflows_sample_with_the_inversion_settings(name):
    """What P2P Apply's inversion wrapper requires (KSamplerAdvanced without noise, ddim /
    ddim_uniform, the inversion's steps, the whole schedule), in the file and in its tiny version
    (steps shrunk alike on both nodes); the inverted prompt is the Prompt Pair's source."""
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
            assert (s["sampler_name"], s["scheduler"]) == ("ddim", "ddim_uniform"), where
            assert s["steps"] == i["steps"], f"{where}: steps {s['steps']} != P2P Invert's {i['steps']}"
            assert s["start_at_step"] == 0 and s["end_at_step"] >= s["steps"], where
            assert s["return_with_leftover_noise"] == "disable", where
            assert s["cfg"] == i["guidance"], where
            # the sampler's latent is P2P Invert's LATENT repeated by P2P Latent Batch
            batch = version[s["latent_image"][0]]
            assert batch["class_type"] == "P2PLatentBatch", where
            assert version[batch["inputs"]["latent"][0]] is inv, where
    for _, ks, _apply, inv in cases:
        pair = api[ks["inputs"]["positive"][0]]
        assert pair["class_type"] == "P2PPromptPair"
        source = api[inv["inputs"]["positive"][0]]
        assert source["class_type"] == "CLIPTextEncode"
        assert source["inputs"]["text"] == pair["inputs"]["source"], "P2P Invert's prompt is not the pair's source"
        assert inv["inputs"]["method"] == "direct" and inv["inputs"]["steps"] == 50
