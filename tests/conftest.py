"""Shared fixtures: a CLI runner and a helper that writes spec files."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtlspec.cli import app

REPO = Path(__file__).resolve().parent.parent


def pytest_report_header(config):
    """The machine and versions this run tested: results that hold on one CPU's BLAS kernels or
    one dependency version show up here first."""
    import os
    import platform
    from importlib import metadata

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), None) \
        if os.path.exists("/proc/cpuinfo") else None
    lines = [f"machine: {cpu or platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}"]
    found = []
    for dist in ("numpy", "scipy", "scikit-learn", "torch", "pydantic", "mmcv", "mmdet", "pycocotools", "torchjd"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    lines.append("versions: " + ", ".join(found))
    try:
        import numpy  # noqa: F401  (loads the BLAS that threadpoolctl then describes)
        import scipy.linalg  # noqa: F401
        import threadpoolctl
        import torch

        blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')})" for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        lines.append(f"blas: {', '.join(blas) or 'unknown'}; torch cpu capability: {torch.backends.cpu.get_cpu_capability()}")
    except ImportError:
        pass
    return lines


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


@pytest.fixture
def write(tmp_path):
    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write


def tiny_spec(name: str, tasks: str, rest: str, test: int = 8) -> str:
    """A spec on a tiny multidigits split and a tiny model: seconds to train on a CPU."""
    return (
        f"name: {name}\n"
        "data:\n"
        "  datasets:\n"
        f"    digits: {{type: multidigits, canvas: 32, objects: {{max: 2}}, splits: {{train: 16, val: 8, test: {test}}}}}\n"
        "  batch_size: 8\n"
        "  image_size: 32\n"
        "tasks:\n"
        + "".join(f"  {line}\n" for line in tasks.strip("\n").splitlines())
        + "model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: FPN, out_channels: 8}}\n"
        + rest
    )


class StopAfter:
    """A run callback that stops training once epoch `n` is checkpointed, as a kill would leave it."""

    def __init__(self, n: int):
        self.n = n

    def checkpointed(self, epoch: int, path: Path) -> None:
        from mtlspec.train.loop import TrainingError

        if epoch >= self.n:
            raise TrainingError(f"stopped after epoch {epoch} as the test asked; resume from {path}")


def run_result(result, root: Path, **kwargs):
    """`mtlspec run`'s orchestrator on a validated result (a model or an ensemble): its Outcome."""
    from mtlspec.run import RunRequest, execute

    kwargs.setdefault("log", lambda message: None)
    return execute(RunRequest.of(result), root, **kwargs)


def ensemble_of(result, root: Path, log=None):
    """(ensemble directory, report) of an ensemble spec run by the orchestrator."""
    outcome = run_result(result, root, log=log or (lambda message: None))
    assert outcome.kind == "ensemble"
    return outcome.run_dir, outcome.report


def dataset_of(spec, split: str, train: bool = False, base: Path = Path(".")):
    """A split's samples for a spec's task types, as training (train=True) or evaluation reads it."""
    from mtlspec.build import build_task_types
    from mtlspec.data.build import build_dataset, build_sources

    return build_dataset(spec, split, train, base, build_task_types(spec, build_sources(spec, "train", base)))


def train_sources(spec, base: Path = Path(".")):
    """The training sources of the datasets a spec's tasks use."""
    from mtlspec.data.build import build_sources

    return build_sources(spec, "train", base)
