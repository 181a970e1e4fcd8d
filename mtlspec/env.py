"""Checks the installed stack (Python, torch, mmengine, mmcv and its compiled ops, mmdet)."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata


@dataclass
class Check:
    """One row of `mtlspec env`: a component, its version or state, and whether it is usable."""

    name: str
    detail: str
    ok: bool = True


@dataclass
class EnvReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if not c.ok), None)


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _check_torch(report: EnvReport) -> bool:
    try:
        import torch
    except Exception as exc:  # a broken install raises more than ImportError
        report.checks.append(Check("torch", f"cannot import: {_cause(exc)}", ok=False))
        return False
    report.checks.append(Check("torch", torch.__version__))
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        report.checks.append(Check("cuda", f"available (CUDA {torch.version.cuda}): {names}"))
    else:
        built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
        report.checks.append(Check("cuda", f"not available ({built})"))
    return True


def _check_mmcv_ops(report: EnvReport) -> None:
    try:
        import torch
        from mmcv.ops import nms

        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
        scores = torch.tensor([0.9, 0.8, 0.7])
        _, keep = nms(boxes, scores, iou_threshold=0.5)
        if keep.tolist() != [0, 2]:
            raise RuntimeError(f"mmcv.ops.nms kept {keep.tolist()}, expected [0, 2]")
        detail = "ops: ok (nms ran)"
        if torch.cuda.is_available():
            _, keep = nms(boxes.cuda(), scores.cuda(), iou_threshold=0.5)
            detail = "ops: ok (nms ran on cpu and cuda)"
        report.checks.append(Check("mmcv.ops", detail))
    except Exception as exc:
        report.checks.append(Check("mmcv.ops", f"broken: {_cause(exc)}", ok=False))


def _check_mmdet(report: EnvReport) -> None:
    try:
        import mmdet  # asserts a compatible mmcv at import
        from mmdet.utils import register_all_modules

        register_all_modules(init_default_scope=False)
        report.checks.append(Check("mmdet import", f"ok ({mmdet.__version__})"))
    except Exception as exc:
        report.checks.append(Check("mmdet import", f"broken: {_cause(exc)}", ok=False))


def collect() -> EnvReport:
    """Versions of every component and live checks that the compiled parts work."""
    from mtlspec import __version__

    report = EnvReport()
    report.checks.append(Check("mtlspec", __version__))
    report.checks.append(Check("python", f"{platform.python_version()} ({platform.machine()})"))
    torch_ok = _check_torch(report)
    for dist in ("mmengine", "mmcv", "mmdet"):
        version = _version(dist)
        report.checks.append(Check(dist, version or "not installed", ok=version is not None))
    if torch_ok and _version("mmcv"):
        _check_mmcv_ops(report)
    if torch_ok and _version("mmdet") and _version("mmcv") and _version("mmengine"):
        _check_mmdet(report)
    return report
