#!/usr/bin/env bash
# Creates (or refreshes) the project-local virtual environment .venv with mtlspec and its
# training stack: torch, mmengine 0.10.7, mmcv 2.1.0 built with its compiled ops, mmdet 3.3.0.
# Facts behind each step: ../shared/notes/INSTALL.md and docs/install.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv

if [ ! -x "$VENV/bin/python" ]; then
  if "$PY" -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null; then
    # A machine whose Python already has a CUDA torch keeps it: the venv sees it.
    echo "install: using the system's CUDA torch (venv with --system-site-packages)"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
P="$VENV/bin/python"
pip_install() { "$P" -m pip install --disable-pip-version-check -q "$@"; }

# mmcv's setup.py imports pkg_resources (gone in setuptools 81) and builds its ops against torch.
pip_install "setuptools>=68,<81" wheel ninja numpy
if ! "$P" -c "import torch" 2>/dev/null; then
  # The CPU build: a plain `pip install torch` would pull a CUDA build of several GB.
  echo "install: torch 2.13.0 (CPU build)"
  pip_install torch==2.13.0
fi
if ! "$P" -c "import mmcv.ops" 2>/dev/null; then
  echo "install: mmcv 2.1.0 with compiled ops (about 30 min on 2 cores the first time; pip's wheel cache makes it seconds after)"
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" pip_install --no-build-isolation mmcv==2.1.0
fi
pip_install -e ".[train,test]"
"$P" -c "import mmcv.ops, mmdet" || { echo "install: the MMDetection stack does not import; see docs/install.md" >&2; exit 1; }
touch "$VENV/.installed"
echo "install: done ($VENV)"
