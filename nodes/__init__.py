"""Thin ComfyUI node classes. No math here: every node calls into p2p_attention/."""

from .demo_nodes import P2PDemoModel
from .edit_nodes import P2PApply, P2PLocalBlend, P2PRefine, P2PReweight, P2PWordSwap
from .invert_nodes import P2PInvert
from .maps_nodes import P2PAttentionMaps
from .prompt_nodes import P2PLatentBatch, P2PPromptPair

_NODES = [P2PPromptPair, P2PLatentBatch, P2PWordSwap, P2PRefine, P2PReweight, P2PLocalBlend, P2PApply,
          P2PAttentionMaps, P2PInvert, P2PDemoModel]

NODE_CLASS_MAPPINGS = {cls.NODE_ID: cls for cls in _NODES}
NODE_DISPLAY_NAME_MAPPINGS = {cls.NODE_ID: cls.DISPLAY_NAME for cls in _NODES}
