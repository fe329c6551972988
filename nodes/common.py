"""What every node module shares: the menu category and the pack's custom socket types."""

from comfy_api.v0_0_2 import io

CATEGORY = "prompt_to_prompt"

# Custom types: the socket names saved graphs and workflows connect by.
Prompts = io.Custom("P2P_PROMPTS")
Edit = io.Custom("P2P_EDIT")
Store = io.Custom("P2P_STORE")
Inversion = io.Custom("P2P_INVERSION")
