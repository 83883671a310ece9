"""The synthetic CASIA-B-shaped dataset: the project's default data.

Every sequence is rendered by :mod:`gaitlib.data.walker`, corrupted with segmentation-like
noise and passed through the same pretreatment as real silhouettes. Randomness is layered
so that what is shared stays shared, as in CASIA-B, where one walk is filmed by 11 cameras
at once:

- subject (seed, subject): body proportions and walking dynamics, i.e. the identity;
- walk (seed, subject, condition): speed/stride/swing/posture changes and the condition's
  coat or bag, the same in every view of that walk;
- sequence (seed, subject, condition, view): start phase, length, camera distance, view
  jitter and segmentation noise.

Each stream comes from its own ``numpy.random.SeedSequence`` keyed by those labels, never
from a shared stream, so a sequence is identical whatever ``workers``, subset of views or
conditions is asked for.
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from gaitlib.data.pretreatment import MIN_FRAMES, pretreat_sequence
from gaitlib.data.splits import CASIA_B_CONDITIONS, CASIA_B_VIEWS
from gaitlib.data.store import StoreWriter
from gaitlib.data.walker import (
    CAPSULES,
    Camera,
    Outfit,
    parts,
    pose,
    random_body,
    render,
    vary_walk,
    walking_speed,
)

GENERATOR_VERSION = "1"
# Limb pieces a segmentation may lose for a frame.
_DROPPABLE = tuple(i for i, n in enumerate(CAPSULES) if n.split("_")[0] in ("forearm", "shin", "foot"))


@dataclass(frozen=True)
class Difficulty:
    """Knobs that set how hard the synthetic task is (calibrated against real CASIA-B)."""

    spread: float = 1.0  # between-subject spread of body and gait (identity strength)
    walk_var: float = 0.8  # within-subject variation between walks
    length: tuple[int, int] = (30, 50)  # frames per sequence, inclusive range
    view_jitter: float = 3.0  # degrees (sd)
    scale_jitter: float = 0.12  # relative range (+-) of the person's size in pixels
    distance: tuple[float, float] = (3.5, 6.0)  # camera distance range (m): perspective
    camera_height: tuple[float, float] = (1.0, 1.5)  # metres
    edge_noise: float = 0.3  # amplitude of the low-frequency boundary noise
    hole_p: float = 0.06  # per-frame probability of a hole in the body
    blob_p: float = 0.06  # per-frame probability of a spurious blob on the edge
    shadow_p: float = 0.25  # per-sequence probability of a shadow at the feet
    miss_p: float = 0.05  # per-frame probability of a missing limb piece
    coat: float = 1.0  # coat strength (thickness, length, flare)
    bag: float = 1.0  # bag size scale


@dataclass(frozen=True)
class SynthStats:
    path: Path
    sequences: int
    frames: int
    seconds: float
    dropped: int = 0

    def summary(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else float("inf")
        dropped = f", {self.dropped} dropped (< {MIN_FRAMES} frames)" if self.dropped else ""
        return (f"synthetic store {self.path}: {self.sequences} sequences, {self.frames} frames "
                f"in {self.seconds:.1f} s ({rate:.0f} frames/s){dropped}")


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def _outfit(condition: str, rng: np.random.Generator, diff: Difficulty, thigh: float) -> Outfit:
    kind = condition[:2]
    if kind == "cl":
        return Outfit(coat=True, coat_thick=diff.coat * rng.uniform(0.02, 0.06),
                      coat_len=thigh * diff.coat * rng.uniform(0.6, 1.6),
                      coat_flare=diff.coat * rng.uniform(0.02, 0.12))
    if kind == "bg":
        bag = str(rng.choice(["shoulder", "backpack", "handbag"], p=[0.4, 0.35, 0.25]))
        lo, hi = {"shoulder": ((0.07, 0.25, 0.2), (0.13, 0.4, 0.32)),
                  "backpack": ((0.12, 0.26, 0.32), (0.22, 0.34, 0.45)),
                  "handbag": ((0.07, 0.22, 0.16), (0.12, 0.35, 0.28))}[bag]
        size = tuple(float(x) * diff.bag for x in rng.uniform(lo, hi))
        return Outfit(bag=bag, bag_side=int(rng.choice([-1, 1])), bag_size=size)
    return Outfit()


def _corrupt(raw: np.ndarray, rng: np.random.Generator, diff: Difficulty) -> np.ndarray:
    """Segmentation-like damage: ragged edges, holes, blobs and a shadow at the feet."""
    t, h, w = raw.shape
    x = cv2.GaussianBlur(raw.transpose(1, 2, 0).astype(np.float32) / 255, (0, 0), 1.2)
    x = x.reshape(h, w, t)
    if diff.edge_noise > 0:  # only near the boundary, so no specks in the background
        coarse = rng.normal(0, 1, (h // 5 + 2, w // 5 + 2, t)).astype(np.float32)
        noise = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, t)
        x = x + diff.edge_noise * noise * np.minimum(1.0, 3 * x * (1 - x))
    out = np.ascontiguousarray(((x > 0.5) * 255).astype(np.uint8).transpose(2, 0, 1))
    events = rng.random((t, 2)) < [diff.hole_p, diff.blob_p]
    for i in np.flatnonzero(events.any(axis=1)):
        img = out[i]
        on = np.flatnonzero(img)
        if len(on) == 0:
            continue
        for (hole, colour, size) in ((0, 0, 5), (1, 255, 6)):
            if events[i, hole]:  # a hole (colour 0) in the body or a blob (255) on it
                y, xx = divmod(int(on[rng.integers(len(on))]), w)
                axes = tuple(int(a) for a in rng.integers(1 + hole, size, 2))
                cv2.ellipse(img, (xx, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    if rng.random() < diff.shadow_p:  # a flat shadow under the feet
        sh_w, sh_dx = rng.uniform(0.12, 0.3) * h, rng.uniform(-0.08, 0.08) * h
        rows = out.any(axis=2)
        bottom = h - 1 - np.argmax(rows[:, ::-1], axis=1)
        cols = out.sum(axis=1, dtype=np.float32)
        centre = (cols * np.arange(w)).sum(axis=1) / np.maximum(cols.sum(axis=1), 1)
        for i in range(t):
            cv2.ellipse(out[i], (int(centre[i] + sh_dx), int(bottom[i]) - 1),
                        (int(sh_w / 2), 2), 0, 0, 360, 255, -1)
    return out


def render_sequence(seed: int, subject: int, condition: str, view: str,
                    difficulty: Difficulty = Difficulty()) -> np.ndarray:
    """Raw (T, H, W) uint8 silhouettes of one sequence, before pretreatment."""
    diff = difficulty
    ci, vi = CASIA_B_CONDITIONS.index(condition), int(view)
    body = random_body(_rng(seed, 0, subject), diff.spread)
    walk_rng = _rng(seed, 1, subject, ci)
    walk = vary_walk(body, walk_rng, diff.walk_var)
    outfit = _outfit(condition, walk_rng, diff, body.thigh)
    if outfit.coat:  # a heavy coat damps the arm swing
        walk = replace(walk, arm_swing=walk.arm_swing * walk_rng.uniform(0.5, 1.0))
    rng = _rng(seed, 2, subject, ci, vi)
    n = int(rng.integers(diff.length[0], diff.length[1] + 1))
    phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(n) / walk.cycle
    # The walker crosses the scene: mid-sequence it is at the path's midpoint (+- jitter).
    advance = walking_speed(walk) * (np.arange(n) - n / 2) + rng.normal(0, 0.3)
    joints, _ = pose(walk, phase, outfit, advance)
    a, b, ra, rb, solids = parts(walk, joints, outfit)
    distance = rng.uniform(*diff.distance)
    size = 80 * rng.uniform(1 - diff.scale_jitter, 1 + diff.scale_jitter)  # person height, px
    cam = Camera(vi + rng.normal(0, diff.view_jitter), distance,
                 height=rng.uniform(*diff.camera_height), focal=size * distance / body.height)
    draw = np.ones((n, a.shape[1]), dtype=bool)
    miss = np.flatnonzero(rng.random(n) < diff.miss_p)
    draw[miss, rng.choice(_DROPPABLE, len(miss))] = False
    (a2, da), (b2, db) = cam.project(a), cam.project(b)
    raw = render(a2, b2, ra * cam.focal / da, rb * cam.focal / db,
                 [cam.project(s)[0] for s in solids], draw)
    return _corrupt(raw, rng, diff)


def _make(task: tuple) -> np.ndarray:
    seed, subject, condition, view, diff = task
    return pretreat_sequence(render_sequence(seed, subject, condition, view, diff))


def _init_worker() -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # torch is not needed here
        pass


def _mp_context():
    """fork where available: no ``if __name__ == "__main__"`` guard needed in user scripts.
    Workers use only numpy and OpenCV, single-threaded, so forking a parent that has
    started thread pools (torch, OpenMP) is safe here."""
    methods = get_all_start_methods()
    return get_context("fork" if "fork" in methods else "spawn")


def _names(given, valid: tuple[str, ...], what: str) -> tuple[str, ...]:
    if isinstance(given, str):
        given = given.split(",")
    names = []
    for g in given:
        g = str(g).strip()
        if what == "view" and g.isdigit():
            g = f"{int(g):03d}"
        if g not in valid:
            raise ValueError(f"unknown {what} {g!r}; valid: {', '.join(valid)}")
        if g in names:
            raise ValueError(f"{what} {g!r} given twice")
        names.append(g)
    if not names:
        raise ValueError(f"no {what}s given")
    return tuple(names)


# The OU-MVLP-shaped variant: OU-MVLP's 14 views, two normal walks per view named like
# OU-MVLP's sequences ('00', '01'), rendered as the walker's nm-01 and nm-02.
OUMVLP_VIEWS = (*(f"{v:03d}" for v in range(0, 91, 15)), *(f"{v:03d}" for v in range(180, 271, 15)))
OUMVLP_CONDITIONS = {"00": "nm-01", "01": "nm-02"}
SHAPES = ("casia-b", "oumvlp")


def generate(out: str | os.PathLike, n_subjects: int = 100, seed: int = 0,
             views=CASIA_B_VIEWS, conditions=CASIA_B_CONDITIONS, workers: int | None = None,
             force: bool = False, progress: bool = True, *,
             difficulty: Difficulty | None = None, shape: str = "casia-b") -> SynthStats:
    """Render the synthetic dataset into a store at ``out``.

    Subjects are '001'.. (wider if needed), conditions and views use CASIA-B's names. The
    result depends only on ``seed``, the labels and ``difficulty``, never on ``workers``
    (None: all cores). ``difficulty`` is for calibration studies; the default is the
    calibrated setting.  ``shape='oumvlp'`` renders OU-MVLP's layout instead (14 views,
    sequences '00' and '01'; ``views`` and ``conditions`` are then ignored) into a store of
    dataset ``synthetic-oumvlp``, scored with the OU-MVLP protocol.
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, (int, np.integer)) \
            or n_subjects < 2:
        raise ValueError(f"n_subjects must be an integer >= 2 (a train and a test half), "
                         f"got {n_subjects!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if shape == "oumvlp":
        views, conditions, names = OUMVLP_VIEWS, tuple(OUMVLP_CONDITIONS.values()), \
            {v: k for k, v in OUMVLP_CONDITIONS.items()}
    else:
        views = _names(views, CASIA_B_VIEWS, "view")
        conditions = _names(conditions, CASIA_B_CONDITIONS, "condition")
        names = {c: c for c in conditions}
    diff = difficulty or Difficulty()
    workers = os.cpu_count() or 1 if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    width = max(3, len(str(n_subjects)))
    tasks = [(int(seed), s, c, v, diff) for s in range(1, n_subjects + 1)
             for c in conditions for v in views]
    meta = {"generator": "gaitlib.data.synthetic", "generator_version": GENERATOR_VERSION,
            "seed": int(seed), "n_subjects_generated": int(n_subjects), "views": list(views),
            "conditions": [names[c] for c in conditions], "difficulty": asdict(diff),
            "shape": shape}
    start = time.perf_counter()
    frames = dropped = 0
    dataset = "synthetic" if shape == "casia-b" else "synthetic-oumvlp"
    with StoreWriter(out, dataset, force=force, extra_meta=meta) as writer, \
            tqdm(total=len(tasks), desc="synthetic", unit="seq", disable=not progress) as bar:
        if workers == 1:
            results = map(_make, tasks)
            pool = None
        else:
            pool = ProcessPoolExecutor(workers, mp_context=_mp_context(),
                                       initializer=_init_worker)
            results = pool.map(_make, tasks, chunksize=8)
        try:
            for (_, s, c, v, _), seq in zip(tasks, results, strict=True):
                if len(seq) < MIN_FRAMES:
                    warnings.warn(f"synthetic {s:0{width}d}/{c}/{v}: {len(seq)} frames left "
                                  "after pretreatment, dropped", stacklevel=2)
                    dropped += 1
                else:
                    writer.add(f"{s:0{width}d}", names[c], v, seq)
                    frames += len(seq)
                bar.update()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    seconds = time.perf_counter() - start
    return SynthStats(Path(out), len(tasks) - dropped, frames, seconds, dropped)
