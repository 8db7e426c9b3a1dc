#!/usr/bin/env bash
# Everything the course claims about GPUs, measured in one go on a CUDA machine:
#   1. the CUDA tests (bf16 training, device order), which skip on a CPU-only machine;
#   2. the speed ladder (benchmarks/bench_train.py → benchmarks/results/train_speed_cuda.json,
#      which chapter 7 shows once its notebook is re-run);
#   3. the `gpu` preset against its goal: validation loss ≤ 1.47, and the training time it
#      takes to get there (TARGET, default 1.47; evaluations excluded, compilation included).
#
#   bash scripts/gpu_report.sh [OUT_DIR]          # default OUT_DIR: runs/gpu_report
#
# Uses the python on PATH (a CUDA build of torch; `make setup` installs the CPU build) and
# the corpus in $LMKIT_DATA_DIR (default .lmkit_cache/, as `make data` leaves it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu_report}
TARGET=${TARGET:-1.47}
PY=${PY:-python3}
mkdir -p "$OUT"
export LMKIT_DATA_DIR=${LMKIT_DATA_DIR:-$PWD/.lmkit_cache}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

"$PY" - <<'EOF' | tee "$OUT/device.txt"
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for a GPU machine"
p = torch.cuda.get_device_properties(0)
print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
      f"bf16 {torch.cuda.is_bf16_supported()}")
EOF

echo "== CUDA tests"
LMKIT_REFERENCE=all "$PY" -m pytest -q -p no:cacheprovider tests/test_train.py tests/test_env.py \
    tests/test_model.py 2>&1 | tee "$OUT/tests.txt"

echo "== speed ladder"
"$PY" benchmarks/bench_train.py --steps 30 2>&1 | tee "$OUT/ladder.txt"
cp benchmarks/results/train_speed_cuda.json "$OUT/"

echo "== gpu preset to val <= $TARGET"
LMKIT_REFERENCE=all "$PY" -m lmkit.train --preset gpu --sample 300 \
    target_loss="$TARGET" out_dir="$OUT/gpu" 2>&1 | tr '\r' '\n' | grep -v "^training:" \
    | tee "$OUT/train.txt"
cp "$OUT/gpu/curves.png" "$OUT/" 2>/dev/null || true
echo "report in $OUT"
