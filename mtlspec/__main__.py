"""`python -m mtlspec` runs the command-line interface."""

from mtlspec.cli import app

app()
