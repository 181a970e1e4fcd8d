"""The `tracking` section: where a run's progress is also written for experiment trackers."""

from mtlspec.language.base import Section


class Tracking(Section):
    """Experiment trackers that get the run's progress as it trains, beside metrics.jsonl."""

    tensorboard: bool = False
    """TensorBoard event files in `<run dir>/tensorboard/`: every step's per-task loss, weight,
    learning rate and (gradient methods) cosines between task gradients, every evaluation's
    metrics and losses, the final metrics, the spec as run and the manifest. Needs the
    `tracking` extra (`pip install mtlspec[tracking]`, the tensorboard package); view with
    `tensorboard --logdir runs/`."""
