"""The pack's templates in ComfyUI's template browser, sorted by name.

Both pinned frontends list a custom node pack's templates in the order of the server's
`GET /workflow_templates` (1.32.9's default sort is by date, which a pack's template has none of;
1.49.6's default keeps the order), and ComfyUI builds that list with an unsorted glob, so the order
depends on the file system. A small aiohttp middleware sorts this pack's list by name (the demo
templates, `p2p_demo1_*` to `p2p_demo7_*`, first), the families added later (`p2p_dit_*`: Chroma,
Z-Image, Qwen-Image, Flux.2 klein and dev, Lumina 2) after all the others; the lists of other packs are left as they are.
It is added while ComfyUI imports the pack (before its web app starts) and does nothing elsewhere.

A template whose model needs a newer ComfyUI than the running one declares its minimum here (MIN_COMFYUI, the
one declaration the tests read too): the listing leaves it out there, so the template browser never offers a
template that cannot run (Flux.2 klein: ComfyUI 0.3.75 has its nodes, but no klein text encoder: its CLIPLoader
loads the Qwen3 file as Z-Image's encoder, one layer 2560 wide where klein takes three stacked, 7680, and sampling
fails). The file stays in workflows/ and is served (a dropped file opens; it cannot run there).
"""

from __future__ import annotations

import json
from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parent / "workflows"
LISTING_PATHS = ("/workflow_templates", "/api/workflow_templates")
LAST = "p2p_dit_"  # the templates listed after the others
# The oldest ComfyUI each template runs on, where newer than the pack's own minimum (pyproject.toml's
# requires-comfyui), and why. Flux.2 klein's text encoder (KleinTokenizer, klein_te; CLIPLoader type flux2 on a
# Qwen3 file) came with ComfyUI 0.9.2 (Comfy-Org/ComfyUI PR 11890); of the ComfyUIs under test, 0.33.0 has it,
# 0.3.75 does not.
MIN_COMFYUI: dict[str, tuple[tuple[int, int, int], str]] = {
    "p2p_dit_flux2klein_blend": ((0, 9, 2), "Flux.2 klein's text encoder (CLIPLoader type flux2 on Qwen3 4B)"),
}


def version_tuple(version: str) -> tuple[int, ...]:
    """"0.33.0" -> (0, 33, 0); a suffix ("0.9.2rc1", "0.4.0+abc") ends a part."""
    parts = []
    for part in str(version).split(".")[:3]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    return tuple(parts)


def comfyui_version() -> tuple[int, ...] | None:
    """The running ComfyUI's version (its comfyui_version.py, beside main.py); None where there is none."""
    try:
        from comfyui_version import __version__
    except ImportError:
        return None
    return version_tuple(__version__)


def unavailable_reason(name: str, version: tuple[int, ...] | None) -> str | None:
    """Why template `name` cannot run on ComfyUI `version` (None: it can, or the version is unknown)."""
    need = MIN_COMFYUI.get(name)
    if need is None or version is None or tuple(version) >= need[0]:
        return None
    have = ".".join(map(str, version))
    return f"{name} needs ComfyUI {'.'.join(map(str, need[0]))} or newer ({need[1]}); this is ComfyUI {have}"


def listed(names, version: tuple[int, ...] | None) -> list[str]:
    """The templates the browser offers on ComfyUI `version`, in its order: those it can run."""
    return template_order(n for n in names if unavailable_reason(n, version) is None)


def template_order(names) -> list[str]:
    """The pack's template names in the order the browser lists them: by name, those starting with LAST last."""
    return sorted(names, key=lambda n: (n.startswith(LAST), n))


def sorted_listing(listing: dict, version: tuple[int, ...] | None = None) -> dict | None:
    """The listing with this pack's entry (the one naming exactly its workflows/*.json) sorted, without the
    templates ComfyUI `version` cannot run; None when there is nothing to change."""
    ours = {p.stem for p in WORKFLOWS.glob("*.json")}
    out, changed = dict(listing), False
    for key, names in listing.items():
        if isinstance(names, list) and set(names) == ours and names != listed(names, version):
            out[key], changed = listed(names, version), True
    return out if changed else None


def _middleware():
    from aiohttp import web

    version = comfyui_version()

    @web.middleware
    async def p2p_sorted_templates(request, handler):
        response = await handler(request)
        if request.method != "GET" or request.path not in LISTING_PATHS or getattr(response, "status", 0) != 200:
            return response
        try:
            listing = json.loads(response.body)
        except (AttributeError, TypeError, ValueError):
            return response
        ordered = sorted_listing(listing, version) if isinstance(listing, dict) else None
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
