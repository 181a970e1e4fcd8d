"""The old name of `mtlspec.language` (the spec language), kept so code written against it runs:
`import mtlspec.spec.root` and `from mtlspec.spec import validate_file` give the very modules and
objects of `mtlspec.language`, with a DeprecationWarning. The package was renamed because a folder
named spec/ reads as a test folder to people and tools from the RSpec and Jasmine worlds."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

from mtlspec.language import Result, validate_file, validate_paths

__all__ = ["Result", "validate_file", "validate_paths"]

OLD, NEW = "mtlspec.spec.", "mtlspec.language."

warnings.warn("mtlspec.spec is now mtlspec.language; the old name will go in a later release", DeprecationWarning, stacklevel=2)


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds mtlspec.spec.<module> as the module mtlspec.language.<module> itself (one object,
    so isinstance and identity checks hold across both names)."""

    specs: dict = {}

    def find_spec(self, fullname, path, target=None):
        if fullname.startswith(OLD):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(NEW + spec.name[len(OLD):])
        self.specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module):
        """The module ran under its new name; importlib gave it the alias's spec: give its own back."""
        module.__spec__ = self.specs[module.__name__]


if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
    sys.meta_path.insert(0, _Alias())  # before the path finder, which would load a second copy of a subpackage's module


def __getattr__(name: str):
    return importlib.import_module(NEW + name)
