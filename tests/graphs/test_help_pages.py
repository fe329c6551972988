"""The node help pages: web/docs/<NodeName>/en.md, served by ComfyUI from the pack's WEB_DIRECTORY.

ComfyUI's frontend opens a custom node's help at /extensions/<pack>/docs/<NodeName>/en.md (then
docs/<NodeName>.md), <pack> being the second part of the node's python_module
(`custom_nodes.<pack folder>`, an `@version` suffix dropped), and resolves the page's relative
pictures against /extensions/<pack>/docs/. The server serves that folder when the pack's module
sets WEB_DIRECTORY (nodes.py: EXTENSION_WEB_DIRS; server.py: web.static('/extensions/' + name)).

Checked over HTTP on a real server, for every node /object_info lists from this pack: the page is
there, it is Markdown about that node, its Inputs table lists every input (with the schema's
default, or `—` / `optional` where there is none) and its Outputs table every output; every picture
it shows is served. Checked on the files: no script in the web folder (the frontend would load it
as an extension), pages short, pictures small copies of the templates' thumbnails.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from harness import REPO, load_pack_module

WEB = REPO / "web"
DOCS = WEB / "docs"
MAX_LINES = 80
MAX_PICTURE_BYTES = 100_000
PICTURE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|([^|]*)\|")


def _get(server, path: str) -> tuple[int, str, bytes]:
    """GET path: (status, content type, body)."""
    try:
        with urllib.request.urlopen(server.url + urllib.parse.quote(path), timeout=30) as r:
            return r.status, r.headers.get_content_type(), r.read()
    except urllib.error.HTTPError as e:
        return e.code, "", e.read()


def _section(page: str, title: str) -> list[str]:
    """The lines of the `## title` section."""
    lines = page.splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def _rows(page: str, title: str) -> dict[str, str]:
    """The table rows of a section: first cell (a `name`) -> second cell, stripped."""
    return {m.group(1): m.group(2).strip() for line in _section(page, title) if (m := ROW.match(line))}


def _expected_default(spec: list, optional: bool) -> str:
    opts = spec[1] if len(spec) > 1 else {}
    if "default" not in opts:
        return "optional" if optional else "—"
    default = opts["default"]
    return "empty" if default == "" else str(default)


def _pack_nodes(info: dict) -> dict[str, str]:
    """node id -> the pack folder name the frontend reads from python_module, for the pack's nodes."""
    ids = {cls.GET_SCHEMA().node_id for cls in load_pack_module().nodes.NODES}
    out = {}
    for node_id, node in info.items():
        parts = node.get("python_module", "").split(".")
        if node_id in ids and len(parts) >= 2 and parts[0] == "custom_nodes":
            out[node_id] = parts[1].split("@")[0]
    return out


def test_web_directory_holds_only_the_help_pages():
    pack = load_pack_module()
    assert (REPO / pack.WEB_DIRECTORY).resolve() == WEB.resolve()
    scripts = sorted(str(p.relative_to(WEB)) for p in WEB.rglob("*") if p.suffix in (".js", ".mjs", ".css"))
    assert not scripts, f"the frontend would load these as extensions: {scripts}"
    ids = sorted(cls.GET_SCHEMA().node_id for cls in pack.nodes.NODES)
    assert sorted(p.name for p in DOCS.iterdir() if p.is_dir() and p.name != "images") == ids
    for node_id in ids:
        page = (DOCS / node_id / "en.md").read_text(encoding="utf-8")
        assert len(page.splitlines()) <= MAX_LINES, f"{node_id}: over {MAX_LINES} lines"


def test_pictures_are_small_copies_of_the_template_thumbnails():
    """Each picture is a thumbnail `make demo` draws into workflows/ (and copies here): a stale copy fails."""
    used = set()
    for page in DOCS.glob("*/en.md"):
        for ref in PICTURE.findall(page.read_text(encoding="utf-8")):
            path = DOCS / ref
            assert path.is_file(), f"{page}: {ref} does not exist under web/docs/"
            used.add(path.resolve())
    pictures = {p.resolve() for p in (DOCS / "images").iterdir()}
    assert pictures == used, f"unused pictures: {sorted(str(p) for p in pictures - used)}"
    for path in pictures:
        assert path.stat().st_size < MAX_PICTURE_BYTES, f"{path.name}: {path.stat().st_size} bytes"
        assert path.read_bytes() == (REPO / "workflows" / path.name).read_bytes(), (
            f"web/docs/images/{path.name} differs from workflows/{path.name}: copy it again")


@pytest.mark.server
def test_every_node_help_page_is_served(comfy_server):
    info = comfy_server.object_info()
    nodes = _pack_nodes(info)
    assert len(nodes) == len(load_pack_module().nodes.NODES), sorted(nodes)
    (folder,) = set(nodes.values())
    for node_id in sorted(nodes):
        node = info[node_id]
        url = f"/extensions/{folder}/docs/{node_id}/en.md"
        status, kind, body = _get(comfy_server, url)
        assert status == 200, f"GET {url} -> HTTP {status}\n{comfy_server.log_tail()}"
        # ComfyUI 0.3.75 sends .md as application/octet-stream; the frontend reads the body with
        # fetch().text() whatever the type, so the body is what is checked: UTF-8 Markdown of this node.
        page = body.decode("utf-8")
        assert page.startswith(f"# {node['display_name']}\n"), f"{url}: {page[:80]!r}"

        rows = _rows(page, "Inputs")
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                assert name in rows, f"{node_id}: input {name!r} is not in the Inputs table of {url}"
                want = _expected_default(spec, section == "optional")
                got = rows[name].replace("`", "")
                assert got == want, f"{node_id}.{name}: the page says default {got!r}, the schema {want!r}"
        inputs = {n for s in node["input"].values() for n in s}
        assert not set(rows) - inputs, f"{node_id}: the page lists inputs the node lacks: {set(rows) - inputs}"
        if not inputs:
            assert _section(page, "Inputs") and "None." in _section(page, "Inputs")

        outputs = _rows(page, "Outputs")
        assert list(outputs) == list(node["output_name"]), f"{node_id}: outputs {list(outputs)}"

        for ref in PICTURE.findall(page):  # as the frontend resolves it: against .../docs/
            status, kind, body = _get(comfy_server, f"/extensions/{folder}/docs/{ref}")
            assert status == 200 and kind.startswith("image/") and body, f"{node_id}: picture {ref}: {status} {kind}"

    status, _, body = _get(comfy_server, "/extensions")  # the scripts the frontend loads
    assert status == 200 and f"/extensions/{folder}/" not in body.decode(), body[:2000]
