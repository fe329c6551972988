"""Every workflow in workflows/, in the real ComfyUI frontend in headless Chromium: dropped on the
canvas (the checkpoint templates, on the tiny test model) and opened from the template browser (all;
the demo-model templates also run as they are).

The real ComfyUI server (tests/support/harness.py's ComfyServer, with the pack and the test-only tiny
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

A newcomer's path on what `make demo-ui` starts (the pack alone, scripts/demo.py's custom nodes and
input folder), for each demo-model template: the template browser from the sidebar's Templates
button, the pack's entry under Extensions, the template's thumbnail (a JPEG served beside the file),
the template opened at a readable zoom with its note rendered word for word, Run, and the edit
measurably different from the source in /history (figures printed). Every template, checkpoint ones
included, opens from the template browser (through the logo menu's Browse Templates) with its
thumbnail, zoom and note checked.

On failure a screenshot, the browser console and the server log go to $P2P_E2E_ARTIFACTS
(default .tmp/e2e-artifacts/). `make e2e` installs chromium (apt, as root) and playwright.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from harness import ComfyServer
from PIL import Image
from workflow_util import (
    CHECKPOINT_TEMPLATES,
    DEMO_TEMPLATES,
    PACK_TEMPLATES_NAME,
    REPO,
    SIZED_NODES,
    TINY_LOADERS,
    TINY_SIZE,
    TINY_STEPS,
    WORKFLOWS,
    check_history_images,
    input_images,
    load_api,
    load_builder,
    load_ui,
    runnable,
    template_params,
    tiny_api,
)

sys.path.append(str(REPO / "scripts"))
import demo  # noqa: E402  (scripts/demo.py: make demo, make demo-ui)

CHROMIUM = os.environ.get("P2P_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
ARTIFACTS = Path(os.environ.get("P2P_E2E_ARTIFACTS", REPO / ".tmp" / "e2e-artifacts"))
# A full-HD screen's browser window for the template browser; the drop tests keep their 1600x1000.
TEMPLATE_VIEWPORT = {"width": 1920, "height": 960}
MIN_TEMPLATE_SCALE = 0.8  # the canvas zoom a template opens at (fitView; workflows/build_workflows.py's layout)

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
_TINY_JS = """({arch, loader, key, size, steps, sized}) => {
  const g = app.graph;
  const link = id => (g.links instanceof Map ? g.links.get(id) : g.links[id]);
  // UNETLoader, CLIPLoader, VAELoader (a family's separate files): one tiny loader, the UNETLoader's id, takes
  // their links as its MODEL, CLIP and VAE outputs (tiny_api's)
  const split = {UNETLoader: 0, CLIPLoader: 1, VAELoader: 2};
  const groups = [];
  let splitGroup = null;
  for (const old of [...g.nodes]) {
    if (old.type !== 'CheckpointLoaderSimple' && !(old.type in split)) continue;
    const targets = old.outputs.map(o => (o.links || []).map(id => [link(id).target_id, link(id).target_slot]));
    if (old.type === 'CheckpointLoaderSimple') {
      groups.push({id: old.id, pos: [old.pos[0], old.pos[1]], targets});
    } else {
      if (!splitGroup) { splitGroup = {id: null, pos: null, targets: [[], [], []]}; groups.push(splitGroup); }
      splitGroup.targets[split[old.type]].push(...targets[0]);
      if (old.type === 'UNETLoader') { splitGroup.id = old.id; splitGroup.pos = [old.pos[0], old.pos[1]]; }
    }
    g.remove(old);
  }
  const swapped = [];
  for (const {id, pos, targets} of groups) {
    const tiny = LiteGraph.createNode(loader);
    tiny.id = id;
    tiny.pos = pos;
    g.add(tiny);
    const widget = name => tiny.widgets.find(w => w.name === name);
    if (key) widget(key).value = arch;
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
    # The families loaded from separate files: their diffusion model, text encoder and VAE likewise.
    folders = {"CheckpointLoaderSimple": "checkpoints", "UNETLoader": "diffusion_models", "CLIPLoader": "text_encoders",
               "VAELoader": "vae"}
    for name in WORKFLOWS:
        for node in load_ui(name)["nodes"]:
            if node["type"] in folders:
                folder = srv.base_dir / "models" / folders[node["type"]]
                folder.mkdir(parents=True, exist_ok=True)
                (folder / node["widgets_values"][0]).touch()
    with srv:
        yield srv


def _settings(srv: ComfyServer, **settings) -> None:
    path = srv.user_dir / "default" / "comfy.settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings))


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """What `make demo-ui` starts (scripts/demo.py): the pack alone in custom_nodes, the demo photo and
    ComfyUI's example.png in the input folder; a first-time user's default settings, with the first-run
    template browser dismissed."""
    work = tmp_path_factory.mktemp("comfy_demo_ui")
    srv = ComfyServer(work, custom_nodes_dir=demo.pack_custom_nodes(work))
    demo.prepare_input(srv.input_dir)
    _settings(srv, **{"Comfy.TutorialCompleted": True})
    with srv:
        yield srv


@pytest.fixture(scope="module")
def playwright():
    pw = sync_playwright().start()
    yield pw
    pw.stop()


class Browser:
    """A fresh Chromium profile with the ComfyUI frontend open; records console and page errors."""

    def __init__(self, playwright, server: ComfyServer, profile: Path, viewport: dict | None = None):
        self.server = server
        self.console: list[str] = []
        self.context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport=viewport or {"width": 1600, "height": 1000},
        )  # fmt: skip
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"))
        self.responses: list[tuple[str, int, str]] = []  # (url, status, content-type) of every response
        self.page.on("response", lambda r: self.responses.append((r.url, r.status, r.headers.get("content-type", ""))))

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


def pack_errors(b: Browser) -> list[str]:
    """What went wrong in the page on the pack's account: a failed request for one of its files (help pages,
    templates, thumbnails: a 404 the page shows as a broken picture or an empty panel) and console errors
    naming the pack or one of its nodes."""
    failed = [f"HTTP {status} {url}" for url, status, _ in b.responses
              if status >= 400 and (PACK_TEMPLATES_NAME in url or "/P2P" in url)]
    ours = re.compile(rf"{re.escape(PACK_TEMPLATES_NAME)}|prompt_to_prompt|\bP2P", re.IGNORECASE)
    # the frontend's own look-ups of a node on the registry (api.comfy.org, blocked offline) are not the pack's
    errors = [line for line in b.console if line.startswith(("[error]", "[pageerror]")) and ours.search(line)
              and "api.comfy.org" not in line]
    return failed + errors


@contextmanager
def browser_session(playwright, server, tmp_path, name, viewport=None):
    b = Browser(playwright, server, tmp_path / "chromium-profile", viewport)
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


# A template this ComfyUI cannot run (template_order.MIN_COMFYUI: Flux.2 klein on 0.3.75) is skipped with its reason.
@pytest.mark.parametrize("name", template_params(sorted(CHECKPOINT_TEMPLATES)))
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
            _TINY_JS, {"arch": WORKFLOWS[name], "loader": TINY_LOADERS.get(WORKFLOWS[name], ("", ""))[0],
                       "key": TINY_LOADERS.get(WORKFLOWS[name], ("", ""))[1], "size": TINY_SIZE, "steps": TINY_STEPS,
                       "sized": list(SIZED_NODES)}
        )
        loaders = sorted(int(i) for i, n in api.items() if n["class_type"] in ("CheckpointLoaderSimple", "UNETLoader"))
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
    ui = load_ui("p2p_sd15_word_swap")
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


