"""The `training` section: optimiser, schedule, device, precision, checkpoints, early stopping."""

from typing import Annotated, Literal, Union

from pydantic import Field

from mtlspec.language.base import PositiveFloat, PositiveInt, Section


class SGD(Section):
    type: Literal["sgd"]
    lr: PositiveFloat = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    weight_decay: Annotated[float, Field(ge=0)] = 1.0e-4
    nesterov: bool = False


class Adam(Section):
    type: Literal["adam"]
    lr: PositiveFloat = 1.0e-3
    weight_decay: Annotated[float, Field(ge=0)] = 0.0


class AdamW(Section):
    type: Literal["adamw"]
    lr: PositiveFloat = 1.0e-3
    weight_decay: Annotated[float, Field(ge=0)] = 1.0e-4


Optimizer = Annotated[Union[SGD, Adam, AdamW], Field(discriminator="type")]


class Constant(Section):
    type: Literal["constant"]
    warmup_steps: Annotated[int, Field(ge=0)] = 0


class Cosine(Section):
    type: Literal["cosine"]
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    min_lr_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0


class Step(Section):
    type: Literal["step"]
    step_epochs: PositiveInt = 10
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.1


class Cyclic(Section):
    """Cosine annealing restarted `cycles` times: what snapshot ensembles take members from."""

    type: Literal["cyclic"]
    cycles: Annotated[int, Field(ge=2)] = 3


Scheduler = Annotated[Union[Constant, Cosine, Step, Cyclic], Field(discriminator="type")]


class Checkpoint(Section):
    """Resumable checkpoints (`mtlspec run SPEC --resume RUN_DIR`). SIGTERM or Ctrl-C also write one,
    after the step in progress, before the run stops (meta-learning runs: at epoch ends only)."""

    every_epochs: PositiveInt = 1
    every_steps: PositiveInt | None = None
    """Also a checkpoint every this many steps within an epoch (long epochs on preemptible
    machines); a resume continues from that step and ends with the same weights and metrics.jsonl."""
    keep: PositiveInt = 2
    """How many of the newest checkpoints stay on disk."""


class EarlyStopping(Section):
    monitor: str = "val.loss"
    """`val.<task>.<metric>`, `val.loss` or `val.delta_m` (which needs a baseline)."""
    patience: PositiveInt = 5
    min_delta: Annotated[float, Field(ge=0)] = 0.0


class Compile(Section):
    """torch.compile's settings for the shared network (training.compile)."""

    backend: Literal["inductor", "aot_eager"] = "inductor"
    """`inductor` generates fused kernels (C++ on CPU, Triton on CUDA); `aot_eager` traces the same
    graphs, forward and backward, and runs them with eager kernels (no code generation: a check
    that a model compiles, and as exact as eager)."""
    mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    """torch.compile's mode: `reduce-overhead` adds CUDA graphs, `max-autotune` searches kernels longer."""


class Training(Section):
    epochs: Annotated[int, Field(ge=1, le=100_000)] = 10
    max_steps_per_epoch: PositiveInt | None = None
    """Cap on steps per epoch, for quick runs."""
    optimizer: Optimizer = AdamW(type="adamw")
    scheduler: Scheduler = Constant(type="constant")
    grad_clip: PositiveFloat | None = None
    """Maximum global gradient norm; no clipping when absent."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast precision. `auto`: bf16 on a CUDA device that has it, else fp32. fp16 (CUDA only)
    trains with a GradScaler, its scale checkpointed. MMDetection heads compute their losses and
    boxes in float32 whatever the precision (mmcv's CUDA kernels have no bfloat16)."""
    checkpoint: Checkpoint = Checkpoint()
    early_stopping: EarlyStopping | None = None
    channels_last: bool = False
    """Convolutions in channels-last (NHWC) memory order. Measured with bench/precision.py on a
    2-core CPU (ResNet-50, five dense tasks, 128 px): 1.22x fp32's images/s, 2.08x together with
    bf16 (bf16 alone 1.75x); on the quickstart's small CNN 1.10x, and nothing with bf16. Not yet
    measured on a GPU. Results differ from the default order by float rounding."""
    compile: Compile | None = None
    """torch.compile the shared network (backbone, neck and sharing topology; heads and losses stay
    eager: MMDetection's target assignment is data-dependent Python). Off by default: the first
    steps pay for compiling (about 40 s for the quickstart's small CNN on a 2-core CPU, with a C++
    compiler; the evaluation mode compiles once more). Results differ from eager by float
    rounding (inductor fuses operations); checkpoints are the same files either way."""
    log_every: PositiveInt = 1
    """Steps between the trainer's reads of the losses and weights from the device. Each step is
    still logged in metrics.jsonl (the same bytes); a NaN loss is caught at the next read, which
    names its step. Above 1 a CUDA step need not wait for the host (gradient methods still read
    their Gramian each step; fp16 reads its scale)."""
    threads: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = "auto"
    """CPU threads for torch's operators. `auto`: torch's own default (the physical cores), at most
    the cores available less one per data worker, at least 1 (threads and workers on the same
    cores slow each other down: 12x measured on a shared 2-core machine). Results depend on it on
    CPU; the manifest records the count used."""
