"""Every workflow in workflows/, dropped on the real ComfyUI frontend in headless Chromium.

The real ComfyUI server (tests/harness.py's ComfyServer, with the pack and the test-only tiny
model) serves its real frontend (comfyui-frontend-package 1.32.9 with the pinned 0.3.75, 1.49.6
with 0.33.0 under `make e2e-current`); Debian's `chromium`
(/usr/bin/chromium) is driven by Playwright's Python package (its bundled driver; no
`playwright install`). For each workflow, in a fresh browser profile:

1. drop the UI file on the canvas (a DataTransfer drop event: the frontend's own drop handler);
2. no dialog or toast appears (missing nodes, schema/link validation), every node type is
   registered, the frontend's save of the loaded graph has the file's nodes, widgets and links,
   and its API export (graphToPrompt) equals the API twin in workflows/api/;
3. swap the checkpoint loader for P2PTestTinyModel through the page (same node id, outputs
   reconnected), shrink latents (and image resizes) to 64 px and steps to 4;
4. click Run; the prompt the frontend posts equals the tiny version of the API twin; wait for
   /history and check every image output (the P2P batch, attention-map grid, mask).

On failure a screenshot, the browser console and the server log go to $P2P_E2E_ARTIFACTS
(default .tmp/e2e-artifacts/). `make e2e` installs chromium (apt, as root) and playwright.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from harness import ComfyServer
from workflow_util import (
    PACK_TEMPLATES_NAME,
    REPO,
    SIZED_NODES,
    TINY_SIZE,
    TINY_STEPS,
    WORKFLOWS,
    check_history_images,
    input_images,
    load_api,
    load_ui,
    tiny_api,
)

CHROMIUM = os.environ.get("P2P_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
ARTIFACTS = Path(os.environ.get("P2P_E2E_ARTIFACTS", REPO / ".tmp" / "e2e-artifacts"))

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def _skip_reason() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"browser test: no Chromium at {CHROMIUM} (Debian: apt-get install chromium; `make e2e` does it)"
    if sync_playwright is None:
        return "browser test: the playwright package is not installed (`make e2e` installs it into .venv)"
    return None


pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
]

# Records every dialog and toast the frontend shows from now on (they may close again), with its
# latest text: PrimeVue dialogs and toasts (frontend 1.32), and in 1.49 its reka dialogs
# ([role=dialog]) and the error overlay over the canvas (missing nodes or models, as "dialogs").
_WATCH_JS = """() => {
  window.__p2p = {dialogs: [], toasts: [], errors: []};
  const seen = new Map();
  const record = (el, list, text) => {
    if (!seen.has(el)) { seen.set(el, [list, list.length]); list.push(text); }
    else { const [l, i] = seen.get(el); l[i] = text; }
  };
  const scan = () => {
    for (const el of document.querySelectorAll('.p-dialog, [role=dialog], [data-testid=error-overlay]')) {
      record(el, window.__p2p.dialogs, el.innerText.slice(0, 2000));
    }
    for (const el of document.querySelectorAll('.p-toast-message')) {
      record(el, window.__p2p.toasts, el.className + ': ' + el.innerText.slice(0, 2000));
    }
  };
  new MutationObserver(scan).observe(document.body, {childList: true, subtree: true, characterData: true});
  window.addEventListener('error', e => window.__p2p.errors.push(String(e.message)));
  window.addEventListener('unhandledrejection', e => window.__p2p.errors.push(String(e.reason)));
  scan();
}"""

_DROP_JS = """([text, filename]) => {
  const dt = new DataTransfer();
  dt.items.add(new File([text], filename, {type: 'application/json'}));
  return dt;
}"""

# The frontend's own save of the loaded graph, and its API export.
_SNAPSHOT_JS = """async () => {
  const broken = app.graph.nodes
    .filter(n => n.has_errors || !LiteGraph.registered_node_types[n.type])
    .map(n => `${n.id}:${n.type}`);
  const saved = app.graph.serialize();
  const prompt = await app.graphToPrompt();
  return {broken, saved, api: prompt.output};
}"""

# Through the page, as a user would in the editor: replace each checkpoint loader by the tiny test
# model (same id and place, outputs reconnected), shrink latents/resizes and every `steps` widget
# (P2P Invert's and the sampler's alike, so they still match).
_TINY_JS = """({arch, size, steps, sized}) => {
  const g = app.graph;
  const link = id => (g.links instanceof Map ? g.links.get(id) : g.links[id]);
  const swapped = [];
  for (const old of [...g.nodes]) {
    if (old.type !== 'CheckpointLoaderSimple') continue;
    const targets = old.outputs.map(o => (o.links || []).map(id => [link(id).target_id, link(id).target_slot]));
    const {id} = old;
    const pos = [old.pos[0], old.pos[1]];
    g.remove(old);
    const tiny = LiteGraph.createNode('P2PTestTinyModel');
    tiny.id = id;
    tiny.pos = pos;
    g.add(tiny);
    const widget = name => tiny.widgets.find(w => w.name === name);
    widget('arch').value = arch;
    widget('seed').value = 0;
    if (widget('control_after_generate')) widget('control_after_generate').value = 'fixed';
    targets.forEach((ts, slot) => ts.forEach(([t, tslot]) => tiny.connect(slot, g.getNodeById(t), tslot)));
    swapped.push(id);
  }
  for (const n of g.nodes) {
    for (const w of n.widgets || []) {
      if (sized.includes(n.type) && ['width', 'height'].includes(w.name)) w.value = size;
      if (w.name === 'steps' && typeof w.value === 'number') w.value = Math.min(w.value, steps);
      if (w.name === 'inner_iterations' && typeof w.value === 'number') w.value = Math.min(w.value, 1);
    }
  }
  g.setDirtyCanvas(true, true);
  return swapped;
}"""

_COMPARED_NODE_KEYS = ("type", "title", "mode", "properties", "widgets_values", "color", "bgcolor")


def _node_view(node: dict) -> dict:
    view = {k: node.get(k) for k in _COMPARED_NODE_KEYS}
    view["widgets_values"] = node.get("widgets_values") or []  # frontend 1.49 saves none when a node has no widget
    view["inputs"] = [(i["name"], i["type"], i.get("link"), (i.get("widget") or {}).get("name"))
                      for i in node.get("inputs") or []]
    view["outputs"] = [(o["name"], o["type"], sorted(o.get("links") or [])) for o in node.get("outputs") or []]
    return view


def _resaved_view(node: dict, object_info: dict) -> dict:
    """_node_view of a file's node as the frontend saves it again: an output node whose file lists
    no outputs (nothing linked; SaveImage/PreviewImage have an IMAGE output since ComfyUI 0.25.0)
    gets this server's outputs back, unlinked (frontend 1.49.6 adds them; 0.3.75 has none)."""
    view = _node_view(node)
    d = object_info.get(node["type"])
    if d and d.get("output_node") and not view["outputs"]:
        names = d.get("output_name") or d["output"]
        view["outputs"] = [(names[i], t, []) for i, t in enumerate(d["output"])]
    return view


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ComfyServer(tmp_path_factory.mktemp("comfy_browser"))
    # A returning user: no first-run template browser over the canvas.
    settings = srv.user_dir / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    # A user who has the workflows' checkpoints: empty placeholders under their names, so the
    # checkpoint list offers them (frontend 1.49 marks a loader of a missing model as in error).
    # The test swaps every loader for the tiny model before running: they are never loaded.
    ckpts = srv.base_dir / "models" / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOWS:
        for node in load_ui(name)["nodes"]:
            if node["type"] == "CheckpointLoaderSimple":
                (ckpts / node["widgets_values"][0]).touch()
    with srv:
        yield srv