# --------------------------------------------------------------------------- the template browser

# Elements of a template card whose own text is the template's name and that show less than all of it.
_TITLE_CUT_JS = """(card, name) => [...card.querySelectorAll('*')]
  .filter(el => el.textContent.trim() === name && el.children.length === 0)
  .filter(el => el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1)
  .map(el => `${el.tagName}.${el.className}: ${el.clientWidth}/${el.scrollWidth} px`)"""

# Each Markdown note on the canvas as shown: whether its text overflows the note (cut off) and the height
# on screen of its paragraphs' text (the CSS font size times the canvas zoom the DOM widget is scaled by).
_NOTE_VIEW_JS = """() => [...document.querySelectorAll('.comfy-markdown')].map(el => {
  const box = el.querySelector('.tiptap, .ProseMirror, .p-textarea') || el;
  const p = el.querySelector('p') || el;
  const fontPx = parseFloat(getComputedStyle(p).fontSize);
  const r = el.getBoundingClientRect();
  const scale = el.offsetWidth ? r.width / el.offsetWidth : 1;
  return {cut: box.scrollHeight > box.clientHeight + 2, fontPx: fontPx * scale,
          scroll: box.scrollHeight, client: box.clientHeight};
})"""
# On screen, at the zoom the template opens at: both frontends draw a note's text at 10 CSS px times the canvas
# zoom, so a template that opens at >= 0.8 (MIN_TEMPLATE_SCALE) shows it at >= 8 px.
MIN_NOTE_TEXT_PX = 8

