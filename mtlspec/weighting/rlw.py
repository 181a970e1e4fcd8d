"""Random loss weighting (Lin et al., "Reasonable Effectiveness of Random Weighting: A Litmus Test
for Multi-Task Learning", TMLR 2022): weights drawn afresh each step, softmax of a normal draw by default."""

from __future__ import annotations

import torch

from mtlspec.weighting.base import LossWeighting


class RandomLossWeighting(LossWeighting):
    def weights(self, losses):
        n = len(self.tasks)
        kind = self.spec.distribution
        if kind == "normal":
            w = torch.softmax(torch.randn(n), dim=0)
        elif kind == "uniform":
            w = torch.softmax(torch.rand(n), dim=0)
        else:
            w = torch.distributions.Dirichlet(torch.ones(n)).sample()
        return {t: w[i].to(losses[t].device) for i, t in enumerate(self.tasks)}
