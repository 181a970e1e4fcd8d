"""Task types by the spec's `type` tag: a plain dict, filled by explicit imports."""

from mtlspec.tasks.classification import Classification
from mtlspec.tasks.depth import Depth
from mtlspec.tasks.detection import Detection
from mtlspec.tasks.multilabel import Multilabel
from mtlspec.tasks.regression import Regression
from mtlspec.tasks.segmentation import Segmentation

TASK_TYPES = {
    "classification": Classification,
    "multilabel": Multilabel,
    "regression": Regression,
    "detection": Detection,
    "segmentation": Segmentation,
    "depth": Depth,
}
