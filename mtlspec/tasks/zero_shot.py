"""Zero-shot classification from class descriptions: seen classes train, unseen ones are only
described by a row of the class x attribute table (data/formats/class_attributes.py).

The head maps the pooled image features to an embedding in attribute space; the method
(tasks/zero_shot_methods.py: DAP, ESZSL, ALE, SJE) gives each class a score from its row, and the
loss sees the seen classes only. Predictions are probabilities over every class (seen and unseen,
the generalized setting), with calibrated stacking's penalty on the seen ones; the metric
(tasks/zero_shot_metric.py) scores them as Xian et al. (TPAMI 2018) do. The table travels in
model.pt (`saved`), so prediction needs no file but the run's.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlspec.data.formats.class_attributes import ClassAttributes, TableProblem, read_class_attributes, table_path
from mtlspec.data.records import DataError
from mtlspec.tasks import zero_shot_methods as methods
from mtlspec.tasks.base import Form, ImageLabelTask, masked_mean
from mtlspec.tasks.classification import Classification
from mtlspec.tasks.zero_shot_metric import ZeroShotMetric


class AttributeHead(nn.Module):
    """Pooled features -> a hidden embedding -> attribute space (`embedding`, no bias for the
    bilinear methods: their V). Outputs (z, penalty): ESZSL's penalty on V, 0 for the others."""

    def __init__(self, channels: int, hidden: int, attributes: int, method: str, seen_embeddings: torch.Tensor,
                 gamma: float, lam: float):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True))
        self.embedding = nn.Linear(hidden, attributes, bias=method == "dap")
        self.method, self.gamma, self.lam = method, gamma, lam
        self.register_buffer("seen_embeddings", seen_embeddings.clone(), persistent=False)

    def forward(self, features: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.embedding(self.hidden(features["vector"]))
        if self.method == "eszsl":
            return z, methods.eszsl_penalty(self.embedding.weight, self.seen_embeddings, self.gamma, self.lam)
        return z, z.new_zeros(())


class ZeroShot(ImageLabelTask):
    name = "zero_shot"
    form = Form.CLASS_PROBABILITIES
    episodic = False  # its classes are described, not shown: few-shot episodes are another problem

    def __init__(self, task_name: str, num_classes: int, spec: Any, table: ClassAttributes | None = None,
                 class_names: list[str] | None = None):
        super().__init__(task_name, num_classes, spec)
        if table is None:
            raise ValueError("a zero-shot task type is built from its class table (ZeroShot.create or ZeroShot.restore)")
        self.table = table
        self.split_classes(class_names)
        # on the CPU whatever device a model is being built on (the preflight builds one on `meta`)
        self.values = torch.tensor(table.for_classes(self.names), dtype=torch.float32, device="cpu")  # (K, A), the dataset's class order
        self.embeddings = methods.class_embeddings(self.values, spec.method, self.seen)

    def split_classes(self, class_names: list[str] | None) -> None:
        """The class names, the seen mask (K,) and each class's column among the seen ones (-1: unseen)."""
        self.names = class_names or [str(k) for k in range(self.num_classes)]
        unseen = set(self.spec.unseen_names)
        seen = [n not in unseen for n in self.names]
        self.seen = torch.tensor(seen, device="cpu")
        columns, position = [], 0
        for is_seen in seen:
            columns.append(position if is_seen else -1)
            position += is_seen
        self.seen_index = torch.tensor(columns, dtype=torch.int64, device="cpu")

    # --- data ------------------------------------------------------------------------------

    @classmethod
    def create(cls, task_name, spec, source, data_root):
        count = cls.classes(spec, source)
        names = cls.class_names(spec, source) or [str(k) for k in range(count)]
        path = table_path(spec.attributes, Path(data_root))
        try:
            table = read_class_attributes(path)
            table.for_classes(names)
        except TableProblem as exc:
            raise DataError(f"task '{task_name}': class attribute table: {exc}", str(path), f"line {exc.line}" if exc.line else None) from None
        cls.check_unseen(task_name, spec, names, str(path))
        return cls(task_name, count, spec, table, names)

    @staticmethod
    def check_unseen(task_name: str, spec: Any, names: list[str], file: str) -> None:
        missing = [u for u in spec.unseen_names if u not in names]
        if missing:
            raise DataError(f"task '{task_name}': unseen class(es) {', '.join(missing)} are not classes of its label '{spec.label}' "
                            f"(classes: {', '.join(names[:20])}{' ...' if len(names) > 20 else ''})", file)
        if len(names) - len(set(spec.unseen_names)) < 2:
            raise DataError(f"task '{task_name}': fewer than two seen classes remain to train on", file)

    def saved(self):
        return {"class_attributes": self.table.to_json(), "class_names": list(self.names)}

    @classmethod
    def restore(cls, task_name, spec, saved):
        return cls(task_name, int(saved["num_classes"]), spec, ClassAttributes.from_json(saved["class_attributes"]), saved["class_names"])

    @classmethod
    def dataset_classes(cls, spec, source):
        return source.label_classes(spec.label)

    def decode(self, value, file, sample):
        return Classification.decode(self, value, file, sample)

    @classmethod
    def holds_out(cls, spec):
        return [{"dataset": spec.dataset, "label": spec.label, "classes": spec.unseen_names}] if spec.hold_out_images else []

    def placeholder(self, image_size):
        return 0

    def collate(self, targets):
        return torch.tensor(targets, dtype=torch.int64)

    # --- model -----------------------------------------------------------------------------

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        return AttributeHead(vector_channels, self.spec.hidden, self.values.shape[1], self.spec.method,
                             self.embeddings[self.seen], self.spec.eszsl_gamma, self.spec.eszsl_lambda)

    def output_problem(self, output, batch, image_size, strides):
        if not (isinstance(output, (tuple, list)) and len(output) == 2 and torch.is_tensor(output[0])):
            return "the head outputs no (embedding, penalty) pair"
        expected = (batch, self.values.shape[1])
        return None if tuple(output[0].shape) == expected else f"the head's embedding is {tuple(output[0].shape)}, expected {expected}"

    def describe(self):
        seen = int(self.seen.sum())
        return f"zero_shot ({self.spec.method}: {self.values.shape[1]} attributes, {seen} seen + {self.num_classes - seen} unseen classes)"

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """Every class's score for each image (N, K), before calibration."""
        embeddings = self.embeddings.to(z.device)
        if self.spec.method == "dap":
            return methods.dap_scores(z, embeddings, self.seen.to(z.device))
        return methods.bilinear_scores(z, embeddings)

    def loss(self, output, target, has, weight):
        z, penalty = output
        seen = self.seen.to(target.device)
        labelled = has & seen[target]  # an unseen class's sample (in validation) trains nothing
        safe = torch.where(labelled, target, torch.zeros_like(target))
        method = self.spec.method
        if method == "dap":
            per_sample = methods.dap_loss(z, self.embeddings.to(z.device), safe)
        else:
            column = torch.where(labelled, self.seen_index.to(target.device)[safe], torch.zeros_like(safe))
            seen_embeddings = self.embeddings[self.seen].to(z.device)
            if method == "eszsl":
                per_sample = methods.eszsl_loss(z, seen_embeddings, column, self.spec.eszsl_lambda)
            else:
                scores = methods.bilinear_scores(z, seen_embeddings)
                per_sample = methods.ale_loss(scores, column) if method == "ale" else methods.sje_loss(scores, column)
        data_term = masked_mean(per_sample, labelled, weight)
        return data_term + penalty.float() if bool(labelled.any()) else data_term + penalty.float() * 0.0

    def predict(self, output, image_size):
        z = output[0]
        calibrated = self.scores(z) - self.spec.calibration * self.seen.to(z.device).float()
        return calibrated.softmax(dim=1)

    # --- evaluation ------------------------------------------------------------------------

    def metric(self):
        return ZeroShotMetric(self.seen, self.spec.calibration)

    def trivial_prediction(self, train_targets, count, image_size):
        """The most frequent training class (a seen class: unseen ones are never trained on)."""
        seen_targets = [int(t) for t in train_targets if bool(self.seen[int(t)])]
        majority = Counter(seen_targets).most_common(1)[0][0] if seen_targets else int(self.seen.nonzero()[0])
        probs = torch.zeros((count, self.num_classes))
        probs[:, majority] = 1.0
        return probs
