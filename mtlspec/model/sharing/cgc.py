"""CGC (Tang et al., "Progressive Layered Extraction (PLE)", RecSys 2020): shared and task-specific
experts; each task's gate mixes the shared experts and its own. PLE with one level."""

from mtlspec.model.sharing.experts import ExpertMixture


class CGC(ExpertMixture):
    def __init__(self, backbone, neck_spec, tasks, sharing):
        super().__init__(backbone, neck_spec, tasks, levels=1, n_shared=sharing.num_shared_experts, n_task=sharing.num_task_experts)
