"""The `tracking` section: where a run's progress is also written for experiment trackers."""

from mtlspec.language.base import Section


class MLflow(Section):
    """An MLflow run per training run: the spec's main choices and the seed as parameters, every
    step's losses, weights and learning rate, every evaluation's metrics and the final ones, and
    the spec, manifest and reports as artifacts. Needs the `tracking` extra."""

    tracking_uri: str | None = None
    """Where MLflow records runs. Default: `sqlite:///<runs root>/mlflow.db`, a SQLite database
    beside the run directories (MLflow's plain-file store is deprecated and refused by its recent
    releases); artifacts then go to `<runs root>/mlflow-artifacts/`. View with
    `mlflow ui --backend-store-uri sqlite:///runs/mlflow.db`."""
    experiment: str | None = None
    """The MLflow experiment the run joins (made when missing). Default: the spec's name."""


class Tracking(Section):
    """Experiment trackers that get the run's progress as it trains, beside metrics.jsonl."""

    tensorboard: bool = False
    """TensorBoard event files in `<run dir>/tensorboard/`: every step's per-task loss, weight,
    learning rate and (gradient methods) cosines between task gradients, every evaluation's
    metrics and losses, the final metrics, the spec as run and the manifest. Needs the
    `tracking` extra (`pip install mtlspec[tracking]`, the tensorboard package); view with
    `tensorboard --logdir runs/`."""
    mlflow: MLflow | None = None
    """Also record the run in MLflow (`mlflow: {}` for the defaults)."""
