"""The command line: version, help listing every command, env on the installed stack, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mtlspec import __version__


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"mtlspec {__version__}"


def test_help_lists_every_command_with_one_line(cli):
    """Each command appears in the help on a line of its own, with the first line of its docstring."""
    from mtlspec.cli import app

    result = cli("--help")
    assert result.exit_code == 0
    commands = {c.name or c.callback.__name__: c.callback for c in app.registered_commands}
    assert set(commands) == {"env", "validate", "run", "graph", "compare", "reproduce", "schema", "predict", "export", "adapt"}
    lines = result.output.splitlines()
    for name, callback in commands.items():
        first = callback.__doc__.strip().splitlines()[0]
        (line,) = [line for line in lines if line.startswith(f"│ {name} ")]
        assert line.strip("│ ")[len(name):].strip().split()[:3] == first.split()[:3], (name, line)


@pytest.mark.stack
def test_env_reports_the_stack():
    pytest.importorskip("mmdet")
    out = subprocess.run([sys.executable, "-m", "mtlspec", "env"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("torch", "mmengine", "mmcv", "mmdet", "ops: ok"):
        assert name in out.stdout


def test_env_broken_stack_gives_one_line_and_exit_2(tmp_path):
    # A fake `mmcv` package that shadows the real one and cannot import its ops.
    fake = tmp_path / "mmcv"
    (fake / "ops").mkdir(parents=True)
    (fake / "__init__.py").write_text("__version__ = '2.1.0'\n")
    (fake / "ops" / "__init__.py").write_text("raise ImportError('libmmcv_ext.so: cannot open shared object file')\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "mtlspec", "env"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2
    assert "Traceback" not in out.stdout + out.stderr
    error_lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "mmcv" in error_lines[0]
