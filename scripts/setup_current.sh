#!/usr/bin/env bash
# The current upstream ComfyUI (0.33.0) under test beside the pinned 0.3.75, idempotently
# (`make test-current`, `make e2e-current`; also `scripts/setup_env.sh current`):
#   .comfyui-current/ComfyUI  the upstream tree from ComfyUI-0.33.0-783545f6.tar.xz, sha256-checked;
#                             found at $P2P_COMFYUI_TARBALL, else <repo>/../shared/comfyui/, else
#                             /work/shared/comfyui/
#   .venv-current             the tree's requirements.txt minus torch/torchvision/torchaudio, under
#                             scripts/venv-current/constraints.txt (torch==2.13.0 CPU,
#                             torchvision==0.28.0 and the set of versions that worked), the pack's
#                             test tools from requirements-test.txt, PyPI's torchvision and torchaudio
#                             without deps, and the two test-only import shims that let them load
#                             beside the CPU torch (scripts/venv/p2p_torchvision_shim.py,
#                             scripts/venv-current/p2p_torchaudio_shim.py).
# A user's own ComfyUI (COMFYUI_PATH) is not touched: the *-current targets always test this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TARBALL=ComfyUI-0.33.0-783545f6.tar.xz
TARBALL_SHA256=51fd5dd6a25bfb71f19fa868b30b16671703b435e595c20bc86f3826c41e6f1a
TREE=.comfyui-current/ComfyUI
VENV=.venv-current

if [ ! -f "$TREE/main.py" ]; then
  tarball=
  for cand in "${P2P_COMFYUI_TARBALL:-}" "../shared/comfyui/$TARBALL" "/work/shared/comfyui/$TARBALL"; do
    if [ -n "$cand" ] && [ -f "$cand" ]; then tarball=$cand; break; fi
  done
  if [ -z "$tarball" ]; then
    echo "setup_current: $TARBALL not found (set P2P_COMFYUI_TARBALL to its path, or put it in" \
      "$(cd .. && pwd)/shared/comfyui/ or /work/shared/comfyui/)" >&2
    exit 1
  fi
  echo "$TARBALL_SHA256  $tarball" | sha256sum -c --quiet || {
    echo "setup_current: $tarball is not the expected $TARBALL (sha256 differs)" >&2; exit 1; }
  sums="$(dirname "$tarball")/SHA256SUMS"
  if [ -f "$sums" ] && ! grep -q "^$TARBALL_SHA256  $TARBALL\$" "$sums"; then
    echo "setup_current: $sums does not list $TARBALL with sha256 $TARBALL_SHA256" >&2
    exit 1
  fi
  rm -rf .comfyui-current/unpack
  mkdir -p .comfyui-current/unpack
  tar -xJf "$tarball" -C .comfyui-current/unpack
  [ -f .comfyui-current/unpack/ComfyUI/comfyui_version.py ] || { echo "setup_current: no ComfyUI/ in $tarball" >&2; exit 1; }
  mv .comfyui-current/unpack/ComfyUI "$TREE"
  rm -rf .comfyui-current/unpack
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp=$VENV/.deps-$(cat "$TREE/requirements.txt" requirements.txt requirements-test.txt scripts/venv/* \
  scripts/venv-current/* scripts/setup_current.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  rm -f "$VENV"/.deps-*
  pip=("$VENV/bin/python" -m pip install -q -c scripts/venv-current/constraints.txt)
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "${pip[@]}" torch==2.13.0
  # ComfyUI's requirements without torch/torchvision/torchaudio (installed below without deps);
  # of requirements-test.txt only what the tree does not name (the test tools: its other pins are
  # 0.3.75's versions).
  mkdir -p .comfyui-current/req
  "$VENV/bin/python" - "$TREE/requirements.txt" requirements.txt requirements-test.txt <<'PYEOF'
import re
import sys

def name(line):
    line = line.split("#", 1)[0].strip()
    m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return (m.group(0).lower().replace("_", "-"), line) if m else (None, line)

skip = {"torch", "torchvision", "torchaudio"}
tree = [name(ln) for ln in open(sys.argv[1])]
named = {n for n, _ in tree if n}
out = [ln for n, ln in tree if n and n not in skip]
for extra in sys.argv[2:]:
    out += [ln for n, ln in map(name, open(extra)) if n and n not in skip and n not in named]
open(".comfyui-current/req/requirements.txt", "w").write("\n".join(out) + "\n")
PYEOF
  "${pip[@]}" -r .comfyui-current/req/requirements.txt
  # PyPI's torchvision and torchaudio without deps, so they cannot replace the CPU torch; their
  # compiled libraries do not load here, so two small import shims keep them importable.
  "${pip[@]}" --no-deps torchvision==0.28.0 torchaudio==2.11.1
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cp scripts/venv/p2p_torchvision_shim.py scripts/venv/p2p_torchvision_shim.pth \
    scripts/venv-current/p2p_torchaudio_shim.py scripts/venv-current/p2p_torchaudio_shim.pth "$site/"
  (cd "$TREE" && ../../"$VENV"/bin/python -c "import torch, torchvision, torchaudio, comfy.options" >/dev/null)
  touch "$stamp"
fi
echo "Using ComfyUI $(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$TREE/comfyui_version.py") at $(pwd)/$TREE ($VENV)"
