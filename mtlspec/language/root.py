"""The whole spec: the root model that every section hangs from."""

from typing import Annotated, Any, Literal

from pydantic import Field

from mtlspec.language.base import Name, Section
from mtlspec.language.data import Data
from mtlspec.language.ensemble import Ensemble
from mtlspec.language.evaluation import Evaluation, Report
from mtlspec.language.meta import Meta
from mtlspec.language.model import Model
from mtlspec.language.tasks import Task
from mtlspec.language.tracking import Tracking
from mtlspec.language.training import Training
from mtlspec.language.weighting import EqualWeighting, Weighting


class Spec(Section):
    """A multi-task experiment: what to train on, what to learn, how, and what to report."""

    version: Literal[1] = 1
    """Version of the spec language."""
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")]
    """Names the run directory: runs/<name>/."""
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    extends: str | list[str] | None = None
    """Base spec(s) merged beneath this one, paths relative to this file (resolved by the loader)."""
    data: Data
    tasks: Annotated[dict[Name, Task], Field(min_length=1)]
    model: Model = Model()
    weighting: Weighting = EqualWeighting(type="ew")
    training: Training = Training()
    evaluation: Evaluation = Evaluation()
    ensemble: Ensemble | None = None
    meta: Meta | None = None
    """Meta-learning instead of ordinary training (docs/meta.md)."""
    report: Report = Report()
    tracking: Tracking = Tracking()
    """Experiment trackers the run also writes to (TensorBoard)."""
    matrix: dict[str, Annotated[list[Any], Field(min_length=1)]] | None = None
    """Dotted paths to lists of values: one run per combination (expanded by the loader)."""

    def data_seed(self) -> int:
        """The seed that generates the datasets and assigns their splits: data.seed, else seed."""
        return self.data.seed if self.data.seed is not None else self.seed
