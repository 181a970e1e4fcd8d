#!/usr/bin/env bash
# Every GPU check of the project in one prepared call (issue 20), for a session that is lent a GPU
# machine: what the card is, how long mmcv's ops take to build for its architecture alone, the
# MMDetection stack on CUDA, the CUDA tests, the precision benchmark (fp32 / bf16 / fp16 autocast,
# channels_last), and the quickstart trained on CUDA.
# Each step has its own time limit and the script goes on after a failure, so one call shows them
# all; copy what it prints into docs/gpu.md. The limits add up to more than one device call (600 s):
# with the mmcv build (312 s on an H100 machine's 16 cores) the later steps may be cut, so tee the
# output into $OUT as it goes; with a carried mmcv wheel the whole script takes about 4 minutes.
#
# Two ways to install:
# - online (a machine that reaches the package registry): tools/install.sh into .venv;
# - offline (the lent machines reach nothing): GPU_CHECK_WHEELS=DIR names a folder of wheels for
#   that machine's Python (mmengine, mmdet, pydantic, pycocotools, ... and mmcv's source
#   distribution, or the parts of an mmcv wheel an earlier call built: mmcv-wheel.name and
#   mmcv-wheel.part*, which this script leaves in $OUT), installed with --no-index --no-deps into
#   /tmp/site beside the system's CUDA torch; docs/gpu.md lists how the folder is made.
#
#   usage: [GPU_CHECK_WHEELS=.whl] [GPU_CHECK_CPU_OPS=1] bash tools/gpu_check.sh   (OUT=folder for results)
# GPU_CHECK_CPU_OPS=1: mmcv built without CUDA kernels (a minute instead of five) and only the
# checks without detection heads (the precision bench on a ResNet-50, runs of a dense model).
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
  return $status
}

