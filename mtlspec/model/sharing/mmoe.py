"""MMoE (Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
Mixture-of-Experts", KDD 2018): shared experts, one softmax gate per task."""

from mtlspec.model.sharing.experts import ExpertMixture


class MMoE(ExpertMixture):
    def __init__(self, backbone, neck_spec, tasks, sharing):
        super().__init__(backbone, neck_spec, tasks, levels=1, n_shared=sharing.num_experts, n_task=0)
