"""Shared fixtures: a CLI runner and a helper that writes spec files."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtlspec.cli import app

REPO = Path(__file__).resolve().parent.parent


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
