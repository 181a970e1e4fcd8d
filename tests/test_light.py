"""`validate` and `schema` stay light: they never import torch or OpenMMLab."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

PROBE = """
import sys
from mtlspec.cli import app
sys.argv = ["mtlspec", *{args!r}]
try:
    app()
except SystemExit:
    pass
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"torch", "mmdet", "mmcv", "mmengine", "sklearn"}} | (
    {{m.split(".")[0] for m in sys.modules}} & {{"matplotlib"}} if sys.argv[1] != "compare" else set()))
print("HEAVY:", heavy, file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["validate", "specs/"], ["validate", "--format", "json", "specs/quickstart.yaml"], ["schema"],
                                  ["schema", "--format", "md"], ["--help"], ["compare", "tests"]])
def test_light_commands_import_no_heavy_library(args):
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "HEAVY: []" in out.stderr, out.stderr[-2000:]
