"""`mtlspec validate specs/` must take under a quarter of `python -c "import torch"`.

Both are timed in this run, interleaved, as fresh processes (these machines are shared and
noisy: only the ratio means something). Prints both medians and the ratio; exits 1 when the
ratio is 0.25 or more.  Run: .venv/bin/python bench/validate_speed.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = 0.25


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    validate = [sys.executable, "-m", "mtlspec", "validate", "specs/"]
    torch = [sys.executable, "-c", "import torch"]
    _time(validate), _time(torch)  # warm the file cache for both
    v_times, t_times = [], []
    for _ in range(args.repeats):
        v_times.append(_time(validate))
        t_times.append(_time(torch))
    v, t = statistics.median(v_times), statistics.median(t_times)
    ratio = v / t
    print(f"mtlspec validate specs/ : {v * 1000:7.1f} ms (median of {args.repeats})")
    print(f"python -c 'import torch': {t * 1000:7.1f} ms (median of {args.repeats})")
    print(f"ratio validate/torch    : {ratio:.3f} (target < {TARGET})")
    return 0 if ratio < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
