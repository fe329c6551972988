"""ComfyUI entry point of the Prompt-to-Prompt pack.

ComfyUI imports this package from custom_nodes/; the nodes live in nodes/, the engine in
p2p_attention/ (plain torch, usable without a server).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = None
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
