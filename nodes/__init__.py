"""Thin ComfyUI node classes (V3 schema). No math here: every node calls into p2p_attention/."""

from .demo_nodes import P2PDemoFluxModel, P2PDemoModel
from .edit_nodes import P2PApply, P2PLocalBlend, P2PRefine, P2PReweight, P2PWordSwap
from .invert_nodes import P2PInvert
from .maps_nodes import P2PAttentionMaps
from .prompt_nodes import P2PLatentBatch, P2PPromptPair

NODES = [P2PPromptPair, P2PLatentBatch, P2PWordSwap, P2PRefine, P2PReweight, P2PLocalBlend, P2PApply,
         P2PAttentionMaps, P2PInvert, P2PDemoModel, P2PDemoFluxModel]