_CARD_JS = """(card) => {
  const img = card.querySelector('img');
  return {src: img ? (img.currentSrc || img.src) : null, width: img ? img.naturalWidth : 0,
          text: card.innerText};
}"""

# Each rendered block (heading, paragraph, list item's paragraph) of every Markdown note on the canvas.
_NOTE_BLOCKS_JS = """() => [...document.querySelectorAll('.comfy-markdown')].map(
  el => [...el.querySelectorAll('h1, h2, h3, h4, p')].map(b => b.textContent))"""


def _plain(text: str) -> str:
    """Markdown or rendered text without emphasis/code/heading marks, whitespace collapsed."""
    return " ".join(re.sub(r"[*`#\xad]", "", text).split())


def open_template_browser(b: Browser, via: str):
    """The template browser as a user opens it (both frontends: demo.TEMPLATES_BUTTON in the left
    sidebar, or the ComfyUI logo menu's demo.MENU_ITEM), then the pack's entry under Extensions; the
    dialog, once every template card is there."""
    page = b.page
    if via == "sidebar":
        button = page.locator(".templates-tab-button").first
        assert _plain(button.inner_text()) == demo.TEMPLATES_BUTTON
        button.click()
    else:
        page.locator(".comfy-menu-button-wrapper").first.click()
        page.locator(".comfy-command-menu").get_by_text(demo.MENU_ITEM, exact=True).first.click()
    dialog = page.locator(".p-dialog, [role=dialog]").filter(has_text="Templates").first
    dialog.wait_for(timeout=60_000)
    dialog.get_by_text(re.compile(f"^{demo.EXTENSIONS}$", re.IGNORECASE)).first.wait_for(timeout=30_000)
    dialog.get_by_text(PACK_TEMPLATES_NAME, exact=True).first.click()
    for name in runnable(WORKFLOWS):
        dialog.locator(f'[data-testid="template-workflow-{name}"]').wait_for(state="attached", timeout=30_000)
    return dialog


def listed_templates(dialog) -> list[str]:
    ids = dialog.locator("[data-testid^=template-workflow-]").evaluate_all("els => els.map(e => e.dataset.testid)")
    return [i.removeprefix("template-workflow-") for i in ids]


