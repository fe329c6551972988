"""Thin ComfyUI node classes. No math here: every node calls into p2p_attention/."""

from .edit_nodes import P2PApply, P2PRefine, P2PReweight, P2PWordSwap
from .prompt_nodes import P2PLatentBatch, P2PPromptPair

_NODES = [P2PPromptPair, P2PLatentBatch, P2PWordSwap, P2PRefine, P2PReweight, P2PApply]

NODE_CLASS_MAPPINGS = {cls.NODE_ID: cls for cls in _NODES}
NODE_DISPLAY_NAME_MAPPINGS = {cls.NODE_ID: cls.DISPLAY_NAME for cls in _NODES}