@pytest.fixture(scope="module")
def playwright():
    pw = sync_playwright().start()
    yield pw
    pw.stop()


class Browser:
    """A fresh Chromium profile with the ComfyUI frontend open; records console and page errors."""

    def __init__(self, playwright, server: ComfyServer, profile: Path):
        self.server = server
        self.console: list[str] = []
        self.context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1000},
        )  # fmt: skip
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"))

    def open(self) -> None:
        page = self.page
        page.goto(self.server.url, wait_until="load", timeout=120_000)
        page.wait_for_function(
            "() => window.app && app.graph && app.canvas && LiteGraph.registered_node_types['KSampler']"
            " && document.querySelector('[data-testid=queue-button]')",
            timeout=120_000,
        )
        # the startup workflow (default graph) has loaded when the canvas has nodes
        page.wait_for_function("() => app.graph.nodes.length > 0", timeout=60_000)
        # and the startup spinner's full-screen mask is gone (frontend 1.49 keeps it up a moment
        # after the graph loads; a drop while it closes leaves it over the page)
        page.wait_for_function("() => !document.querySelector('.p-blockui-mask')", timeout=60_000)
        # a blank workflow first: 1.49's startup workflow (a template) names models this server lacks,
        # and its error overlay would count as the drop's
        page.evaluate("() => app.extensionManager.command.execute('Comfy.NewBlankWorkflow')")
        page.wait_for_function(
            "() => app.graph.nodes.length === 0 && !document.querySelector('[data-testid=error-overlay]')",
            timeout=30_000,
        )
        page.evaluate(_WATCH_JS)

    def drop(self, text: str, filename: str) -> None:
        page = self.page
        data_transfer = page.evaluate_handle(_DROP_JS, [text, filename])
        canvas = page.locator("#graph-canvas")
        canvas.dispatch_event("dragenter", {"dataTransfer": data_transfer})
        canvas.dispatch_event("dragover", {"dataTransfer": data_transfer})
        canvas.dispatch_event("drop", {"dataTransfer": data_transfer})

    def watched(self) -> dict:
        return self.page.evaluate("() => window.__p2p")

    def close(self) -> None:
        self.context.close()

    def save_artifacts(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"{name}.png"
        try:
            self.page.screenshot(path=str(shot), full_page=True, timeout=30_000)
        except Exception as e:  # the page may be gone; keep the logs anyway
            self.console.append(f"[test] screenshot failed: {e}")
        (ARTIFACTS / f"{name}.console.txt").write_text("\n".join(self.console))
        try:
            shutil.copyfile(self.server.log_path, ARTIFACTS / f"{name}.server.log")
        except OSError:
            pass
        return shot


@contextmanager
def browser_session(playwright, server, tmp_path, name):
    b = Browser(playwright, server, tmp_path / "chromium-profile")
    try:
        yield b
    except BaseException as e:
        shot = b.save_artifacts(name)
        raise AssertionError(
            f"{e}\n(screenshot: {shot}; console and server log beside it)\n"
            f"last console lines:\n" + "\n".join(b.console[-15:])
        ) from e
    finally:
        b.close()


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflow_drops_and_runs_in_the_frontend(name, server, playwright, tmp_path):
    t0 = time.monotonic()
    ui_text = (REPO / "workflows" / f"{name}.json").read_text()
    ui, api = load_ui(name), load_api(name)
    want_tiny = tiny_api(api, WORKFLOWS[name])
    for filename, data in input_images(want_tiny).items():
        (server.input_dir / filename).write_bytes(data)
    with browser_session(playwright, server, tmp_path, name) as b:
        page = b.page
        b.open()

        # 1-2: drop, then what the frontend made of it
        b.drop(ui_text, f"{name}.json")
        page.wait_for_function(
            "(nodes) => app.graph.nodes.length === nodes.length"
            " && nodes.every(([id, type]) => app.graph.getNodeById(id)?.type === type)",
            arg=[[n["id"], n["type"]] for n in ui["nodes"]], timeout=30_000,
        )  # fmt: skip
        page.wait_for_timeout(500)  # let dialogs/toasts of the load appear
        snap = page.evaluate(_SNAPSHOT_JS)
        watched = b.watched()
        assert not watched["dialogs"], f"dialog after the drop: {watched['dialogs']}"
        assert not watched["toasts"], f"toast after the drop: {watched['toasts']}"
        assert not watched["errors"], f"page errors after the drop: {watched['errors']}"
        assert not snap["broken"], f"nodes missing or in error: {snap['broken']}"
        saved = {n["id"]: _node_view(n) for n in snap["saved"]["nodes"]}
        info = server.object_info()
        assert saved == {n["id"]: _resaved_view(n, info) for n in ui["nodes"]}, "the frontend re-saves a different graph"
        assert sorted(map(tuple, snap["saved"]["links"])) == sorted(map(tuple, ui["links"]))
        assert snap["api"] == api, "the frontend's API export differs from workflows/api/" + f"{name}.json"

        # 3: tiny model through the page
        swapped = page.evaluate(
            _TINY_JS, {"arch": WORKFLOWS[name], "size": TINY_SIZE, "steps": TINY_STEPS, "sized": list(SIZED_NODES)}
        )
        loaders = sorted(int(i) for i, n in api.items() if n["class_type"] == "CheckpointLoaderSimple")
        assert sorted(int(i) for i in swapped) == loaders, f"swapped {swapped}, loaders {loaders}"  # 1.49: ids may be strings

        # 4: Run, as a user clicks it; the frontend posts /api/prompt
        # the Run button: inside [data-testid=queue-button] (frontend 1.32), or that button itself (1.49)
        run = page.locator("[data-testid=queue-button] button, button[data-testid=queue-button]").first
        with page.expect_response(
            lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST", timeout=60_000
        ) as response_info:
            run.click()
        response = response_info.value
        body = response.json()
        assert response.status == 200, f"/prompt refused the workflow: {body}"
        assert not body.get("node_errors"), body
        posted = response.request.post_data_json["prompt"]
        assert posted == want_tiny, "the frontend queued a different graph than the tiny API twin"
        entry = server.wait(body["prompt_id"], timeout=300)
        found = check_history_images(entry, want_tiny, server.object_info())

        # the frontend got the results over its websocket (the image nodes show them), no errors
        page.wait_for_function(
            "(ids) => ids.every(id => (app.nodeOutputs[id]?.images || []).length > 0)", arg=sorted(found),
            timeout=30_000,
        )  # fmt: skip
        assert page.evaluate("() => app.lastExecutionError") is None
        page.wait_for_timeout(300)
        watched = b.watched()
        assert not watched["dialogs"], f"dialog after the run: {watched['dialogs']}"
        assert not [t for t in watched["toasts"] if "error" in t or "warn" in t], watched["toasts"]
        assert not watched["errors"], f"page errors: {watched['errors']}"
    print(f"{name}: {time.monotonic() - t0:.1f} s")


def test_missing_node_dialog_is_detected(server, playwright, tmp_path):
    """The check above can fail: a workflow with an unknown node type raises the frontend's
    missing-nodes dialog, and the watcher records it."""
    ui = load_ui("p2p_word_swap")
    for node in ui["nodes"]:
        if node["type"] == "P2PWordSwap":
            node["type"] = "P2PNoSuchNode"
    with browser_session(playwright, server, tmp_path, "missing_node_control") as b:
        b.open()
        b.drop(json.dumps(ui), "missing_node_control.json")
        b.page.wait_for_function(
            "() => window.__p2p.dialogs.some(d => d.includes('P2PNoSuchNode'))", timeout=60_000
        )
        dialogs = b.watched()["dialogs"]
        assert any("P2PNoSuchNode" in d for d in dialogs), dialogs


def test_template_browser_lists_and_opens_the_workflows(server, playwright, tmp_path):
    """ComfyUI's template browser (Templates in the sidebar) shows the pack's workflows under its
    folder name, and opening one loads it cleanly."""
    with browser_session(playwright, server, tmp_path, "template_browser") as b:
        page = b.page
        b.open()
        page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        dialog = page.locator(".p-dialog, [role=dialog]").filter(has_text="Templates").first
        dialog.wait_for(timeout=60_000)
        # the pack's entry in the browser's navigation (1.49 lists custom nodes' templates only there)
        dialog.get_by_text(PACK_TEMPLATES_NAME, exact=True).first.click()
        for name in WORKFLOWS:
            dialog.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
        assert dialog.get_by_text(PACK_TEMPLATES_NAME, exact=True).count() >= 1
        page.evaluate("() => { window.__p2p.dialogs = []; window.__p2p.toasts = []; }")
        ui = load_ui("p2p_word_swap")
        dialog.get_by_text("p2p_word_swap", exact=True).first.click()
        page.wait_for_function(
            "(ids) => app.graph.nodes.length === ids.length && ids.every(id => app.graph.getNodeById(id))",
            arg=[n["id"] for n in ui["nodes"]], timeout=60_000,
        )  # fmt: skip
        page.wait_for_timeout(500)
        snap = page.evaluate(_SNAPSHOT_JS)
        assert not snap["broken"]
        assert snap["api"] == load_api("p2p_word_swap")
        watched = b.watched()
        assert not watched["toasts"] and not watched["errors"], watched
