"""`mtlspec export`: a run's model as TorchScript or ONNX, checked against eager on the same images.

The exported graph maps a batch of letterboxed, normalised images (N, 3, S, S) to every task's
raw head output, flattened to a tuple of tensors (names in the sidecar JSON: `task` or
`task.i.j` for a detection head's per-level outputs). Post-processing stays outside: softmax,
sigmoid and argmax for labels and maps, and for boxes MMDetection's decoding and NMS, which are
data-dependent Python loops and do not trace into a fixed graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mtlspec.errors import UsageError
from mtlspec.inference.model_file import load_run, refuse_clips, refuse_meta, refuse_text
from mtlspec.io import write_text_atomic


def flatten(value: Any, name: str) -> list[tuple[str, torch.Tensor]]:
    if torch.is_tensor(value):
        return [(name, value)]
    if isinstance(value, (list, tuple)):
        return [pair for i, v in enumerate(value) for pair in flatten(v, f"{name}.{i}")]
    raise TypeError(f"output '{name}' is a {type(value).__name__}, not tensors")


class Flat(nn.Module):
    """The model with its outputs as one flat tuple of tensors, in the order of `names`."""

    def __init__(self, model: nn.Module, tasks: list[str]):
        super().__init__()
        self.model, self.tasks = model, tasks

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for _, t in self.named(image))

    def named(self, image: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        outputs = self.model(image)
        return [pair for task in self.tasks for pair in flatten(outputs[task], task)]


def example_images(loaded: Any, count: int, seed: int = 0) -> torch.Tensor:
    """Images to trace with and check on: the run's validation images where its data is at hand,
    else standard-normal noise (already in the normalised scale)."""
    from mtlspec.inference.inputs import from_split
    from mtlspec.inference.predict import _data_root, letterbox

    try:
        total, items = from_split(loaded.spec, "val", _data_root(loaded.run_dir))
        chosen = [letterbox(item.image, loaded.image_size)[0] for _, item in zip(range(count), items)]
        if len(chosen) == count:
            return torch.from_numpy(np.stack(chosen))
    except Exception:  # the data moved or is not here: noise checks the graph as well
        pass
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 3, loaded.image_size, loaded.image_size, generator=generator)


def export(run_dir: Path, format: str, out: Path | None = None, check_images: int = 4) -> dict[str, Any]:
    """Write the exported model and `<file>.json` (input, output names, how it was checked); raise
    UsageError naming the task whose head cannot be exported."""
    loaded = load_run(run_dir)
    refuse_meta(loaded, "export")
    refuse_text(loaded, "export")
    refuse_clips(loaded, "export")
    if loaded.spec.model.backbone.type == "Swin":
        raise UsageError("a Swin backbone cannot be exported: MMDetection's shifted-window attention computes the batch size as a "
                         "Python number (window_reverse), so a traced graph answers only the batch size it was traced with "
                         "(measured: 3% off at another); use `mtlspec predict`, or a PVT backbone, whose exports are exact")
    model = Flat(loaded.model.eval(), list(loaded.task_types))
    images = example_images(loaded, 2 + check_images)  # the data is read once: 2 to trace with, the rest to check on
    trace_input, check_input = images[:2], images[2:]
    with torch.no_grad():
        names, expected = (list(x) for x in zip(*model.named(check_input)))
    suffix = {"torchscript": ".ts", "onnx": ".onnx"}[format]
    out = out or run_dir / f"model{suffix}"
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "torchscript":
        got = _torchscript(model, trace_input, check_input, out, loaded)
    else:
        got = _onnx(model, trace_input, check_input, out, names, loaded)
    errors = {n: float((g.float() - e.float()).abs().max() / max(float(e.float().abs().max()), 1e-12)) for n, g, e in zip(names, got, expected)}
    worst = max(errors.values(), default=0.0)
    info = {"format": format, "file": str(out), "run_dir": str(run_dir), "model": {"epoch": loaded.epoch, "selected": loaded.selected},
            "input": {"name": "image", "shape": ["N", 3, loaded.image_size, loaded.image_size], "dtype": "float32",
                      "preprocessing": "RGB, longer side resized to the image size and padded bottom and right, "
                                       "(x - mean) / std with the ImageNet statistics in model.pt"},
            "outputs": names, "tasks": {t: {"type": loaded.tasks[t]["type"], "names": loaded.tasks[t].get("names")} for t in loaded.tasks},
            "checked": {"images": int(check_input.shape[0]), "batch": "a batch size other than the one traced with",
                        "max_relative_difference": worst, "per_output": errors}}
    write_text_atomic(out.with_suffix(out.suffix + ".json"), json.dumps(info, indent=2))
    if not worst <= 1e-4:
        out.unlink(missing_ok=True)  # a file that does not compute what the model does is not left behind
        raise UsageError(f"the exported model differs from eager by {worst:.2e} (relative) on {check_input.shape[0]} images; "
                         f"see {out.with_suffix(out.suffix + '.json')}")
    return info


def _which_task(model: Flat, trace_input: torch.Tensor) -> str:
    """The first task whose head alone does not trace (for the message)."""
    for task in model.tasks:
        try:
            with torch.no_grad():
                torch.jit.trace(Flat(model.model, [task]), trace_input, check_trace=False)
        except Exception as exc:
            return f"task '{task}' ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    return "the shared part"


def _torchscript(model: Flat, trace_input: torch.Tensor, check_input: torch.Tensor, out: Path, loaded: Any) -> tuple:
    import io

    from mtlspec.io import write_bytes_atomic

    try:
        with torch.no_grad():
            traced = torch.jit.trace(model, trace_input, check_trace=False)
    except Exception:
        raise UsageError(f"cannot export to TorchScript: {_which_task(model, trace_input)}") from None
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    write_bytes_atomic(out, buffer.getvalue())
    reloaded = torch.jit.load(str(out))
    with torch.no_grad():
        return reloaded(check_input)


def _onnx(model: Flat, trace_input: torch.Tensor, check_input: torch.Tensor, out: Path, names: list[str], loaded: Any) -> list:
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("ONNX export is checked with onnxruntime, which is not installed: pip install 'mtlspec[export]'") from None
    import tempfile

    from mtlspec.io import write_bytes_atomic

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        try:
            with torch.no_grad():
                torch.onnx.export(model, (trace_input,), str(path), input_names=["image"], output_names=names,
                                  dynamic_axes={"image": {0: "N"}, **{n: {0: "N"} for n in names}}, opset_version=17, dynamo=False)
        except Exception as exc:
            raise UsageError(f"cannot export to ONNX: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
        write_bytes_atomic(out, path.read_bytes())
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(v) for v in session.run(names, {"image": check_input.numpy()})]
