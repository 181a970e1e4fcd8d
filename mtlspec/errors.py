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


# Every diagnostic code, with what it means. Codes are stable: tools may match on them.
CODES = {
    "yaml-syntax": "the file is not valid YAML (or uses a tag other than plain YAML's)",
    "not-text": "the file is binary or not UTF-8 text",
    "too-large": "the file, or the data its aliases expand to, is too large",
    "too-deep": "the YAML is nested too deeply",
    "unreadable": "the file cannot be read",
    "duplicate-key": "a key is written twice in one mapping",
    "unknown-key": "a key the section does not have",
    "missing-key": "a required key is absent",
    "wrong-type": "a value of the wrong kind (a string where a number belongs ...)",
    "out-of-range": "a number or length outside its allowed range",
    "invalid-value": "a value outside a fixed set of choices",
    "invalid-name": "a name that breaks the naming rule",
    "unknown-type": "a `type:` tag that names nothing in the language",
    "unknown-dataset": "a task names a dataset that data.datasets does not define",
    "unknown-task": "a reference to a task that tasks does not define",
    "label-not-provided": "the task's dataset has no labels of that kind or name",
    "incompatible": "parts of the spec that cannot work together",
    "computed-field": "a field the compiler fills itself was written by hand",
    "unknown-path": "a matrix or override path that names no field",
    "bad-override": "a --set override that cannot be applied",
    "missing-file": "a file named by the spec does not exist",
    "extends-cycle": "specs extend each other in a cycle",
    "not-implemented": "(warning) part of the language this version cannot run yet",
    "bad-data": "(--deep) a dataset's files or annotations are wrong; the message names the file and sample",
    "build-error": "(--deep) the model cannot be built, or a head's output does not have the shape its task needs",
    "invalid": "any other invalid value (the message says why)",
    "internal-error": "a bug in mtlspec stopped a check; please report it",
}
