"""PLE (Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning Model for
Personalized Recommendations", RecSys 2020): stacked CGC levels over groups of backbone stages,
with a shared gate over all experts feeding the next level's shared experts."""

from mtlspec.model.sharing.experts import ExpertMixture


class PLE(ExpertMixture):
    def __init__(self, backbone, neck_spec, tasks, sharing):
        super().__init__(backbone, neck_spec, tasks, levels=sharing.num_levels, n_shared=sharing.num_shared_experts,
                         n_task=sharing.num_task_experts)
