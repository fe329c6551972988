"""The pack's templates in ComfyUI's template browser, sorted by name.

Both pinned frontends list a custom node pack's templates in the order of the server's
`GET /workflow_templates` (1.32.9's default sort is by date, which a pack's template has none of;
1.49.6's default keeps the order), and ComfyUI builds that list with an unsorted glob, so the order
depends on the file system. A small aiohttp middleware sorts this pack's list by name (the demo
templates, `p2p_demo1_*` to `p2p_demo7_*`, first), the families added later (`p2p_dit_*`: Chroma,
Z-Image, Qwen-Image) after all the others; the lists of other packs are left as they are.
It is added while ComfyUI imports the pack (before its web app starts) and does nothing elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parent / "workflows"
LISTING_PATHS = ("/workflow_templates", "/api/workflow_templates")
LAST = "p2p_dit_"  # the templates listed after the others


def template_order(names) -> list[str]:
    """The pack's template names in the order the browser lists them: by name, those starting with LAST last."""
    return sorted(names, key=lambda n: (n.startswith(LAST), n))


def sorted_listing(listing: dict) -> dict | None:
    """The listing with this pack's entry (the one naming exactly its workflows/*.json) sorted; None when
    there is nothing to change."""
    ours = {p.stem for p in WORKFLOWS.glob("*.json")}
    out, changed = dict(listing), False
    for key, names in listing.items():
        if isinstance(names, list) and set(names) == ours and names != template_order(names):
            out[key], changed = template_order(names), True
    return out if changed else None


def _middleware():
    from aiohttp import web

    @web.middleware
    async def p2p_sorted_templates(request, handler):
        response = await handler(request)
        if request.method != "GET" or request.path not in LISTING_PATHS or getattr(response, "status", 0) != 200:
            return response
        try:
            listing = json.loads(response.body)
        except (AttributeError, TypeError, ValueError):
            return response
        ordered = sorted_listing(listing) if isinstance(listing, dict) else None
        return response if ordered is None else web.json_response(ordered)

    return p2p_sorted_templates


def install() -> bool:
    """Adds the middleware to ComfyUI's running PromptServer; False where there is none (tests in-process)."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    server = getattr(PromptServer, "instance", None)
    app = getattr(server, "app", None)
    if app is None or app.frozen:
        return False
    if not any(getattr(m, "__name__", "") == "p2p_sorted_templates" for m in app.middlewares):
        app.middlewares.append(_middleware())
    return True
