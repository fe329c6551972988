"""What the tiny pack's loader nodes share: their schema (a test-only node in testing/p2p giving a MODEL, a
CLIP and a VAE) and one cache of built parts per process."""

from __future__ import annotations

from collections.abc import Callable

from comfy_api.v0_0_2 import io

_CACHE: dict[tuple, object] = {}


def cached(key: tuple, build: Callable[[], object]):
    """build() once per process for key."""
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def loader_schema(node_id: str, display_name: str, description: str, inputs: list, outputs: list | None = None
                  ) -> io.Schema:
    """A test-only loader: category testing/p2p, outputs MODEL, CLIP, VAE unless told otherwise."""
    return io.Schema(
        node_id=node_id,
        display_name=display_name,
        category="testing/p2p",
        description=description,
        inputs=[*inputs, io.Int.Input("seed", default=0, min=0, max=2**31 - 1)],
        outputs=outputs or [
            io.Model.Output(display_name="MODEL"),
            io.Clip.Output(display_name="CLIP"),
            io.Vae.Output(display_name="VAE"),
        ],
    )
