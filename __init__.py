"""ComfyUI entry point of the Prompt-to-Prompt pack.

ComfyUI imports this package from custom_nodes/ and awaits `comfy_entrypoint()` (V3 schema,
through the versioned API `comfy_api.v0_0_2`); the nodes live in nodes/, the engine in
p2p_attention/ (plain torch, usable without a server).
"""

from comfy_api.v0_0_2 import ComfyExtension, io

from .nodes import NODES

WEB_DIRECTORY = None


class P2PExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> P2PExtension:
    return P2PExtension()


__all__ = ["comfy_entrypoint"]
