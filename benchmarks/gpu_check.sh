#!/usr/bin/env bash
# GPU check in one run (< 8 min on one modern GPU): the dtype tests on CUDA in float16 and bfloat16,
# then the benchmark at 512 px (SD1.5-size UNet) and 1024 px (SDXL-size UNet).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # OUT_DIR, else $OUT, else ./gpu_check_out
#   PY=/path/to/python bash benchmarks/gpu_check.sh   # a Python whose torch has CUDA (default .venv/bin/python)
#
# Writes OUT_DIR/dtype_tests.txt (+ .xml), OUT_DIR/bench/results.{md,json}, worker.log, and
# OUT_DIR/summary.txt. The bench step runs benchmarks/run.py directly (what `make bench` runs),
# since `make bench` first runs `make setup`, which pins the CPU torch build.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_check_out}}"
PY="${PY:-.venv/bin/python}"
mkdir -p "$OUT_DIR/bench"
summary="$OUT_DIR/summary.txt"
: > "$summary"
started=$(date +%s)

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: $PY has no CUDA torch (torch.cuda.is_available() is False)" | tee -a "$summary" >&2
  exit 2
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$summary"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$summary" 2>/dev/null || true

# 1. The dtype subset on the GPU (~1 min): tests/engine/test_dtypes.py (bf16 + fp16) and the bound premise.
P2P_TEST_DEVICE=cuda timeout 120 "$PY" -m pytest tests/engine/test_dtypes.py tests/engine/test_bounds.py -q -s -p no:cacheprovider \
  --junitxml="$OUT_DIR/dtype_tests.xml" > "$OUT_DIR/dtype_tests.txt" 2>&1
tests_rc=$?
echo "dtype tests on cuda: exit $tests_rc ($(tail -n 1 "$OUT_DIR/dtype_tests.txt"))" | tee -a "$summary"

# 2. The benchmark (~5 min): every P2P mode at 512 px (SD1.5, 64x64 latent) and 1024 px (SDXL, 128x128),
#    20 steps, 2 timed reps after 1 warm-up; inversion (all four methods) on SD1.5 at 512 px, 50 steps.
timeout 340 "$PY" benchmarks/run.py --device cuda --models sd15,sdxl --sizes 64 --sdxl-sizes 128 \
  --steps 20 --reps 2 --warmup 1 --inversion-models sd15 --inversion-size 64 --inversion-steps 50 --inversion-reps 2 \
  --job-timeout 240 --out "$OUT_DIR/bench" > "$OUT_DIR/bench/stdout.txt" 2>&1
bench_rc=$?
echo "bench on cuda: exit $bench_rc (tables: $OUT_DIR/bench/results.md)" | tee -a "$summary"

echo "total $(( $(date +%s) - started )) s" | tee -a "$summary"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ]
