"""The network of a spec: backbone and neck under a sharing topology, one head per task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlspec.model.backbones import build_backbone
from mtlspec.model.sharing import TOPOLOGIES


class BuildError(Exception):
    """Parts of the model that cannot be built: (where in the spec, why) for each."""

    def __init__(self, problems: list[tuple[tuple, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, where))}: {why}" for where, why in problems))


class MultiTaskModel(nn.Module):
    """A topology producing per-task features and a head per task; with tasks that read text, one
    text tower they share (`text`). The heads of `text_tasks` receive the tower's features of each
    sample's text beside the image's; the heads of `class_text_tasks` (zero-shot from class
    descriptions) receive the tower itself, to embed their classes' descriptions.

    The sharing topology applies to the image tower. The text tower's parameters are shared
    parameters for the weighting methods when two or more tasks read text, else its one task's."""

    def __init__(self, topology: nn.Module, heads: dict[str, nn.Module], text: nn.Module | None = None,
                 text_tasks: list[str] | None = None, class_text_tasks: list[str] | None = None,
                 clip_tasks: list[str] | None = None, frames: int | None = None):
        super().__init__()
        self.clip_tasks = list(clip_tasks or [])
        self.frames = frames  # frames per clip the model reads (None: it reads images)
        self.topology = topology
        self.heads = nn.ModuleDict(heads)
        self.text = text
        self.text_tasks = list(text_tasks or [])
        self.class_text_tasks = list(class_text_tasks or [])
        self.channels_last = False  # training.channels_last: images and 4-d weights in NHWC order (use_channels_last)

    def use_channels_last(self) -> None:
        """Convolutions in channels-last (NHWC) memory order: the weights now, each batch of images
        as it comes in."""
        self.channels_last = True
        self.to(memory_format=torch.channels_last)

    def compile_shared(self, backend: str, mode: str) -> None:
        """training.compile: torch.compile the topology in place (nn.Module.compile keeps its
        parameter names, so checkpoints and model.pt are the same files as eager training's).
        Gradient methods run one backward per task through the shared graph (retain_graph), which
        AOTAutograd's donated buffers forbid: they are turned off (a memory saving, not a speed-up)."""
        import torch._functorch.config

        torch._functorch.config.donated_buffer = False
        self.topology.compile(backend=backend, mode=mode)

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
        """Each task's head output; `text`: each text task's token ids (N, L) for these images."""
        features = self.features(images)
        if self.text_tasks and (text is None or any(t not in text for t in self.text_tasks)):
            missing = [t for t in self.text_tasks if text is None or t not in text]
            raise ValueError(f"task(s) {', '.join(missing)} read text: the model needs their token ids beside the images")
        return {task: self.head_output(task, features[task], text) for task in self.heads}

    def features(self, images: torch.Tensor) -> dict[str, Any]:
        """Each task's features of a batch of images (N, 3, H, W), or of clips (N, T, 3, H, W): every
        frame through the topology (frames of a clip consecutive), clip tasks given the clip's
        (clip_features), frame tasks each frame's."""
        clips = images.dim() == 5
        frames = images.shape[1] if clips else 1
        if clips:
            images = images.flatten(0, 1)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.topology(images)
        if clips:
            features = {task: clip_features(f, frames) if task in self.clip_tasks else f for task, f in features.items()}
        return features

    def example_images(self, batch: int, size: int, device: Any = None) -> torch.Tensor:
        """Zeros shaped as this model's input: images, or clips of `frames` frames."""
        shape = (batch, self.frames, 3, size, size) if self.frames else (batch, 3, size, size)
        return torch.zeros(shape, device=device)

    def head_output(self, task: str, features: Any, text: dict[str, torch.Tensor] | None = None) -> Any:
        """One head on its task's features (and its text, or the text tower, where it reads text)."""
        head = self.heads[task]
        if task in self.text_tasks:
            return head(features, self.text(text[task]))
        if task in self.class_text_tasks:
            return head(features, self.text)
        return head(features)

    def example_text(self, batch: int, device: Any = None) -> dict[str, torch.Tensor] | None:
        """Token ids of an empty text (<bos> <eos>) for each text task: what a shape check or a
        MAC count feeds the text tower."""
        if not self.text_tasks:
            return None
        ids = torch.zeros(batch, self.text.max_length, dtype=torch.int64, device=device)
        ids[:, 0], ids[:, 1] = 2, 3  # text/tokenizer.py: <bos>, <eos>
        return {task: ids for task in self.text_tasks}

    def shared_parameters(self) -> list[nn.Parameter]:
        shared = self.topology.shared_parameters()
        return shared + list(self.text.parameters()) if self.text is not None and len(self.text_readers) > 1 else shared

    @property
    def text_readers(self) -> list[str]:
        return self.text_tasks + self.class_text_tasks

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        own = list(self.text.parameters()) if self.text is not None and self.text_readers == [task] else []
        return self.topology.task_parameters(task) + own + list(self.heads[task].parameters())

    def extra_loss(self) -> torch.Tensor | float:
        """The topology's term beside the task losses (soft sharing's pull; 0 for most)."""
        return self.topology.extra_loss()


