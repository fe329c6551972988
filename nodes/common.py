"""What every node module shares: the menu category and the pack's custom socket types."""

from comfy_api.v0_0_2 import io

CATEGORY = "prompt_to_prompt"

# Custom types: the socket names saved graphs and workflows connect by.
Prompts = io.Custom("P2P_PROMPTS")
Edit = io.Custom("P2P_EDIT")
Store = io.Custom("P2P_STORE")
Inversion = io.Custom("P2P_INVERSION")


def node_schema(cls, **fields) -> io.Schema:
    """A node's schema: its id and display name (defined once, on the class) and the pack's category."""
    return io.Schema(node_id=cls.NODE_ID, display_name=cls.DISPLAY_NAME, category=CATEGORY, **fields)
