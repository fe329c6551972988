"""Make a real ComfyUI importable outside its server (tests, demo, benchmarks).

Inside a running ComfyUI the pack never calls this: ComfyUI is already imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def comfyui_root() -> Path:
    """COMFYUI_PATH when set (a user's own install), else the pinned tree make setup unpacks."""
    env = os.environ.get("COMFYUI_PATH")
    root = Path(env) if env else REPO_ROOT / ".comfyui" / "ComfyUI"
    if not (root / "main.py").is_file():
        raise RuntimeError(
            f"No ComfyUI at {root}: run `make setup` (or set COMFYUI_PATH to a ComfyUI checkout)."
        )
    return root.resolve()


def bootstrap(cpu: bool = True) -> Path:
    """Put ComfyUI on sys.path and set its CLI args before comfy.model_management is imported."""
    root = comfyui_root()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if "comfy.model_management" not in sys.modules:
        import comfy.options

        comfy.options.enable_args_parsing(False)
        from comfy.cli_args import args

        args.cpu = cpu
        args.use_pytorch_cross_attention = True
        args.disable_api_nodes = True
    return root
