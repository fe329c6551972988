"""API-format graphs built readably: `g = Graph(); m = g.node("P2PTestTinyModel", arch="sd1", seed=0)`,
then `m[0]`, `m[1]` are links `[id, output_index]` for later nodes' inputs."""

from __future__ import annotations

from typing import Any


class Node:
    """A node added to a Graph; `node[i]` is the link `[id, i]` to its output i."""

    def __init__(self, graph: dict, node_id: str):
        self.graph = graph
        self.id = node_id

    def __getitem__(self, index: int) -> list:
        return [self.id, int(index)]

    def __repr__(self) -> str:
        return f"Node({self.id!r}, {self.graph[self.id]['class_type']})"


class Graph(dict):
    """An API-format prompt (a dict, JSON-ready). `node(...)` adds a node and returns it.

    Input values that are Nodes mean output 0 of that node; `[id, i]` lists pass through.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._next_id = 1 + max((int(k) for k in self if str(k).isdigit()), default=0)

    def node(self, class_type: str, _id: str | int | None = None, **inputs: Any) -> Node:
        if _id is None:
            while str(self._next_id) in self:
                self._next_id += 1
            _id = self._next_id
            self._next_id += 1
        node_id = str(_id)
        if node_id in self:
            raise ValueError(f"node id {node_id} already in the graph")
        self[node_id] = {
            "class_type": class_type,
            "inputs": {k: (v[0] if isinstance(v, Node) else v) for k, v in inputs.items()},
        }
        return Node(self, node_id)


def tiny_txt2img_graph(
    arch: str = "sd1",
    model_seed: int = 0,
    positive: str = "a photo of a cat",
    negative: str = "",
    size: int = 64,
    steps: int = 4,
    seed: int = 0,
    cfg: float = 7.0,
    sampler: str = "euler",
    scheduler: str = "normal",
    prefix: str = "p2p_test",
) -> Graph:
    """Tiny model -> CLIPTextEncode x2 -> EmptyLatentImage -> KSampler -> VAEDecode -> SaveImage.

    The SaveImage node has id "save".
    """
    g = Graph()
    m = g.node("P2PTestTinyModel", arch=arch, seed=model_seed)
    pos = g.node("CLIPTextEncode", clip=m[1], text=positive)
    neg = g.node("CLIPTextEncode", clip=m[1], text=negative)
    lat = g.node("EmptyLatentImage", width=size, height=size, batch_size=1)
    ks = g.node(
        "KSampler",
        model=m[0],
        positive=pos,
        negative=neg,
        latent_image=lat,
        seed=seed,
        steps=steps,
        cfg=cfg,
        sampler_name=sampler,
        scheduler=scheduler,
        denoise=1.0,
    )
    img = g.node("VAEDecode", samples=ks, vae=m[2])
    g.node("SaveImage", _id="save", images=img, filename_prefix=prefix)
    return g
