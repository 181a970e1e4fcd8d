"""Soft parameter sharing: separate networks whose corresponding parameters an L2 penalty pulls
together (Duong et al., ACL 2015; Yang & Hospedales, ICLR 2017 workshop): penalty = weight *
sum over task pairs of |theta_a - theta_b|^2: the topology's extra loss, which the trainer adds."""

from __future__ import annotations

import itertools

import torch

from mtlspec.model.sharing.separate import Separate


class SoftSharing(Separate):
    def __init__(self, backbone, neck_spec, tasks, sharing=None):
        super().__init__(backbone, neck_spec, tasks, sharing)
        self.weight = sharing.weight if sharing is not None else 1e-3

    def extra_loss(self) -> torch.Tensor:
        towers = list(self.towers.values())
        total = torch.zeros((), device=next(self.parameters()).device)
        for a, b in itertools.combinations(towers, 2):
            for pa, pb in zip(a.parameters(), b.parameters()):
                total = total + (pa - pb).pow(2).sum()
        return self.weight * total