def check_thumbnail(b: Browser, dialog, name: str) -> dict:
    """The card shows <name>.jpg from the pack's template folder: the frontend fetched it (HTTP 200, a JPEG;
    on a 404 it shows its own placeholder, 224 px) and shows it (through a blob: URL of its media cache)."""
    card = dialog.locator(f'[data-testid="template-workflow-{name}"]')
    card.scroll_into_view_if_needed()
    path = f"/api/workflow_templates/{PACK_TEMPLATES_NAME}/{name}.jpg"
    b.page.wait_for_function(
        "(card) => { const i = card.querySelector('img'); return i && i.complete && i.naturalWidth > 0; }",
        arg=card.element_handle(), timeout=30_000,
    )  # fmt: skip
    fetched = [r for r in b.responses if r[0].endswith(path)]
    assert fetched and fetched[-1][1:] == (200, "image/jpeg"), f"{path}: {fetched or 'never fetched'}"
    shown = card.evaluate(_CARD_JS)
    body = b.page.request.get(b.server.url + path).body()
    assert body[:3] == b"\xff\xd8\xff", f"{path} is not a JPEG"
    img = Image.open(io.BytesIO(body))
    assert img.format == "JPEG" and img.size == (demo.THUMB, demo.THUMB) and shown["width"] == demo.THUMB, shown
    assert name in shown["text"], shown["text"]  # the card's title: the file name
    # the title is shown whole: no element of the card that holds exactly the name is cut (ellipsis/overflow)
    cut = card.evaluate(_TITLE_CUT_JS, name)
    assert cut == [], f"{name}: the card cuts its title {cut}"
    return {"bytes": len(body), "title": "whole"}


def open_template(b: Browser, dialog, name: str) -> dict:
    """Click the template's card; once the graph is loaded: the zoom it opens at and its note as rendered."""
    ui = load_ui(name)
    dialog.locator(f'[data-testid="template-workflow-{name}"]').click()
    b.page.wait_for_function(
        "(nodes) => app.graph.nodes.length === nodes.length"
        " && nodes.every(([id, type]) => app.graph.getNodeById(id)?.type === type)",
        arg=[[n["id"], n["type"]] for n in ui["nodes"]], timeout=60_000,
    )  # fmt: skip
    b.page.wait_for_timeout(500)  # fitView runs on the next frame; dialogs and toasts of the load appear
    scale = b.page.evaluate("() => app.canvas.ds.scale")
    assert scale >= MIN_TEMPLATE_SCALE, f"{name} opens at zoom {scale:.2f} (< {MIN_TEMPLATE_SCALE})"
    notes = [n["widgets_values"][0] for n in ui["nodes"] if n["type"] in ("MarkdownNote", "Note")]
    rendered = b.page.evaluate(_NOTE_BLOCKS_JS)
    assert len(rendered) == len(notes) == 1, rendered
    source, blocks = _plain(notes[0]), [_plain(t) for t in rendered[0] if t.strip()]
    # word for word: every rendered block is a run of the note's text (a hard-wrapped line would glue two
    # words: "a *watercolor*\npainting" renders "a watercolorpainting"), and together they are all of it
    glued = [t for t in blocks if t not in source]
    assert not glued, f"{name}: the note renders text that is not in it (words glued?): {glued}"
    assert sum(map(len, blocks)) >= 0.95 * len(source), (blocks, source)
    (view,) = b.page.evaluate(_NOTE_VIEW_JS)
    assert not view["cut"], f"{name}: the note's text is cut off ({view['scroll']} px of text in {view['client']} px)"
    assert view["fontPx"] >= MIN_NOTE_TEXT_PX, f"{name}: the note's text is {view['fontPx']:.1f} px high on screen"
    return {"scale": round(scale, 3), "note_blocks": len(blocks), "note_px": round(view["fontPx"], 1)}


@contextmanager
def _restored(server):
    try:
        yield
    finally:
        _settings(server, **{"Comfy.TutorialCompleted": True})


