"""Geometric loss strategy (Chennupati et al., "MultiNet++", CVPRW 2019): minimise (prod_t L_t)^(1/T).

Its gradient is sum_t GLS / (T L_t) * grad L_t, so the weights are GLS / (T L_t), detached.
"""

from __future__ import annotations

import torch

from mtlspec.weighting.base import LossWeighting


class GeometricLossStrategy(LossWeighting):
    def weights(self, losses):
        values = torch.stack([losses[t].detach().float().clamp(min=1e-12) for t in self.tasks])
        geometric = torch.exp(values.log().mean())
        return {t: geometric / (len(self.tasks) * values[i]) for i, t in enumerate(self.tasks)}
