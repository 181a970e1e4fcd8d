"""Mixtures of experts over feature maps, the common machinery of MMoE, CGC and PLE.

The backbone's stages are split into `levels` consecutive groups. At each level there are
shared experts and, per task, task experts (copies of that group of stages). A task's gate,
a softmax over the experts it may use computed from its pooled input, mixes their outputs at
every stage of the group; between levels a shared gate over all experts feeds the shared
experts of the next level (PLE). Gates are per sample. A task expert below the last level feeds
that shared gate, so every task's loss reaches it: it counts among the shared parameters.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from mtlspec.model.backbones import build_neck
from mtlspec.model.sharing.base import Topology, pooled


def _groups(n_stages: int, levels: int) -> list[range]:
    bounds = [round(i * n_stages / levels) for i in range(levels + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(levels)]


class ExpertGroup(nn.Module):
    """A copy of some consecutive backbone stages; returns the output of each."""

    def __init__(self, stages: list[nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(copy.deepcopy(s) for s in stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


def _mix(gate: torch.Tensor, outputs: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """gate (B, E); outputs[e][s] (B, C, H, W) -> per stage s the gated sum over experts."""
    return [sum(gate[:, e, None, None, None] * outputs[e][s] for e in range(len(outputs))) for s in range(len(outputs[0]))]


class ExpertMixture(Topology):
    def __init__(self, backbone, neck_spec, tasks, levels: int, n_shared: int, n_task: int):
        super().__init__()
        self.tasks, self.levels, self.n_shared, self.n_task = tasks, levels, n_shared, n_task
        groups = _groups(len(backbone.stages), levels)
        if any(len(g) == 0 for g in groups):
            raise ValueError(f"{levels} levels need at least as many backbone stages (there are {len(backbone.stages)})")
        neck, self.pyramid_channels = build_neck(neck_spec, backbone)
        self.vector_channels, self.strides = backbone.channels[-1], backbone.strides
        self.stem = backbone.stem
        inputs = [backbone.stem_channels] + [backbone.channels[g[-1]] for g in groups[:-1]]
        stages = list(backbone.stages)
        self.shared_experts = nn.ModuleList(nn.ModuleList(ExpertGroup([stages[i] for i in g]) for _ in range(n_shared)) for g in groups)
        self.task_experts = nn.ModuleDict({
            t: nn.ModuleList(nn.ModuleList(ExpertGroup([stages[i] for i in g]) for _ in range(n_task)) for g in groups) for t in tasks
        })
        self.task_gates = nn.ModuleDict({t: nn.ModuleList(nn.Linear(c, n_shared + n_task) for c in inputs) for t in tasks})
        all_experts = n_shared + n_task * len(tasks)
        self.shared_gates = nn.ModuleList(nn.Linear(c, all_experts) for c in inputs[:-1] if n_shared) if levels > 1 else nn.ModuleList()
        self.necks = nn.ModuleDict({t: copy.deepcopy(neck) for t in tasks})

    def forward(self, images):
        x = self.stem(images)
        shared_in, task_in = x, {t: x for t in self.tasks}
        feats: dict[str, list[torch.Tensor]] = {t: [] for t in self.tasks}
        for level in range(self.levels):
            shared_out = [expert(shared_in) for expert in self.shared_experts[level]]
            own_out = {t: [expert(task_in[t]) for expert in self.task_experts[t][level]] for t in self.tasks}
            for t in self.tasks:
                gate = torch.softmax(self.task_gates[t][level](pooled(task_in[t])), dim=1)
                mixed = _mix(gate, shared_out + own_out[t])
                feats[t].extend(mixed)
                task_in[t] = mixed[-1]
            if level + 1 < self.levels and self.shared_gates:
                everything = shared_out + [o for t in self.tasks for o in own_out[t]]
                gate = torch.softmax(self.shared_gates[level](pooled(shared_in)), dim=1)
                shared_in = _mix(gate, everything)[-1]
        return {t: {"vector": pooled(f[-1]), "pyramid": list(self.necks[t](f))} for t, f in feats.items()}

    def shared_parameters(self):
        lower = [p for t in self.tasks for level in list(self.task_experts[t])[:-1] for p in level.parameters()]
        return [*self.stem.parameters(), *self.shared_experts.parameters(), *self.shared_gates.parameters(), *lower]

    def task_parameters(self, task):
        return [*self.task_experts[task][-1].parameters(), *self.task_gates[task].parameters(), *self.necks[task].parameters()]
