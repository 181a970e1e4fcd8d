"""The `evaluation` and `report` sections: which split, which baseline for Δm, which files."""

from typing import Annotated, Literal, Union

from pydantic import Field

from mtlspec.language.base import Section


class NoBaseline(Section):
    type: Literal["none"]


class SingleTaskBaseline(Section):
    """Single-task runs derived from this spec and trained the same way."""

    type: Literal["single_task"]


class RunBaseline(Section):
    """An existing run directory to compare against."""

    type: Literal["run"]
    path: str


Baseline = Annotated[Union[NoBaseline, SingleTaskBaseline, RunBaseline], Field(discriminator="type")]


class Evaluation(Section):
    split: Literal["val", "test"] = "test"
    baseline: Baseline = NoBaseline(type="none")
    every_epochs: Annotated[int, Field(ge=1)] = 1
    """Evaluate on the validation split every this many epochs."""


class Report(Section):
    formats: Annotated[list[Literal["json", "md", "html"]], Field(min_length=1)] = ["json", "md", "html"]
    plots: bool = True
