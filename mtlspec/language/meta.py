"""The `meta` section: meta-learning an initialisation from which a new classification task is
learned from a few labelled examples (N-way K-shot episodes)."""

from typing import Annotated, Literal

from pydantic import Field

from mtlspec.language.base import Name, Section


class Episodes(Section):
    """N-way K-shot episodes: `ways` classes drawn at random, `shots` labelled examples of each to
    adapt on (the support set) and `queries` others of each to score the adapted model on."""

    ways: Annotated[int, Field(ge=2, le=100)] = 5
    shots: Annotated[int, Field(ge=1, le=100)] = 1
    queries: Annotated[int, Field(ge=1, le=100)] = 15


class Meta(Section):
    """Meta-training instead of ordinary training: each step adapts the model to `meta_batch`
    episodes of `task` in `inner_steps` steps of gradient descent on their support sets, and updates
    the initialisation by how well the adapted models do on the query sets (MAML: Finn, Abbeel and
    Levine, ICML 2017; first-order MAML from the same paper; ANIL: Raghu et al., ICLR 2020, which
    adapts the head alone) or by moving it towards the adapted weights (Reptile: Nichol, Achiam and
    Schulman, 2018). The outer step is training.optimizer's; training.epochs x `steps_per_epoch`
    steps in all. The task's head has `ways` outputs, classes assigned at random in each episode.
    Of a multilabel task, each episode is a new binary task: one attribute (label), images with it
    against images without it (`ways: 2`)."""

    algorithm: Literal["maml", "fomaml", "anil", "reptile"] = "maml"
    task: Name
    """The spec's only task: a classification task, whose classes N-way episodes are drawn from, or
    a multilabel task, whose attributes (labels) each make a binary episode."""
    episodes: Episodes = Episodes()
    held_out_classes: list[Annotated[int, Field(ge=0)]] = []
    """Classes (of a multilabel task: attributes) never drawn in meta-training: evaluation episodes
    (and `mtlspec adapt`) use only these when given, as the few-shot literature holds test classes
    out; otherwise every class, from the evaluation split's samples."""
    inner_steps: Annotated[int, Field(ge=1, le=100)] = 5
    inner_lr: Annotated[float, Field(gt=0, le=10)] = 0.05
    """Learning rate of the inner (adaptation) steps: plain gradient descent."""
    meta_batch: Annotated[int, Field(ge=1, le=64)] = 4
    """Episodes per outer step."""
    steps_per_epoch: Annotated[int, Field(ge=1, le=100_000)] = 100
    eval_episodes: Annotated[int, Field(ge=1, le=10_000)] = 100
    """Episodes of the evaluation split scored after each evaluated epoch (mean accuracy and its 95%
    confidence interval)."""
    vectorize: bool = False
    """Run the episodes' inner loops at once with torch.func.vmap: the same update, 27% faster for
    fomaml on a small CNN (bench/meta_step.py); the few-shot evaluation then adapts `meta_batch`
    episodes at once too. For `fomaml` and `reptile` only: second-order MAML's meta-gradient
    through BatchNorm is off under vmap (docs/results.md)."""
    adapt: Literal["all", "heads"] | Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1)] = "all"
    """Which parameters the inner steps change: all of them, the task's head alone (ANIL always
    adapts the head alone), or those whose names start with one of a list of prefixes
    (`[heads, topology.trunk.2]`: the head and the last stage of a hard-sharing trunk; `mtlspec
    graph` shows the names)."""
