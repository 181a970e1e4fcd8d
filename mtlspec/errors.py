"""Diagnostics (file:line:col, code, path, message) and the exit codes every command shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass

EXIT_OK = 0
EXIT_INVALID = 1  # an invalid spec, or a failed gate
EXIT_USAGE = 2  # a usage error, or a broken installation


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem found in a spec, pointed at the line and column where it is written."""

    file: str
    line: int
    col: int
    code: str
    path: str
    message: str
    severity: str = "error"

    def format(self) -> str:
        where = f" {self.path}:" if self.path else ""
        return f"{self.file}:{self.line}:{self.col}: {self.severity}[{self.code}]{where} {self.message}"

    def github(self) -> str:
        """A GitHub Actions workflow command that annotates the line in a pull request."""
        level = "error" if self.severity == "error" else "warning"
        message = f"[{self.code}] {self.path}: {self.message}".replace("%", "%25").replace("\n", "%0A")
        return f"::{level} file={self.file},line={self.line},col={self.col},title=mtlspec {self.code}::{message}"

    def to_dict(self) -> dict:
        return asdict(self)


class SpecError(Exception):
    """A spec could not be used; carries every diagnostic found."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.format() for d in diagnostics))


class UsageError(Exception):
    """A command was called wrongly (bad option value, missing path): exit 2."""
