"""Wall time of `mtlspec run specs/quickstart.yaml` (the README's main job); target: under 2 minutes here.

Also times `python -c "import torch"` in the same run, so a reader can scale the figure to
another machine. The dataset cache is warmed first (generation is timed separately).
Run: .venv/bin/python bench/quickstart_time.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 120.0


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        warm = _timed([sys.executable, "-m", "mtlspec", "run", "specs/quickstart.yaml", "--quiet", "--out", out,
                       "--set", "training.epochs=1", "--set", "training.max_steps_per_epoch=1"])
        wall = _timed([sys.executable, "-m", "mtlspec", "run", "specs/quickstart.yaml", "--quiet", "--out", out])
        runs = sorted(Path(out).glob("quickstart/*/report.json"))
        report = json.loads(runs[-1].read_text())
    torch_import = _timed([sys.executable, "-c", "import torch"])
    print(f"warm-up run (data generation, 1 step): {warm:6.1f} s")
    print(f"mtlspec run specs/quickstart.yaml     : {wall:6.1f} s (target < {TARGET_S:.0f} s; {wall / TARGET_S:.2f} of it)")
    print(f"python -c 'import torch'              : {torch_import:6.2f} s (for scale: run = {wall / torch_import:.0f}x)")
    for task, t in report["tasks"].items():
        parts = ", ".join(f"{m} {v:.3f} (trivial {t['baseline'].get(m, float('nan')):.3f})" for m, v in t["metrics"].items())
        print(f"  {task:<8} {parts}")
    return 0 if wall < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
