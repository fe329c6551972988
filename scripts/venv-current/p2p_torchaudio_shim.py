"""Test-venv only: lets PyPI's torchaudio 2.11.1 import beside the CPU torch 2.13 wheel.

ComfyUI >= 0.19.3 imports torchaudio at module level (comfy/sd.py -> comfy/ldm/lightricks/vae/
audio_vae.py), so `import comfy.sd` and main.py need it. PyPI's torchaudio wheel ships compiled
libraries (torchaudio/lib/*.so) built against another torch; loading them here fails. torchaudio
runs without them (it checks `_IS_TORCHAUDIO_EXT_AVAILABLE` and falls back to its pure-torch
code), so this makes its library loader report "not found" (`_load_lib` -> False) before
torchaudio's extension module runs. Installed by `scripts/setup_env.sh` (.venv) and `setup_env.sh current` into
.venv-current; never part of the pack.
"""

import importlib.abc
import sys


class _KeepTorchaudioLibsUnloaded(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torchaudio._extension.utils":
            return None
        sys.meta_path.remove(self)
        try:
            import importlib.util

            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            module._load_lib = lambda lib: False  # torchaudio/lib/*.so stay unloaded

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _KeepTorchaudioLibsUnloaded())
