"""The base of every spec section: unknown keys are errors; field docstrings become schema text."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# Task and dataset names end up in paths, metric names and run directories.
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    """A part of the spec; every key must be one it declares."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def default(section: type[BaseModel], *path: str) -> Any:
    """The default a section gives a (nested) field: what the spec means where the key is absent.
    `default(Spec, "model", "sharing", "type")` is "hps"."""
    value = section.model_fields[path[0]].default
    for name in path[1:]:
        value = getattr(value, name)
    return value
