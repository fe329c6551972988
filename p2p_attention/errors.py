"""The engine's one error type: a message a user can act on, without node names or wiring."""


class P2PError(ValueError):
    """Bad input or a graph the engine cannot run; nodes/ prefixes the node's display name."""