step "card" 30 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
WHEELS=${GPU_CHECK_WHEELS:-}
if [ -n "$WHEELS" ]; then
  PY=${PYTHON:-python3}
  SITE=/tmp/site
  export PYTHONPATH="$PWD:$SITE"  # this checkout's code first; /tmp/site holds the wheels and mtlspec's metadata
  ARCH=$("$PY" -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}.{n}')") \
    || { echo "gpu_check: $PY has no CUDA torch (set PYTHON=/path/to/python)"; exit 1; }
  "$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  PIP_OFFLINE=("$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE")
  step "carried wheels" 90 "${PIP_OFFLINE[@]}" "$WHEELS"/*.whl
  if ls "$WHEELS"/mmcv-wheel.part* >/dev/null 2>&1; then
    # an mmcv wheel built by an earlier call, brought back in parts of 15 MB (the device tool returns files of at most 16 MB)
    mkdir -p /tmp/mmcv_wheel && cat "$WHEELS"/mmcv-wheel.part* > "/tmp/mmcv_wheel/$(cat "$WHEELS"/mmcv-wheel.name)"
    step "mmcv from the carried wheel" 60 "${PIP_OFFLINE[@]}" /tmp/mmcv_wheel/mmcv-*.whl
  fi
  if [ "${GPU_CHECK_CPU_OPS:-0}" = 1 ] && ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
    # mmcv's ops without CUDA kernels (about a minute on 16 cores): enough for every spec without
    # a detection head, whose MMDetection ops would need the kernels on CUDA
    step "mmcv 2.1.0 build, CPU ops only, $(nproc) jobs" 240 env MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" \
      "$PY" -m pip wheel -q --disable-pip-version-check --no-index --no-deps --no-build-isolation "$WHEELS"/mmcv-2.1.0.tar.gz -w /tmp/mmcv_wheel \
      && "${PIP_OFFLINE[@]}" /tmp/mmcv_wheel/mmcv-*.whl
  fi
  if ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
    # --no-build-isolation: the build sees the system's CUDA torch and the carried setuptools<81 (pkg_resources)
    step "mmcv 2.1.0 build, ops for sm_${ARCH} only, $(nproc) jobs" 330 env MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH" \
      MAX_JOBS="$(nproc)" "$PY" -m pip wheel -q --disable-pip-version-check --no-index --no-deps --no-build-isolation \
      "$WHEELS"/mmcv-2.1.0.tar.gz -w /tmp/mmcv_wheel \
      && "${PIP_OFFLINE[@]}" /tmp/mmcv_wheel/mmcv-*.whl && ls -la /tmp/mmcv_wheel \
      && (cd /tmp/mmcv_wheel && ls mmcv-*.whl > "$OUT/mmcv-wheel.name" && split -b 15m -d mmcv-*.whl "$OUT/mmcv-wheel.part")
  fi
  step "mtlspec itself" 60 "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-build-isolation --target "$SITE" .
  MTLSPEC=("$PY" -m mtlspec)
else
  PY=.venv/bin/python
  ARCH=$(python3 -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}.{n}')" 2>/dev/null || echo "")
  step "install (mmcv ops for sm_${ARCH} only)" 900 env TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS="$(nproc)" bash tools/install.sh
  MTLSPEC=(.venv/bin/mtlspec)
fi
export PYTHONUNBUFFERED=1
step "mtlspec env" 60 "${MTLSPEC[@]}" env
DENSE=bench/specs/dense-resnet50.yaml
step "precision bench on CUDA, ResNet-50 dense tasks at 128 px" 120 "$PY" bench/precision.py --device cuda --steps 10 --batch 64 --spec $DENSE
if [ "${GPU_CHECK_COMPILE:-0}" = 1 ]; then  # torch.compile (Triton kernels): a few minutes of compiling on top
  step "precision bench on CUDA with torch.compile, ResNet-50 dense" 300 "$PY" bench/precision.py --device cuda --steps 10 --batch 64 --spec $DENSE --compile
fi
SMALL=()
for o in "model.backbone={type: SmallCNN, channels: [16, 32, 64]}" model.neck.out_channels=32 data.image_size=64 \
         data.datasets.digits.canvas=64 data.datasets.digits.splits.train=3000 data.batch_size=32 training.epochs=1 training.device=cuda; do
  SMALL+=(--set "$o")
done
for every in 1 25; do  # the host reads the losses every step, or every 25 steps (training.log_every)
  step "small dense model on CUDA, bf16, log_every $every" 90 "${MTLSPEC[@]}" run $DENSE "${SMALL[@]}" --set training.log_every=$every --quiet --out "$OUT/dense"
done
step "small dense model on CUDA, fp16 with its GradScaler, pcgrad" 90 "${MTLSPEC[@]}" run $DENSE "${SMALL[@]}" --set training.precision=fp16 \
  --set weighting.type=pcgrad --quiet --out "$OUT/dense"
step "their times" 20 "$PY" -c "
import json, pathlib, yaml
for t in sorted(pathlib.Path('$OUT/dense').rglob('timings.jsonl')):
    spec = yaml.safe_load((t.parent / 'spec.resolved.yaml').read_text())
    row = [json.loads(l) for l in t.read_text().splitlines()][-1]
    print(spec['training']['precision'], spec['weighting']['type'], 'log_every', spec['training']['log_every'], json.dumps(row)[:300])
"
if [ "${GPU_CHECK_CPU_OPS:-0}" = 1 ]; then
  rm -rf "$OUT/dense"
  exit 0  # the rest needs mmcv's CUDA kernels (detection heads)
fi
step "CUDA tests and the MMDetection stack test" 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_mmdet_stack.py
step "precision bench on CUDA" 90 "$PY" bench/precision.py --device cuda --steps 20
step "quickstart on CUDA" 200 "${MTLSPEC[@]}" run specs/quickstart.yaml --set training.device=cuda --quiet --out "$OUT/runs"
REPORT=$(ls -d "$OUT"/runs/quickstart/*/ 2>/dev/null | head -1)
if [ -n "$REPORT" ]; then
  step "quickstart report" 30 bash -c "head -40 '$REPORT/report.md'; cp '$REPORT/report.md' '$OUT/quickstart_report.md'; cp '$REPORT/timings.jsonl' '$OUT/quickstart_timings.jsonl'"
  step "predict on CUDA" 60 "${MTLSPEC[@]}" predict "$REPORT" test --device cuda --out "$OUT/predictions" --no-overlays
fi
rm -rf "$OUT/runs" "$OUT/predictions" "$OUT/dense"
