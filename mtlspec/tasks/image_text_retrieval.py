"""Image-text retrieval as CLIP trains it (Radford et al., ICML 2021): the image's pooled features
and the text tower's vector are projected into one space, unit length, and trained with the
symmetric InfoNCE loss over the batch at a learned temperature (CLIP's start 0.07, floored at 0.01
as CLIP clamps its logit scale at 100).

Targets are the caption's token ids: two samples whose captions tokenize alike (templated
captions) are positives of each other, in the loss (each row's target is spread evenly over its
positives, as multi-positive InfoNCE does, e.g. Khosla et al.'s SupCon) and in the metric (one of
them ranked first is a hit). Scored over the whole evaluation split by recall@1, 5 and 10 both
ways; the trivial baseline ranks at random (random unit embeddings, seed 0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mtlspec import distributed
from mtlspec.tasks.base import Form, Metric, masked_mean
from mtlspec.tasks.text_task import TextTask

MAX_LOG_SCALE = math.log(100.0)  # temperature 0.01


class RetrievalHead(nn.Module):
    """(image embedding, text embedding, logit scale): both (N, D) and unit length."""

    def __init__(self, vector_channels: int, text_width: int, embedding: int, temperature: float):
        super().__init__()
        hidden = max(embedding, 128)
        self.image = nn.Sequential(nn.Linear(vector_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, embedding))
        self.text = nn.Linear(text_width, embedding)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def forward(self, features: dict[str, Any], text: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image = F.normalize(self.image(features["vector"]).float(), dim=1)
        words = F.normalize(self.text(text.vector).float(), dim=1)
        return image, words, self.log_scale.clamp(max=MAX_LOG_SCALE).exp()


def same_text(tokens: torch.Tensor) -> torch.Tensor:
    """(N, N) bool: whether samples i and j have the same token ids."""
    return (tokens[:, None, :] == tokens[None, :, :]).all(dim=2)


def info_nce(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, positives: torch.Tensor,
             has: torch.Tensor) -> torch.Tensor:
    """Per-sample symmetric InfoNCE (N,) over the labelled samples: the mean of the image-to-text and
    text-to-image cross-entropies, each row's target spread evenly over its positives; 0 where a
    sample is unlabelled."""
    pair = has[:, None] & has[None, :]
    # an unlabelled row or column leaves the softmax: exp(-1e4) is 0 in float32, with no -inf to turn into NaN
    logits = (scale * image @ text.t()).masked_fill(~pair, -1e4)
    target = (positives & pair).float()
    target = target / target.sum(1, keepdim=True).clamp(min=1.0)  # symmetric: positives and pair are
    i2t = -(target * logits.log_softmax(dim=1)).sum(1)
    t2i = -(target * logits.t().log_softmax(dim=1)).sum(1)
    return torch.where(has, (i2t + t2i) / 2, torch.zeros_like(i2t))


def recalls(similarity: torch.Tensor, groups: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Share of rows whose top-k columns hold one of its positives (a column of the same group);
    `similarity` (R, C), `groups` the (R,) row groups and, for columns, the same groups transposed:
    rows and columns are the same samples."""
    hits = {k: 0 for k in ks}
    top = min(max(ks), similarity.shape[1])
    for start in range(0, similarity.shape[0], 1024):
        chunk = similarity[start : start + 1024]
        order = chunk.topk(top, dim=1).indices
        match = groups[order] == groups[start : start + 1024, None]
        for k in ks:
            hits[k] += int(match[:, :k].any(dim=1).sum())
    return {k: hits[k] / max(similarity.shape[0], 1) for k in ks}


class ImageTextRetrieval(TextTask):
    name = "image_text_retrieval"
    form = Form.EMBEDDINGS

    @property
    def input_field(self):
        return self.spec.text

    @classmethod
    def restore(cls, task_name, spec, saved):
        return cls(task_name, int(saved["num_classes"]), spec).restore_text(saved)

    def target(self, record):
        if self.text_of(record, self.spec.text) is None:
            return None, False
        return self.text_input(record), True

    def placeholder(self, image_size):
        return np.zeros(self.max_length, np.int64)

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        return RetrievalHead(vector_channels, self.model_section.text.width, self.spec.embedding, self.spec.temperature)

    def output_problem(self, output, batch, image_size, strides):
        if not (isinstance(output, (tuple, list)) and len(output) == 3):
            return "the head outputs no (image, text, scale) triple"
        expected = (batch, self.spec.embedding)
        return None if tuple(output[0].shape) == expected else f"the head's image embedding is {tuple(output[0].shape)}, expected {expected}"

    def describe(self):
        return f"image_text_retrieval ({self.spec.embedding}-d joint space, InfoNCE)"

    whole_batch_loss = True  # with several ranks, the negatives are the global batch's (CLIP's all-gather)

    def loss(self, output, target, has, weight):
        image, text, scale = output
        world = distributed.current()  # (inactive in evaluation, whose shards are scored on rank 0)
        if world.active:  # the whole global batch: each rank's rows and their positives, as one process would see them
            (image, text, target, has, weight), mine = distributed.gather_rows([image, text, target, has, weight], world)
            # the temperature reaches a logit through its row's rank only, so the ranks' gradients add up to one process's
            scale = torch.where(mine[:, None], scale, scale.detach())
        return masked_mean(info_nce(image, text, scale, same_text(target), has), has, weight)

    def predict(self, output, image_size):
        return (output[0].detach(), output[1].detach())

    def metric(self):
        return RetrievalMetric()

    def trivial_prediction(self, train_targets, count, image_size):
        if not hasattr(self, "_chance"):
            self._chance = torch.Generator().manual_seed(0)
        draw = lambda: F.normalize(torch.randn(count, self.spec.embedding, generator=self._chance), dim=1)  # noqa: E731
        return (draw(), draw())


class RetrievalMetric(Metric):
    """Recall@1/5/10 image to text and text to image over every labelled sample of the split, and
    rsum (their sum, at most 6)."""

    def __init__(self):
        self.images: list[torch.Tensor] = []
        self.texts: list[torch.Tensor] = []
        self.tokens: list[torch.Tensor] = []

    def update(self, prediction, target, has):
        image, text = prediction
        self.images.append(image[has].float().cpu())
        self.texts.append(text[has].float().cpu())
        self.tokens.append(target[has].cpu())

    def compute(self):
        if not self.images or sum(len(t) for t in self.tokens) == 0:
            return {}
        image, text = torch.cat(self.images), torch.cat(self.texts)
        tokens = torch.cat(self.tokens)
        groups = torch.unique(tokens, dim=0, return_inverse=True)[1]
        similarity = image @ text.t()
        i2t, t2i = recalls(similarity, groups), recalls(similarity.t(), groups)
        out = {f"i2t_r{k}": v for k, v in i2t.items()} | {f"t2i_r{k}": v for k, v in t2i.items()}
        out["rsum"] = sum(out.values())
        self.counts = {"samples": len(tokens), "distinct_texts": int(groups.max()) + 1}
        return out

    def details(self):
        counts = getattr(self, "counts", None)
        return None if counts is None else dict(counts)
