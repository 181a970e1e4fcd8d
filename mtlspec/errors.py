"""Diagnostics (file:line:col, code, path, message) and the exit codes every command shares."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_INVALID = 1  # an invalid spec, or a failed gate
EXIT_USAGE = 2  # a usage error, or a broken installation
EXIT_FAILED = 3  # a run started and could not finish: bad data, a diverging loss, an unusable checkpoint, interrupted
EXIT_INTERNAL = 4  # a bug in mtlspec; the full trace is written to a file named on stderr


def printable(text: str) -> str:
    """Text from a spec, safe to print on one line: control characters, line and paragraph
    separators and other invisible code points become escapes (an ESC from a spec never reaches
    the terminal; a newline never splits a diagnostic)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


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
        where = f" {printable(self.path)}:" if self.path else ""
        return f"{printable(self.file)}:{self.line}:{self.col}: {self.severity}[{self.code}]{where} {printable(self.message)}"

    def github(self) -> str:
        """A GitHub Actions workflow command that annotates the line in a pull request."""
        level = "error" if self.severity == "error" else "warning"
        message = printable(f"[{self.code}] {self.path}: {self.message}").replace("%", "%25")
        file = printable(self.file).replace("%", "%25").replace(",", "%2C").replace(":", "%3A")
        return f"::{level} file={file},line={self.line},col={self.col},title=mtlspec {self.code}::{message}"

    def to_dict(self) -> dict:
        return asdict(self)


def write_trace(exc: BaseException) -> Path:
    """Write an exception's full trace to a new file in the temporary folder; returns its path."""
    import tempfile
    import traceback

    fd, name = tempfile.mkstemp(prefix="mtlspec-trace-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(traceback.format_exception(exc)))
    return Path(name)


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
    "missing-file": "a file named by the spec does not exist (a warning where it may be made before the spec runs: `run` refuses it)",
    "outside-project": "a path the spec names resolves outside the spec's project root (allowed only with --allow-path)",
    "unusual-value": "(warning) a value far outside what works in practice (a learning rate of 1000)",
    "extends-cycle": "specs extend each other in a cycle",
    "not-implemented": "(warning) part of the language this version cannot run yet",
    "bad-data": "(--deep) a dataset's files or annotations are wrong; the message names the file and sample",
    "build-error": "(--deep, and `run` before it writes anything) the model cannot be built, or a head's output does not have the shape its task needs",
    "bad-table": "a zero-shot task's class attribute table cannot be used; the message names the table's line",
    "undescribed-class": "a class (an unseen one, or any class of the dataset) has no row in the zero-shot task's attribute table",
    "unseen-leak": "(warning) another task trains on labelled images of the classes a zero-shot task holds out",
    "invalid": "any other invalid value (the message says why)",
    "internal-error": "a bug in mtlspec stopped a check; please report it",
}
