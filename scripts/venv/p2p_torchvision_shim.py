"""Test-venv only: lets PyPI's torchvision 0.28 import beside the CPU torch 2.13 wheel.

PyPI's torchvision binary ops do not load against this torch build, and torchvision's
import then fails registering fake kernels for ops that were never defined. ComfyUI only
needs torchvision importable (a few model modules import it at module level); this defines
the two op schemas just before torchvision is imported. Installed by scripts/setup_env.sh
into .venv; never part of the pack.
"""

import importlib.abc
import sys

_libs = []


class _DefineTorchvisionOps(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            import torch

            try:
                lib = torch.library.Library("torchvision", "DEF")
                lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
                lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
                _libs.append(lib)
            except RuntimeError:  # already defined (a working torchvision build)
                pass
        return None


sys.meta_path.insert(0, _DefineTorchvisionOps())