def test_every_template_is_listed_and_opens_readable(server, playwright, tmp_path):
    """Every template (checkpoint ones too, this server has placeholder checkpoints) from the template
    browser reached through the logo menu, sorted A-Z as a user may choose: the demo ones first, each with
    its JPEG thumbnail; opened, it fills the view at a readable zoom and its note renders word for word. A
    template this ComfyUI cannot run (template_order.MIN_COMFYUI) is not offered at all."""
    _settings(server, **{"Comfy.TutorialCompleted": True, "Comfy.Templates.SortBy": "alphabetical"})
    demo.prepare_input(server.input_dir)  # the images the templates' Load Image nodes name (1.49 checks them)
    figures = {}
    with browser_session(playwright, server, tmp_path, "template_browser", TEMPLATE_VIEWPORT) as b, _restored(server):
        b.open()
        for name in sorted(runnable(WORKFLOWS)):
            dialog = open_template_browser(b, via="menu")
            listed = listed_templates(dialog)
            assert listed == sorted(runnable(WORKFLOWS)), listed
            assert listed[: len(DEMO_TEMPLATES)] == DEMO_TEMPLATES, "the demo-model templates come first"
            figures[name] = check_thumbnail(b, dialog, name)
            b.page.evaluate("() => { window.__p2p.dialogs = []; window.__p2p.toasts = []; }")
            figures[name] |= open_template(b, dialog, name)
            snap = b.page.evaluate(_SNAPSHOT_JS)
            assert not snap["broken"], snap["broken"]
            assert snap["api"] == load_api(name), f"{name}: the opened template's API export differs"
            watched = b.watched()
            assert not watched["toasts"] and not watched["errors"], (name, watched)
            assert not watched["dialogs"], (name, watched["dialogs"])
        assert not pack_errors(b), pack_errors(b)
    for name, f in figures.items():
        print(f"{name}: zoom {f['scale']}, thumbnail {f['bytes']} B JPEG, note {f['note_blocks']} blocks, "
              f"note text {f['note_px']} px high, title {f['title']}")
    readme = (REPO / "README.md").read_text()
    for label in (demo.TEMPLATES_BUTTON, demo.MENU_ITEM, demo.EXTENSIONS, PACK_TEMPLATES_NAME):
        assert f"**{label}**" in readme, f"README: the template browser path lacks **{label}**"


# Figures of a demo template's run, on the 0-255 scale (mean absolute difference over the pixels and
# channels of 32x32 images), and the bounds they must meet. The bounds come from what the edit does: a big
# object (radius 6.5 px, 13% of the image) recoloured changes its pixels by 100+ levels, a small one (6%) by
# as much, so a colour edit moves the whole image's mean by 8+ (measured 14-17 on 0.3.75); the kept half of a
# local blend stays within the demo decoder's reach (README: 4.3 on 0.3.75), far below the edited half.
# The margins absorb float differences between ComfyUI versions.
DEMO_BOUNDS: dict[str, dict[str, tuple[str, float]]] = {
    "p2p_demo1_word_swap": {"edit1": (">", 8), "edit2": (">", 8)},  # 14.4, 16.9
    "p2p_demo2_refine": {"edit1": (">", 4)},  # 8.2: sizes change, colours stay
    "p2p_demo3_reweight": {"edit1": (">", 8)},  # 15.5 (the swap; the reweight adds ~2)
    "p2p_demo4_local_blend": {
        "edit1": (">", 5),  # 9.0
        "edited half (circle)": (">", 8),  # 13.8
        "kept half (square)": ("<", 6),  # 4.3
        "inside the mask": (">", 40),  # 73: the maps' mask of 'circle' (threshold 0.3)
    },
    # the Flux demo: its 4x VAE decodes one latent cell to 4x4 px, so the kept half's reach is wider
    "p2p_demo6_flux_blend": {
        "edit1": (">", 5),  # 12.9
        "edited half (circle)": (">", 8),  # 20.9
        "kept half (square)": ("<", 8),  # 4.8
        "inside the mask": (">", 40),  # 83: the maps' mask of 'circle' (threshold 0.3)
    },
    # the Flux demo's real image: its 4x VAE's decoder spreads the square's change into the circle's half
    # (12.1 there when the edit was saved as decoded); the template pastes each edit onto the reconstruction
    # inside the blend's region only (docs/workflows.md), so the circle's half stays the reconstruction's
    "p2p_demo7_flux_photo": {
        "edit1": (">", 8),  # 14.5
        "edited half (square)": (">", 20),  # 28.7
        "kept half (circle)": ("<", 3),  # 0.3
        "reconstruction vs photo": ("<", 20),  # 7.2: the Flux demo VAE's round trip of the photo
    },
    "p2p_demo5_photo_edit": {
        "edit1": (">", 8),  # 14.6
        "edited half (square)": (">", 12),  # 21.9
        "kept half (circle)": ("<", 10),  # 7.2
        "reconstruction vs photo": ("<", 20),  # 13.8: the demo VAE's round trip of the photo
    },
}


