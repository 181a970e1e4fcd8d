"""Run directories: made under a unique name (safe when several processes start at once), their
manifest's status kept true (running, finished, failed with its cause, interrupted), and made
ready for a resume without touching anything until the resume is known to be possible."""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import os
import re
import socket
import traceback
from pathlib import Path
from typing import Any

from mtlspec.errors import UsageError, printable
from mtlspec.io import write_text_atomic

MAX_COMPONENT = 100  # characters of a variant label kept in a folder name


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def safe_component(label: str) -> str:
    """A label as one folder name: file-name-safe characters, at most MAX_COMPONENT of them (a
    longer label keeps its start and a hash of the whole)."""
    text = re.sub(r"[^A-Za-z0-9_.+#~=,-]", "_", label).lstrip(".") or "_"
    if len(text) > MAX_COMPONENT:
        text = text[: MAX_COMPONENT - 13] + "~" + hashlib.sha256(label.encode()).hexdigest()[:12]
    return text


def new_run_dir(root: Path, name: str, variant: str = "", prefix: str = "") -> Path:
    """root/<name>[/<variant>]/<prefix><timestamp>[-n], created exclusively: two processes that
    start in the same second get two directories."""
    base = root / name / safe_component(variant) if variant else root / name
    base.mkdir(parents=True, exist_ok=True)
    stamp = prefix + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        path = base / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def write_manifest(run_dir: Path, info: dict[str, Any]) -> None:
    write_text_atomic(run_dir / "manifest.json", json.dumps(info, indent=2) + "\n")


def read_manifest(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{run_dir} is not a run directory: its manifest.json cannot be read ({type(exc).__name__})") from None


def running(info: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a run that starts (or resumes) now, with what tells a crashed run from a
    live one: the process and host (a run killed with SIGKILL cannot record its own end)."""
    return {**info, "status": "running", "pid": os.getpid(), "host": socket.gethostname(), "error": None}


def record_failure(run_dir: Path, info: dict[str, Any], exc: BaseException) -> Path:
    """Mark the run failed (or interrupted) with its cause in one line, and keep the full trace
    beside the manifest. Returns the trace file."""
    trace = run_dir / "traceback.txt"
    write_text_atomic(trace, "".join(traceback.format_exception(exc)))
    interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit))
    if isinstance(exc, KeyboardInterrupt):  # a stop signal's message names the checkpoint it wrote
        cause = printable(f"interrupted: {exc}" if str(exc) else "interrupted")[:500]
    else:
        cause = printable(f"{type(exc).__name__}: {exc}".splitlines()[0])[:500]
    write_manifest(run_dir, {**info, "status": "interrupted" if interrupted else "failed", "error": cause, "ended": now()})
    return trace
