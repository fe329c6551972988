"""The nodes' /object_info is the contract saved graphs and workflows load by.

tests/data/p2p_object_info.json is /object_info of the pack's nodes as the V1 classes gave it on
ComfyUI 0.3.75, before the move to the V3 schema. The running server's /object_info (whatever
ComfyUI: COMFYUI_PATH) must give the same ids, display names, inputs (types, defaults, bounds,
multiline, tooltips, required vs optional, order), outputs, output names and tooltips. Only what
the V3 schema writes differently is normalised:

* a V3 combo is `["COMBO", {"options": [...], "multiselect": false, ...}]`, a V1 one
  `[[...], {...}]`;
* V3 writes `"multiline": false` on one-line strings, which V1 left out (the same default);
* V3 adds node flags (api_node, deprecated, experimental; 0.33 adds is_input_list, dev_only,
  price_badge, search_aliases...): allowed only when empty or false.

Change a node's schema on purpose: edit the expected file in the same commit.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from harness import load_pack_module

EXPECTED_PATH = Path(__file__).resolve().parents[1] / "data" / "p2p_object_info.json"
EXPECTED = json.loads(EXPECTED_PATH.read_text())
V1_KEYS = {key for node in EXPECTED.values() for key in node}
V3_DEFAULTS = {"multiline": False, "multiselect": False}  # written by V3, left out by V1


def _normalise_input(spec: list) -> list:
    kind, opts = spec[0], dict(spec[1]) if len(spec) > 1 else {}
    if kind == "COMBO":
        kind = opts.pop("options")
        opts.pop("multiselect", None)
    for key, default in V3_DEFAULTS.items():
        if opts.get(key, not default) is default:
            del opts[key]
    return [kind, opts] if len(spec) > 1 else [kind]


def normalise(node: dict) -> dict:
    """A node's /object_info entry in the V1 spelling, V3-only flags dropped."""
    out = {k: v for k, v in node.items() if k in V1_KEYS}
    out["input"] = {
        section: {name: _normalise_input(spec) for name, spec in specs.items()}
        for section, specs in node["input"].items()
    }
    return out


def _pack_node_ids() -> list[str]:
    pack = load_pack_module()
    extension = asyncio.run(pack.comfy_entrypoint())
    return [cls.GET_SCHEMA().node_id for cls in asyncio.run(extension.get_node_list())]


def test_pack_entry_is_v3_only():
    from comfy_api.v0_0_2 import ComfyExtension, io

    pack = load_pack_module()
    # ComfyUI takes the V1 path when a module maps nodes, and would then ignore comfy_entrypoint.
    assert not hasattr(pack, "NODE_CLASS_MAPPINGS") and not hasattr(pack, "NODE_DISPLAY_NAME_MAPPINGS")
    assert not hasattr(pack.nodes, "NODE_CLASS_MAPPINGS")
    assert asyncio.iscoroutinefunction(pack.comfy_entrypoint)
    extension = asyncio.run(pack.comfy_entrypoint())
    assert isinstance(extension, ComfyExtension)
    classes = asyncio.run(extension.get_node_list())
    assert classes and all(issubclass(c, io.ComfyNode) for c in classes)
    assert sorted(_pack_node_ids()) == sorted(EXPECTED)
    for cls in classes:  # one place per node for its id and display name (the engine's messages use it)
        schema = cls.GET_SCHEMA()
        assert (schema.node_id, schema.display_name) == (cls.NODE_ID, cls.DISPLAY_NAME)
    assert "P2PTestTinyModel" not in _pack_node_ids()  # the tiny model loader is test-only (tests/tiny_pack)


def test_normalise_undoes_only_the_v3_spelling():
    v3 = ["COMBO", {"options": ["a", "b"], "multiselect": False, "default": "a", "tooltip": "t"}]
    assert _normalise_input(v3) == [["a", "b"], {"default": "a", "tooltip": "t"}]
    assert _normalise_input(["STRING", {"multiline": False, "default": ""}]) == ["STRING", {"default": ""}]
    assert _normalise_input(["STRING", {"multiline": True}]) == ["STRING", {"multiline": True}]
    assert _normalise_input(["P2P_EDIT", {"tooltip": "x"}]) == ["P2P_EDIT", {"tooltip": "x"}]


@pytest.mark.server
def test_object_info_of_every_node_is_unchanged(comfy_server):
    info = comfy_server.object_info()
    missing = sorted(set(EXPECTED) - set(info))
    assert not missing, f"not in /object_info: {missing}\n{comfy_server.log_tail()}"
    for node_id, expected in EXPECTED.items():
        live = info[node_id]
        extra = {k: v for k, v in live.items() if k not in V1_KEYS}
        assert not any(extra.values()), f"{node_id}: V3 flags set: {extra}"
        got = normalise(live)
        assert set(got) == set(expected), f"{node_id}: keys {sorted(set(got) ^ set(expected))}"
        for key in sorted(expected):
            assert got[key] == expected[key], (
                f"{node_id}.{key}:\n got      {json.dumps(got[key], sort_keys=True)}\n"
                f" expected {json.dumps(expected[key], sort_keys=True)}"
            )
