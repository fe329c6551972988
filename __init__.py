"""ComfyUI entry point of the Prompt-to-Prompt pack.

ComfyUI imports this package from custom_nodes/ and awaits `comfy_entrypoint()` (V3 schema,
through the versioned API `comfy_api.v0_0_2`); the nodes live in nodes/, the engine in
p2p_attention/ (plain torch, usable without a server).

WEB_DIRECTORY holds no script: only the node help pages (web/docs/<NodeName>/en.md and their
pictures), which ComfyUI serves under /extensions/<this folder's name>/ and the frontend's node help
panel reads. A .js file there would be loaded by every browser tab as a frontend extension.

template_order.py sorts this pack's entry of the server's template listing by name, so the template
browser shows the demo templates first (ComfyUI lists a pack's workflows/ folder unsorted), and leaves out a
template this ComfyUI is too old to run (template_order.MIN_COMFYUI).
"""

from comfy_api.v0_0_2 import ComfyExtension, io

from . import template_order
from .nodes import NODES

WEB_DIRECTORY = "web"


class P2PExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> P2PExtension:
    template_order.install()
    return P2PExtension()


__all__ = ["comfy_entrypoint"]