def demo_figures(name: str, api: dict, images: dict[str, list[np.ndarray]], photo: np.ndarray) -> dict[str, float]:
    main = next(nid for nid, n in api.items() if n["class_type"] == "SaveImage"
                and n["inputs"]["filename_prefix"] == f"p2p/{name}")
    k = images[main][0].shape[0] // photo.shape[0]  # the demo templates enlarge their 32 px images (nearest-exact)
    images = {nid: [im[::k, ::k] for im in ims] for nid, ims in images.items()}
    source, *edits = images[main]
    diffs = [np.abs(e - source).mean(-1) for e in edits]
    figures = {f"edit{k + 1}": float(d.mean()) for k, d in enumerate(diffs)}
    half = source.shape[1] // 2
    kinds = {n["class_type"] for n in api.values()}
    if "PreviewImage" in kinds:  # local blend: its mask previewed
        left, right = diffs[0][:, :half], diffs[0][:, half:]
        figures |= {"edited half (circle)": float(left.mean()), "kept half (square)": float(right.mean())}
        mask = next(images[nid][0] for nid, n in api.items() if n["class_type"] == "PreviewImage")[..., 0] > 127
        figures["inside the mask"] = float(diffs[0][mask].mean())
        figures["mask share"] = float(mask.mean())
    if "P2PInvert" in kinds:  # a real image
        left, right = diffs[0][:, :half], diffs[0][:, half:]
        figures |= {"edited half (square)": float(right.mean()), "kept half (circle)": float(left.mean()),
                    "reconstruction vs photo": float(np.abs(source - photo).mean())}
    return figures


