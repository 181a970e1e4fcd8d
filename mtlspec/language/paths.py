"""Where a spec may point. Every file or folder a spec names (`extends`, data, member specs and
runs, a baseline run) must lie inside the spec's project root, or inside a folder the person
running mtlspec allowed (`--allow-path`, or MTLSPEC_ALLOW_PATHS): a spec from a pull request
cannot make `validate` read, or echo, a file elsewhere on the machine. Paths are checked before
anything is opened.

The project root is the nearest folder at or above the spec's own that holds `.git`; without
one, the spec's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ALLOW_ENV = "MTLSPEC_ALLOW_PATHS"


def project_root(spec_file: Path) -> Path:
    folder = Path(spec_file).resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


@dataclass(frozen=True)
class Roots:
    """The folders a spec's paths may reach."""

    folders: tuple[Path, ...]

    @classmethod
    def for_spec(cls, spec_file: Path, allowed: tuple[str | Path, ...] | list = ()) -> "Roots":
        extra = [p for p in os.environ.get(ALLOW_ENV, "").split(os.pathsep) if p]
        folders = [project_root(spec_file)] + [Path(p).expanduser().resolve() for p in (*allowed, *extra)]
        return cls(tuple(dict.fromkeys(folders)))

    def check(self, raw: str, base: Path) -> tuple[Path | None, str | None]:
        """(the resolved path, None), or (None, why it cannot be used)."""
        if "\x00" in raw:
            return None, "the path holds a NUL character"
        if len(raw) > 4096 or any(len(part.encode()) > 255 for part in Path(raw).parts):
            return None, "the path is too long for a file system"
        try:
            target = (base / raw).resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            return None, f"the path cannot be resolved ({type(exc).__name__})"
        if not any(target == root or target.is_relative_to(root) for root in self.folders):
            return None, (f"the path resolves to {target}, outside the project root {self.folders[0]}; "
                          f"a spec may name files elsewhere only when the person running mtlspec allows it "
                          f"(--allow-path FOLDER, or {ALLOW_ENV})")
        return target, None


def is_file(path: Path) -> bool:
    """Path.is_file that answers False for names the file system refuses."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False
