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