@pytest.mark.parametrize("name", DEMO_TEMPLATES)
def test_demo_template_runs_as_is_from_the_template_browser(name, demo_server, playwright, tmp_path):
    """A newcomer on `make demo-ui`: Templates (sidebar) -> Extensions -> the pack -> the demo template ->
    Run. It runs as it is (no node to add, no link, no size to set), the edit measurably differs from the
    source, and the template's thumbnail is what this run draws."""
    t0 = time.monotonic()
    api, wf = load_api(name), {w.name: w for w in load_builder().all_workflows()}
    with browser_session(playwright, demo_server, tmp_path, name, TEMPLATE_VIEWPORT) as b:
        page = b.page
        b.open()
        registered = page.evaluate("() => Object.keys(LiteGraph.registered_node_types)")
        assert "P2PDemoModel" in registered and not [t for t in registered if "Tiny" in t], "test-only nodes loaded"
        # P2P Demo Model's description, as the frontend has it, gives the sizes the template uses
        description = page.evaluate("() => LiteGraph.registered_node_types.P2PDemoModel.nodeData?.description")
        sizes = {(n["inputs"]["width"], n["inputs"]["height"]) for n in api.values()
                 if n["class_type"] == "EmptyLatentImage"}
        assert all(f"{w}x{h} EmptyLatentImage" in description for w, h in sizes), (sizes, description)
        dialog = open_template_browser(b, via="sidebar")
        listed = listed_templates(dialog)
        # the frontend keeps the server's order by default, which the pack sorts by name: demos 1..7 first
        assert listed == demo_server.get_json("/workflow_templates")[PACK_TEMPLATES_NAME], listed
        assert listed[: len(DEMO_TEMPLATES)] == DEMO_TEMPLATES, listed
        thumb = check_thumbnail(b, dialog, name)
        page.evaluate("() => { window.__p2p.dialogs = []; window.__p2p.toasts = []; }")  # the browser itself
        view = open_template(b, dialog, name)
        snap = page.evaluate(_SNAPSHOT_JS)
        assert not snap["broken"], snap["broken"]
        assert snap["api"] == api, "the opened template's API export differs from workflows/api/" + f"{name}.json"
        watched = b.watched()
        assert not watched["dialogs"] and not watched["toasts"] and not watched["errors"], watched

        run = page.locator("[data-testid=queue-button] button, button[data-testid=queue-button]").first
        with page.expect_response(
            lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST", timeout=60_000
        ) as response_info:
            run.click()
        body = response_info.value.json()
        assert response_info.value.status == 200 and not body.get("node_errors"), body
        assert response_info.value.request.post_data_json["prompt"] == api, "the frontend queued another graph"
        entry = demo_server.wait(body["prompt_id"], timeout=300)
        found = check_history_images(entry, api, demo_server.object_info())
        page.wait_for_function(
            "(ids) => ids.every(id => (app.nodeOutputs[id]?.images || []).length > 0)", arg=sorted(found),
            timeout=30_000,
        )  # fmt: skip
        assert page.evaluate("() => app.lastExecutionError") is None
        watched = b.watched()
        assert not watched["dialogs"] and not watched["errors"], watched
        assert not pack_errors(b), pack_errors(b)

    fetch = demo_server.fetch_image
    images = {nid: [np.asarray(Image.open(io.BytesIO(fetch(i["filename"], i.get("subfolder", ""), i.get("type", "output"))))
                               .convert("RGB"), np.float64) for i in imgs] for nid, imgs in found.items()}
    photo = np.asarray(Image.open(demo_server.input_dir / demo.PHOTO).convert("RGB"), np.float64)
    figures = demo_figures(name, api, images, photo)
    failed = {k: (v, bound) for k, (op, bound) in DEMO_BOUNDS[name].items()
              for v in [figures[k]] if not (v > bound if op == ">" else v < bound)}
    assert not failed, f"{name}: figures outside their bounds {failed}; all: {figures}"

    # the thumbnails (this template's, and its checkpoint twins') are what this run draws (scripts/demo.py)
    tiles = demo.template_tiles(wf[name], api, entry["outputs"], fetch)
    for w in wf.values():
        if name in (w.name, w.twin):
            buf = io.BytesIO()
            demo.template_card(w, tiles).save(buf, "JPEG", quality=90)
            drawn = np.asarray(Image.open(buf), np.float64)
            shipped = np.asarray(Image.open(REPO / "workflows" / f"{w.name}.jpg"), np.float64)
            assert np.abs(drawn - shipped).mean() < 2.0, f"workflows/{w.name}.jpg is stale: run make demo"
    shown = ", ".join(f"{k} {v:.2f}" for k, v in figures.items())
    print(f"{name}: zoom {view['scale']}, thumbnail {thumb['bytes']} B; {shown}; {time.monotonic() - t0:.1f} s")


HELP_NODE = "P2PApply"


def test_node_help_panel_opens_the_packs_page(demo_server, playwright, tmp_path):
    """A node's help, as a user opens it: the node selected on the canvas, the selection toolbox's info button;
    the frontend fetches /extensions/<pack>/docs/<Node>/en.md (no 404, no fallback) and shows it."""
    path = f"/extensions/{PACK_TEMPLATES_NAME}/docs/{HELP_NODE}/en.md"
    first_line = (REPO / "web" / "docs" / HELP_NODE / "en.md").read_text().splitlines()[0].lstrip("# ").strip()
    with browser_session(playwright, demo_server, tmp_path, "node_help", TEMPLATE_VIEWPORT) as b:
        page = b.page
        b.open()
        page.evaluate(
            """(type) => { const n = LiteGraph.createNode(type); n.pos = [300, 200]; app.graph.add(n);
                           app.canvas.selectNode(n); app.canvas.setDirty(true, true); }""", HELP_NODE)
        page.locator("[data-testid=info-button]").first.click(timeout=30_000)
        page.wait_for_function("(t) => document.body.innerText.includes(t) && "
                               "[...document.querySelectorAll('h1, h2')].some(h => h.textContent.trim() === t)",
                               arg=first_line, timeout=30_000)
        fetched = [(status, url) for url, status, _ in b.responses if f"/docs/{HELP_NODE}" in url]
        assert fetched and all(status == 200 for status, _ in fetched), fetched
        assert any(url.endswith(path) for _, url in fetched), fetched
        watched = b.watched()
        assert not watched["errors"] and not pack_errors(b), (watched, pack_errors(b))
