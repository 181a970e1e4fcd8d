"""Dynamic weight average (Liu, Johns, Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019).

w_t = T_count * exp(r_t / T) / sum_k exp(r_k / T), with r_t the ratio of task t's mean training
loss over the last two epochs; weights are 1 for the first two epochs. T = 2 in the paper.
"""

from __future__ import annotations

import math

import torch

from mtlspec.weighting.base import LossWeighting


class DynamicWeightAverage(LossWeighting):
    def __init__(self, tasks, spec):
        super().__init__(tasks, spec)
        self.history: list[dict[str, float]] = []
        self.current = {t: 1.0 for t in tasks}

    def end_epoch(self, mean_losses):
        self.history.append(dict(mean_losses))
        if len(self.history) >= 2:
            prev, last = self.history[-2], self.history[-1]
            ratios = {t: last[t] / max(prev[t], 1e-12) for t in self.tasks}
            scores = {t: math.exp(r / self.spec.T) for t, r in ratios.items()}
            total = sum(scores.values())
            self.current = {t: len(self.tasks) * s / total for t, s in scores.items()}

    def weights(self, losses):
        return {t: torch.tensor(self.current[t], device=losses[t].device) for t in self.tasks}

    def state_dict(self):
        return {"history": self.history, "current": self.current}

    def load_state_dict(self, state):
        self.history, self.current = state["history"], state["current"]
