"""A few evaluation images with every task's predictions drawn on them, for the run report: the
overlays `mtlspec predict` draws, from the run's model.pt, on the first images of the split the run
is evaluated on."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

EXAMPLES = 6


def draw_examples(run_dir: Path, split: str, folder: Path, count: int = EXAMPLES) -> list[str]:
    """PNGs of the first `count` images of `split` with the predictions of every task, in folder;
    returns their file names (dataset_sample.png)."""
    from mtlspec.inference.predict import OVERLAYS, predict

    with tempfile.TemporaryDirectory(prefix="mtlspec-examples-") as scratch:
        predict(run_dir, [], Path(scratch), overlays=True, limit=count, split=split)
        drawn = sorted((Path(scratch) / OVERLAYS).rglob("*.png"))
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for png in drawn[:count]:
            name = png.relative_to(Path(scratch) / OVERLAYS).as_posix().replace("/", "_")
            shutil.copyfile(png, folder / name)
            names.append(name)
    return names