def clip_features(features: dict[str, Any], frames: int) -> dict[str, Any]:
    """A clip task's features from its frames': the frames' vectors as a sequence (N, T, C) and their
    mean over time as the clip's vector (TSN's average consensus)."""
    sequence = features["vector"].unflatten(0, (-1, frames))
    return {**features, "vector": sequence.mean(1), "sequence": sequence}


def build_topology(spec: Any, base: Path | None = None) -> nn.Module:
    """The sharing topology around the spec's backbone (started from its init checkpoint when `base`,
    the spec file's folder, is given); `init_report` says what the checkpoint gave."""
    from mtlspec.model.temporal import make_temporal

    sharing = spec.model.sharing
    backbone = make_temporal(build_backbone(spec.model.backbone, base), spec.model.temporal, spec.data.clip.length)
    topology = TOPOLOGIES[sharing.type](backbone, spec.model.neck, list(spec.tasks), sharing)
    topology.init_report = backbone.init_report
    return topology


def head_path(task: str, section: Any) -> tuple:
    """Where a task's head is written in the spec: its `head` field where it has one."""
    return ("tasks", task, "head") if "head" in type(section).model_fields else ("tasks", task)


def build_model(spec: Any, task_types: dict[str, Any], base: Path | None = None) -> MultiTaskModel:
    """The model; BuildError naming every part that cannot be built (every head is tried)."""
    from mtlspec.model.init import InitError

    try:
        topology = build_topology(spec, base)
    except InitError as exc:
        raise BuildError([(("model", "backbone", "init", "checkpoint"), str(exc))]) from exc
    except Exception as exc:
        raise BuildError([(("model",), f"the backbone and neck cannot be built: {type(exc).__name__}: {exc}")]) from exc
    heads, problems = {}, []
    text, text_tasks = None, [name for name, tt in task_types.items() if tt.reads_text]
    class_text_tasks = [name for name, tt in task_types.items() if tt.reads_class_text]
    if text_tasks or class_text_tasks:
        from mtlspec.model.text_tower import TextTower, load_pretrained

        tokenizer = task_types[(text_tasks + class_text_tasks)[0]].tokenizer
        try:
            text = TextTower(len(tokenizer) if tokenizer is not None else spec.model.text.vocabulary_size, spec.model.text)
            if spec.model.text.pretrained and base is not None:
                text.init_report = load_pretrained(text, Path(base) / spec.model.text.pretrained)
        except Exception as exc:
            problems.append((("model", "text"), f"the text tower cannot be built: {exc}"))
    for name, task_type in task_types.items():
        task_type.model_section = spec.model  # the text tower's width and the fusion, for heads that read text
        try:
            heads[name] = task_type.build_head(topology.vector_channels, topology.pyramid_channels, topology.strides, spec.data.image_size)
        except Exception as exc:
            problems.append((head_path(name, spec.tasks[name]), f"the head cannot be built on its input features: {type(exc).__name__}: {exc}"))
    if problems:
        raise BuildError(problems)
    clip_tasks = [name for name, tt in task_types.items() if tt.level == "clip"]
    frames = spec.data.clip.length if spec.model.temporal is not None else None
    return MultiTaskModel(topology, heads, text, text_tasks, class_text_tasks, clip_tasks, frames)
