"""The embedded video dataset: clips of scikit-learn's digit scans moving over a textured canvas.

Each clip has one actor, a digit that is on screen in every frame and moves in a straight line
(left, right, up or down; it never reaches an edge), and up to `max_objects - 1` visitors: digits
that appear at some frame, bounce off the canvas's edges and leave at a later frame. The labels:

- `direction` (4 classes: left, right, up, down) and `actor` (the actor's digit), and `action`
  (actor x 4 + direction, 40 classes): "which digit moves which way";
- `events`: one per digit, (its digit, first frame, end frame) on screen, the end exclusive (the
  actor's spans the clip); `visits`: one per visitor, (0, first frame, end frame): when a digit
  other than the actor is on screen, one class;
- per frame: each visible digit's box (its ink's bounding box in that frame), digit, track id
  (0 the actor, 1.. the visitors, the same digit keeps its id in every frame), and the class map.

A clip is a function of (seed, split, index) and the parameters: nothing is stored; the plan
(digits, paths, intervals) is drawn first, so labels are read without drawing a frame. Splits draw
from disjoint pools of scans, as multidigits' do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from mtlspec.data.multidigits import SPLITS, _background, _resize, _scans, split_pools
from mtlspec.data.records import DataError, Record, fingerprint

GENERATOR_VERSION = 1
DIRECTIONS = ("left", "right", "up", "down")
STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}  # (dx, dy) per unit of speed
MIN_VISIBLE = 0.5  # a visitor keeps this share of its ink visible (the actor is drawn over it)
MIN_EVENT = 2  # frames a visitor stays at least


@dataclass(frozen=True)
class MovingDigitsParams:
    canvas: int = 64
    frames: int = 8
    min_objects: int = 1
    max_objects: int = 2
    split: str = "train"
    size: int = 1000
    seed: int = 0

    def described(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Mover:
    """One digit of a clip: its scan, size, colour, position in every frame, and the frames it is on screen."""

    scan: int
    digit: int
    size: int
    colour: tuple[float, float, float]
    xs: tuple[int, ...]
    ys: tuple[int, ...]
    start: int
    end: int  # exclusive


def _bounce(start: float, velocity: float, frames: int, span: int) -> list[int]:
    """Positions over `frames` frames moving at `velocity` from `start`, reflected at 0 and `span`."""
    out = []
    for t in range(frames):
        p = start + velocity * t
        if span > 0:
            p = p % (2 * span)
            p = 2 * span - p if p > span else p
        out.append(int(round(p)))
    return out


class MovingDigitsSource:
    """Clips of one moving_digits split; `record(i)` draws clip i, `labels(i)` reads its labels without drawing."""

    kind = "moving_digits"
    is_clips = True

    def __init__(self, name: str, params: MovingDigitsParams):
        if params.frames < MIN_EVENT + 1:
            raise DataError(f"a clip needs at least {MIN_EVENT + 1} frames (got {params.frames})", f"moving_digits:{params.split}")
        self.name, self.params = name, params
        self.scans, self.digits = _scans()
        self.pool = split_pools(len(self.scans), params.seed)[params.split]
        self.size = max(8, int(round(params.canvas * 0.34)))
        self.glyphs: dict[int, np.ndarray] = {}
        self.origin = f"generated from the {params.split} pool of digit scans (seed {params.seed})"
        self._plan = lru_cache(maxsize=None)(self._draw_plan)

    def __len__(self) -> int:
        return self.params.size

    def fingerprint(self) -> str:
        return fingerprint(self.kind, {"version": GENERATOR_VERSION, **self.params.described()})

    def where(self, index: int) -> tuple[str, int]:
        """(file, sample) as bad-data messages name them."""
        return f"moving_digits:{self.params.split}", index

    # --- the plan ----------------------------------------------------------------------------

    def _glyph(self, scan: int) -> np.ndarray:
        if scan not in self.glyphs:
            self.glyphs[scan] = _resize(self.scans[scan], self.size)
        return self.glyphs[scan]

    def _draw_plan(self, index: int) -> tuple[int, list[Mover]]:
        p, s = self.params, self.size
        span = p.canvas - s
        rng = np.random.default_rng([p.seed, SPLITS.index(p.split), p.canvas, p.frames, p.min_objects, p.max_objects, index])
        direction = int(rng.integers(len(DIRECTIONS)))
        for _attempt in range(100):
            count = int(rng.integers(p.min_objects, p.max_objects + 1))
            chosen = rng.choice(self.pool, size=count, replace=False)
            dx, dy = STEP[DIRECTIONS[direction]]
            fastest = min(5.0, span / max(p.frames - 1, 1))  # the actor never reaches an edge
            speed = float(rng.uniform(min(1.5, fastest / 2), fastest))
            travel = speed * (p.frames - 1)
            along = rng.uniform(0, max(span - travel, 0))
            start_x = along if dx > 0 else span - along if dx < 0 else rng.uniform(0, span)
            start_y = along if dy > 0 else span - along if dy < 0 else rng.uniform(0, span)
            xs = [int(round(min(max(start_x + dx * speed * t, 0), span))) for t in range(p.frames)]
            ys = [int(round(min(max(start_y + dy * speed * t, 0), span))) for t in range(p.frames)]
            movers = [Mover(int(chosen[0]), int(self.digits[chosen[0]]), s, tuple(rng.uniform(150, 255, 3)), tuple(xs), tuple(ys), 0, p.frames)]
            for scan in chosen[1:]:
                begin = int(rng.integers(0, p.frames - MIN_EVENT + 1))
                end = int(rng.integers(begin + MIN_EVENT, p.frames + 1))
                angle = rng.uniform(0, 2 * np.pi)
                v = rng.uniform(2.0, 6.0)
                vx, vy = v * np.cos(angle), v * np.sin(angle)
                movers.append(Mover(int(scan), int(self.digits[scan]), s, tuple(rng.uniform(150, 255, 3)),
                                    tuple(_bounce(rng.uniform(0, span), vx, p.frames, span)),
                                    tuple(_bounce(rng.uniform(0, span), vy, p.frames, span)), begin, end))
            if self._visible_enough(movers):
                return direction, movers
        raise DataError(f"could not keep {p.max_objects} digits visible on a {p.canvas} px canvas in 100 tries; use a larger canvas or fewer objects",
                        f"moving_digits:{p.split}", index)

    def _visible_enough(self, movers: list[Mover]) -> bool:
        """Whether each visitor keeps MIN_VISIBLE of its ink in every frame it is on screen (later movers are drawn over earlier ones; the actor last)."""
        order = movers[1:] + movers[:1]
        for t in range(self.params.frames):
            owner = self._owners(order, t)
            for i, m in enumerate(order):
                if m.start <= t < m.end:
                    ink = self._glyph(m.scan) > 0.3
                    if (owner == i).sum() < MIN_VISIBLE * ink.sum():
                        return False
        return True

    def _owners(self, order: list[Mover], t: int) -> np.ndarray:
        c = self.params.canvas
        owner = np.full((c, c), -1, np.int64)
        for i, m in enumerate(order):
            if m.start <= t < m.end:
                ink = self._glyph(m.scan) > 0.3
                owner[m.ys[t] : m.ys[t] + m.size, m.xs[t] : m.xs[t] + m.size][ink] = i
        return owner

    # --- labels and records ------------------------------------------------------------------

    def labels(self, index: int) -> dict:
        direction, movers = self._plan(index)
        actor = movers[0].digit
        return {"direction": direction, "actor": actor, "action": actor * len(DIRECTIONS) + direction,
                "events": [[m.digit, m.start, m.end] for m in movers], "visits": [[0, m.start, m.end] for m in movers[1:]]}

    def record(self, index: int) -> Record:
        """The clip: `frames`, one image record per frame (image, boxes, box_labels, track_ids, mask), and the clip's labels."""
        p = self.params
        direction, movers = self._plan(index)
        rng = np.random.default_rng([p.seed, SPLITS.index(p.split), p.canvas, p.frames, index, 1])
        background = _background(rng, p.canvas)
        order = movers[1:] + movers[:1]  # visitors first, the actor over them
        tracks = [*range(1, len(movers)), 0]
        frames = []
        for t in range(p.frames):
            image = background + rng.normal(0, 3, background.shape)
            mask = np.zeros((p.canvas, p.canvas), np.int64)
            owner = self._owners(order, t)
            boxes, box_labels, track_ids = [], [], []
            for i, (m, track) in enumerate(zip(order, tracks)):
                if not m.start <= t < m.end:
                    continue
                glyph = self._glyph(m.scan)
                y0, x0 = m.ys[t], m.xs[t]
                region = image[y0 : y0 + m.size, x0 : x0 + m.size]
                alpha = np.clip(glyph, 0, 1)[..., None]
                region[:] = region * (1 - alpha) + np.asarray(m.colour) * alpha
                visible = owner == i
                mask[visible] = m.digit + 1
                ys, xs = np.nonzero(visible)
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                box_labels.append(m.digit)
                track_ids.append(track)
            keep = np.argsort(track_ids, kind="stable")  # the actor (track 0) first
            frames.append({
                "image": np.clip(image, 0, 255).astype(np.uint8),
                "mask": mask,
                "boxes": np.asarray(boxes, np.float32).reshape(-1, 4)[keep],
                "box_labels": np.asarray(box_labels, np.int64)[keep],
                "track_ids": np.asarray(track_ids, np.int64)[keep],
                "meta": {"dataset": self.name, "index": index, "frame": t, "file": f"moving_digits:{p.split}"},
            })
        return {"frames": frames, "labels": self.labels(index),
                "meta": {"dataset": self.name, "index": index, "file": f"moving_digits:{p.split}"}}

    # --- what tasks ask ----------------------------------------------------------------------

    def clip_frames(self) -> int:
        return self.params.frames

    def label_classes(self, label: str) -> int | None:
        return {"direction": len(DIRECTIONS), "actor": 10, "action": 10 * len(DIRECTIONS), "events": 10, "visits": 1}.get(label)

    def label_names(self, label: str) -> list[str] | None:
        if label == "direction":
            return list(DIRECTIONS)
        if label == "action":
            return [f"{d} {w}" for d in range(10) for w in DIRECTIONS]
        if label == "visits":
            return ["visit"]
        return [str(d) for d in range(10)] if label in ("actor", "events") else None

    def box_classes(self) -> int:
        return 10

    def box_names(self) -> list[str]:
        return [str(d) for d in range(10)]

    def mask_classes(self) -> int:
        return 11

    def mask_names(self) -> list[str]:
        return ["background", *self.box_names()]
