"""The `ensemble` section: which members, and how their predictions are combined per task."""

from typing import Annotated, Any, Literal, Union

from pydantic import Field

from mtlspec.language.base import Name, Probability, Section


class SeedMembers(Section):
    """The same spec trained with each seed."""

    type: Literal["seeds"]
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2)]


class SpecMembers(Section):
    """Spec files (paths relative to this one), each trained once and reused; same datasets and tasks."""

    type: Literal["specs"]
    paths: Annotated[list[str], Field(min_length=2)]


class RunMembers(Section):
    """Run directories trained before: reused, not retrained."""

    type: Literal["runs"]
    paths: Annotated[list[str], Field(min_length=2)]


Members = Annotated[Union[SeedMembers, SpecMembers, RunMembers], Field(discriminator="type")]


class Mean(Section):
    """Soft voting: averaged probabilities, values or per-pixel maps."""

    type: Literal["mean"]


class WeightedMean(Section):
    type: Literal["weighted_mean"]
    weights: list[Annotated[float, Field(ge=0)]] | None = None
    """One weight per member; fitted on the validation split when absent."""


class Vote(Section):
    """Hard voting: the weighted mode of the members' labels."""

    type: Literal["vote"]
    weights: list[Annotated[float, Field(ge=0)]] | None = None


class Bagging(Section):
    """Members trained on bootstrap samples of the training split, with out-of-bag metrics."""

    type: Literal["bagging"]
    n_members: Annotated[int, Field(ge=2, le=100)] = 5


class Boosting(Section):
    """Members trained in sequence: AdaBoost SAMME re-weights the samples of classification tasks,
    gradient boosting fits the residuals of regression tasks; other tasks are averaged."""

    type: Literal["boosting"]
    n_members: Annotated[int, Field(ge=2, le=100)] = 5
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Shrinkage: scales SAMME's member weights and each regression member's step."""


class Stacking(Section):
    """A meta-model (softmax or logistic regression, ridge for values) fitted on member predictions
    for data no member trained on: out-of-fold (each member also trained once per fold without that
    fold) or the validation split."""

    type: Literal["stacking"]
    fit_on: Literal["out_of_fold", "validation"] = "out_of_fold"
    """out_of_fold: the training split, each sample predicted by member copies that never saw it
    (members x folds more trainings); validation: the members' predictions on the validation split
    (no extra training; the meta-model sees fewer samples)."""
    folds: Annotated[int, Field(ge=2, le=20)] = 5
    """Folds for out_of_fold."""
    alpha: Annotated[float, Field(gt=0)] = 1.0
    """L2 penalty of the meta-model (scikit-learn's Ridge alpha; LogisticRegression's 1/C)."""


class Snapshot(Section):
    """Members taken from one run with a cyclic learning rate, one per cycle."""

    type: Literal["snapshot"]


class BoxFusion(Section):
    """Boxes from every member fused per image (weighted boxes fusion, or NMS-merge)."""

    type: Literal["box_fusion"]
    method: Literal["wbf", "nms_merge"] = "wbf"
    iou: Probability = 0.55
    skip_score: Probability = 0.0


Strategy = Annotated[
    Union[Mean, WeightedMean, Vote, Bagging, Boosting, Stacking, Snapshot, BoxFusion],
    Field(discriminator="type"),
]

# Strategies that train their own members; the others combine given members.
TRAINS_MEMBERS = ("bagging", "boosting", "snapshot")
# The task types boosting boosts; its other tasks are averaged (boxes fused) or follow per_task.
BOOSTED_TASK_TYPES = ("classification", "regression")
# The task types each combining strategy applies to.
STRATEGY_TASK_TYPES = {
    "mean": ("classification", "multilabel", "regression", "segmentation", "depth", "zero_shot", "clip_classification", "frame_segmentation"),
    "weighted_mean": ("classification", "multilabel", "regression", "segmentation", "depth", "clip_classification", "frame_segmentation"),
    "vote": ("classification", "multilabel", "zero_shot", "clip_classification"),
    "stacking": ("classification", "multilabel", "regression"),
    "box_fusion": ("detection", "frame_detection"),
    "bagging": ("classification", "multilabel", "regression", "detection", "segmentation", "depth", "zero_shot",
                "clip_classification", "frame_detection", "frame_segmentation"),
    "boosting": ("classification", "multilabel", "regression", "detection", "segmentation", "depth"),
    "snapshot": ("classification", "multilabel", "regression", "detection", "segmentation", "depth", "zero_shot",
                 "clip_classification", "frame_detection", "frame_segmentation"),
}


class Ensemble(Section):
    members: Members | None = None
    """Required by the combining strategies; bagging, boosting and snapshot train their own."""
    strategy: Strategy = Mean(type="mean")
    per_task: dict[Name, Strategy] = {}
    """Strategies for single tasks, overriding `strategy` (detection needs box_fusion)."""

    def strategy_for(self, task: str) -> Any:
        """How this task's predictions are combined: its per_task strategy, else the ensemble's."""
        return self.per_task.get(task, self.strategy)
