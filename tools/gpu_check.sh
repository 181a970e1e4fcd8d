#!/usr/bin/env bash
# Every GPU check of the project in one prepared call (issue 20), for a session that is lent a GPU
# machine: what the card is, how long mmcv's ops take to build for its architecture alone, the
# MMDetection stack on CUDA, the precision benchmark (fp32 / bf16 / fp16 autocast, channels_last),
# and the quickstart trained on CUDA. Each step
# has its own time limit and the script goes on after a failure, so one call shows them all; copy
# what it prints into docs/gpu.md. Budget: about 10 minutes with a warm pip cache (the mmcv build
# dominates the first time; GPU_CHECK_CPU_OPS=1 builds mmcv's ops without CUDA kernels to save it).
#   usage: bash tools/gpu_check.sh            (OUT=folder for the runs; default /tmp/gpu_check)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, say how long it took and how it ended
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  echo "=== $name (limit ${limit} s)"
  timeout "$limit" "$@"
  local status=$?
  echo "=== $name: exit $status after $((SECONDS - start)) s"
}

step "card" 30 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
ARCH=$(python3 -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}.{n}')" 2>/dev/null || echo "")
echo "compute capability: ${ARCH:-unknown (no CUDA torch on the system python)}"
if [ "${GPU_CHECK_CPU_OPS:-0}" = 1 ]; then
  step "install (mmcv ops without CUDA kernels)" 900 env MMCV_WITH_OPS=1 FORCE_CUDA=0 bash tools/install.sh
else
  step "install (mmcv ops for sm_${ARCH} only)" 900 env TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS="$(nproc)" bash tools/install.sh
fi
step "mtlspec env" 120 .venv/bin/mtlspec env
step "MMDetection stack test" 300 .venv/bin/python -m pytest -q tests/test_mmdet_stack.py
step "precision bench on CUDA" 300 .venv/bin/python bench/precision.py --device cuda --steps 20
step "quickstart on CUDA" 600 .venv/bin/mtlspec run specs/quickstart.yaml --set training.device=cuda --quiet --out "$OUT/runs"
step "quickstart report" 30 bash -c "cat $OUT/runs/quickstart/*/report.md | head -30"
