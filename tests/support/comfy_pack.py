"""The pack and the test-only tiny model loader as ComfyUI custom nodes: a custom_nodes folder
linking both, and the pack imported the way ComfyUI imports one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY_PACK = REPO / "tests" / "tiny_pack"
PACK_LINK_NAME = "comfyui-prompt-to-prompt"
TINY_PACK_LINK_NAME = "p2p_tiny_test_models"
CUSTOM_NODE_NAMES = (PACK_LINK_NAME, TINY_PACK_LINK_NAME)


def make_custom_nodes_dir(tmp_path: Path | str) -> Path:
    """A custom_nodes folder linking this pack and the test-only tiny model loader."""
    d = Path(tmp_path) / "custom_nodes"
    d.mkdir(parents=True, exist_ok=True)
    for name, target in ((PACK_LINK_NAME, REPO), (TINY_PACK_LINK_NAME, TINY_PACK)):
        link = d / name
        if link.is_symlink() or link.exists():
            if link.resolve() == target.resolve():
                continue
            link.unlink()
        link.symlink_to(target.resolve(), target_is_directory=True)
    return d


def load_pack_module(name: str = "comfyui_prompt_to_prompt"):
    """Import the repository root as a package under a unique name (no clash with `nodes`).

    Same name as the `pack` fixture of conftest.py, so both share one module.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
