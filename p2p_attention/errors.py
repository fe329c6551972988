"""The engine's one error type and its warnings: what is wrong, in the user's terms, without node
names or wiring."""

import logging
from collections.abc import Callable


class P2PError(ValueError):
    """Bad input or a graph the engine cannot run.

    `fix` names the remedy when it is a change of wiring; nodes/ turns it into words and prefixes the
    node's display name, so the engine never needs to know how the nodes are called or connected.
    """

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


# How sampling-time errors reach the user: nodes/ passes a function that names the node and the fix
# (an error it has already named must come back unchanged); the engine alone raises them as they are.
Explain = Callable[[P2PError], Exception]


def as_is(error: P2PError) -> Exception:
    return error


# Where else a warning goes besides the console: nodes/ adds one that shows it in ComfyUI's UI.
_listeners: list[Callable[[str], None]] = []


def add_warning_listener(listener: Callable[[str], None]) -> None:
    """Call `listener(text)` with every later warning's text (once per listener, however often added)."""
    if listener not in _listeners:
        _listeners.append(listener)


def warn(message: str, *args) -> None:
    """A warning in ComfyUI's console: something will work, but not as the user probably wants.
    On the root logger, as ComfyUI logs: a named logger is disabled by any later
    logging.config.dictConfig (disable_existing_loggers), and its warnings would vanish.
    Every listener (nodes/: the UI) gets the same text."""
    text = message % args if args else message
    logging.warning("Prompt-to-Prompt: %s", text)
    for listener in list(_listeners):
        listener(text)
