"""The spec language: loading with a source map, the pydantic models, checks, schema export.

Nothing in this package imports torch or OpenMMLab: `validate` and `schema` stay light.
"""

from mtlspec.language.validate import Result, validate_file, validate_paths

__all__ = ["Result", "validate_file", "validate_paths"]
