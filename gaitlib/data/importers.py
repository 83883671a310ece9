"""Import a user's copy of CASIA-B or OU-MVLP into gaitlib's store.

The datasets are licence-gated, so the project never ships them: the user points
``import_dataset`` at a copy in one of the layouts people actually have, detected from
the tree itself:

- official CASIA-B silhouettes ``SSS/COND/VVV/SSS-COND-VVV-FFF.png`` (raw, any size);
- official OU-MVLP silhouettes ``Silhouette_VVV-SS/SSSSS/FFFF.png`` (raw);
- OpenGait's pkl trees, ``SSS/COND/VVV/*.pkl`` (CASIA-B) and ``SSSSS/SS/VVV/*.pkl``
  (OU-MVLP), each one (T, 64, 64) uint8 array that OpenGait already pretreated.

Raw PNG frames go through :func:`pretreat_sequence`, the algorithm the papers' numbers
assume; pkl arrays are only validated, so an OpenGait tree imports bit-for-bit. pkl files
are read with a restricted unpickler (:mod:`gaitlib.data.safe_pickle`) because a dataset
copy from elsewhere is untrusted input.

Real copies have flaws (empty folders, truncated files, stray names), and one bad file
should not cost an hour-long import: every problem skips its sequence with a recorded
reason, reported in :class:`ImportSummary`. Sequences load in worker processes; the main
process alone writes the store, atomically (:class:`StoreWriter`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing import Pool
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from gaitlib.data.pretreatment import FRAME_SIZE, MIN_FRAMES, pretreat_sequence
from gaitlib.data.safe_pickle import UnsafePickleError, load_numpy_pickle
from gaitlib.data.splits import (
    CASIA_B_CONDITIONS,
    CASIA_B_VIEWS,
    OUMVLP_CONDITIONS,
    OUMVLP_VIEWS,
)
from gaitlib.data.store import StoreWriter, check_out

log = logging.getLogger(__name__)

DATASETS = ("casia-b", "oumvlp")

#: Why a sequence (or a stray entry of the tree) was skipped.
SKIP_REASONS = {
    "unexpected_name": "name is not a label of the dataset",
    "empty_dir": "sequence folder holds no frame files",
    "too_few_frames": f"fewer than {MIN_FRAMES} frames after pretreatment",
    "unreadable": "unreadable or corrupt file",
    "not_regular": "a frame file is a FIFO, socket or device (never opened: it can block)",
    "unsafe_pkl": "pkl refused by the restricted unpickler",
    "bad_array": "pkl array is not uint8 (T, size, size) at the requested frame size",
    "empty_array": "pkl array has no frames",
    "ambiguous_pkl": "several pkl files and none named VIEW.pkl",
    "no_foreground": "every frame is empty (all zero): no silhouette to learn or score",
}
#: Sequences imported but worth a warning.
NOTES = {
    "short_kept": f"pkl sequence shorter than {MIN_FRAMES} frames, kept as OpenGait wrote it",
    "rescaled_01": "pkl silhouettes valued 0/1, rescaled to 0/255 (the values OpenGait writes)",
    "duplicate_frames": "PNG files with the same frame number (e.g. '... (copy).png'): each "
                        "frame imported once, the copies left out",
}
MAX_EXAMPLES = 3


# ----------------------------------------------------------------------------- labels, layouts

def _subject_parser(width: int, count: int) -> Callable[[str], dict | None]:
    def parse(name: str) -> dict | None:
        ok = len(name) == width and name.isdigit() and 1 <= int(name) <= count
        return {"subject": name} if ok else None
    return parse


def _label_parser(key: str, allowed: tuple[str, ...]) -> Callable[[str], dict | None]:
    return lambda name: {key: name} if name in allowed else None


def _oumvlp_view_dir(name: str) -> dict | None:
    m = re.fullmatch(r"Silhouette_(\d{3})-(\d{2})", name)
    if m and m[1] in OUMVLP_VIEWS and m[2] in OUMVLP_CONDITIONS:
        return {"view": m[1], "condition": m[2]}
    return None


@dataclass(frozen=True)
class Layout:
    """A folder structure: one parser per level turns a folder name into labels (or None)."""

    name: str  # the folder pattern, e.g. "SSS/COND/VVV"
    root_pattern: str  # regex a first-level folder name must match for detection
    levels: tuple[Callable[[str], dict | None], ...]


_CASIA_SUBJECT = _subject_parser(3, 124)
_OUMVLP_SUBJECT = _subject_parser(5, 10307)
LAYOUTS = {
    "casia-b": [
        Layout("SSS/COND/VVV", r"\d{3}", (_CASIA_SUBJECT,
                                          _label_parser("condition", CASIA_B_CONDITIONS),
                                          _label_parser("view", CASIA_B_VIEWS))),
    ],
    "oumvlp": [
        Layout("Silhouette_VVV-SS/SSSSS", r"Silhouette_\d{3}-\d{2}",
               (_oumvlp_view_dir, _OUMVLP_SUBJECT)),
        Layout("SSSSS/SS/VVV", r"\d{5}", (_OUMVLP_SUBJECT,
                                          _label_parser("condition", OUMVLP_CONDITIONS),
                                          _label_parser("view", OUMVLP_VIEWS))),
    ],
}
EXPECTED = {
    "casia-b": "SSS/COND/VVV/SSS-COND-VVV-FFF.png (official) or SSS/COND/VVV/*.pkl (OpenGait)",
    "oumvlp": "Silhouette_VVV-SS/SSSSS/FFFF.png (official) or SSSSS/SS/VVV/*.pkl (OpenGait)",
}


class Task(NamedTuple):
    subject: str
    condition: str
    view: str
    path: str  # the sequence folder
    kind: str  # "png" or "pkl"
    size: int = FRAME_SIZE  # frame side: 64 (64x44 input) or 128 (128x88 input)


class Result(NamedTuple):
    task: Task
    frames: np.ndarray | None  # None: skipped for ``reason``; else imported, ``reason`` a note
    reason: str | None = None
    detail: str = ""


def _visible_entries(path: Path) -> list[os.DirEntry]:
    return sorted((e for e in os.scandir(path) if not e.name.startswith(".")), key=lambda e: e.name)


def _detect(dataset: str, src: Path) -> Layout:
    entries = _visible_entries(src)
    for layout in LAYOUTS[dataset]:
        if any(e.is_dir() and re.fullmatch(layout.root_pattern, e.name) for e in entries):
            return layout
    found = ", ".join(e.name + ("/" if e.is_dir() else "") for e in entries[:6]) or "nothing"
    more = f" (and {len(entries) - 6} more)" if len(entries) > 6 else ""
    raise ValueError(f"{src} does not look like a {dataset} tree: expected {EXPECTED[dataset]}; "
                     f"found {found}{more}")


def _walk(layout: Layout, src: Path, reject: Callable[[str, str], None]) -> list[Task]:
    """Sequence folders of ``src`` with their labels; stray entries go to ``reject``."""
    found: list[Task] = []

    def visit(path: Path, depth: int, labels: dict) -> None:
        try:
            entries = _visible_entries(path)
        except OSError as err:
            reject("unreadable", f"{path}: {err}")
            return
        for entry in entries:
            parsed = layout.levels[depth](entry.name) if entry.is_dir() else None
            if parsed is None:
                reject("unexpected_name", entry.path)
            elif depth + 1 < len(layout.levels):
                visit(Path(entry.path), depth + 1, {**labels, **parsed})
            else:
                lab = {**labels, **parsed}
                found.append(Task(lab["subject"], lab["condition"], lab["view"], entry.path, ""))

    visit(src, 0, {})
    return sorted(found)


def _file_kind(tasks: list[Task], src: Path) -> str:
    """png or pkl: the frame files of the first sequence folder that holds any."""
    for task in tasks:
        try:
            names = os.listdir(task.path)
        except OSError:
            continue  # reported when the sequence is loaded
        if any(n.endswith(".pkl") for n in names):
            return "pkl"
        if any(n.lower().endswith(".png") for n in names):
            return "png"
    raise ValueError(f"no .png or .pkl files in any of the {len(tasks)} sequence folders under "
                     f"{src}")


# ----------------------------------------------------------------------------- loading (workers)

# What file managers append to a copied file's name: " (copy)", " (2)", " copy 3", "-Copy".
_COPY_SUFFIX = re.compile(r"(\s*\((copy[^)]*|\d+)\)|[\s_-]+copy(\s*\d+)?)+$", re.IGNORECASE)


def _frame_number(name: str) -> tuple[int, int, str]:
    stem = _COPY_SUFFIX.sub("", Path(name).stem)
    digits = re.findall(r"\d+", stem)
    return (0, int(digits[-1]), name) if digits else (1, 0, name)


def _unique_frames(names: list[str]) -> tuple[list[str], list[str]]:
    """Frame files in frame order, one per frame number (the shortest name: the original, not
    '... (copy).png'), and the duplicates left out."""
    keep: dict[int, str] = {}
    dropped, unnumbered = [], []
    for name in names:
        has_number, number, _ = _frame_number(name)
        if has_number:  # no number: ordered by name, never a duplicate
            unnumbered.append(name)
        elif number in keep:
            first, second = sorted((keep[number], name), key=lambda n: (len(n), n))
            keep[number] = first
            dropped.append(second)
        else:
            keep[number] = name
    return sorted(keep.values(), key=_frame_number) + sorted(unnumbered), dropped


def _load_png(task: Task) -> Result:
    names, dropped = _unique_frames([n for n in os.listdir(task.path)
                                     if n.lower().endswith(".png")])
    if not names:
        return Result(task, None, "empty_dir", task.path)
    raw = []
    for name in names:
        path = os.path.join(task.path, name)
        img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if img is None:
            return Result(task, None, "unreadable", f"{path}: not a readable PNG")
        raw.append(img)
    frames = pretreat_sequence(raw, task.size)
    if len(frames) < MIN_FRAMES:
        return Result(task, None, "too_few_frames",
                      f"{task.path}: {len(frames)} of {len(raw)} frames kept")
    if dropped:
        return Result(task, frames, "duplicate_frames",
                      f"{task.path}: left out {len(dropped)}, e.g. {dropped[0]}")
    return Result(task, frames)


def _load_pkl(task: Task) -> Result:
    names = sorted(n for n in os.listdir(task.path) if n.endswith(".pkl"))
    if not names:
        return Result(task, None, "empty_dir", task.path)
    if len(names) > 1:
        if f"{task.view}.pkl" not in names:
            return Result(task, None, "ambiguous_pkl", f"{task.path}: {', '.join(names[:4])}")
        names = [f"{task.view}.pkl"]
    path = os.path.join(task.path, names[0])
    try:
        arr = load_numpy_pickle(path)
    except UnsafePickleError as err:
        return Result(task, None, "unsafe_pkl", str(err))
    except Exception as err:  # a corrupt pickle can fail in many ways; none may stop the import
        return Result(task, None, "unreadable", f"{path}: {type(err).__name__}: {err}")
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != (task.size, task.size):
        return Result(task, None, "bad_array", f"{path}: {arr.dtype} {arr.shape}")
    if len(arr) == 0:
        return Result(task, None, "empty_array", path)
    top = int(arr.max())
    if top == 0:
        return Result(task, None, "no_foreground", f"{path}: {len(arr)} frames, all zero")
    if top == 1:  # a 0/1 mask would reach the model as 1/255: scale it to OpenGait's 0/255
        return Result(task, np.ascontiguousarray(arr * np.uint8(255)), "rescaled_01",
                      f"{path}: {len(arr)} frames")
    # OpenGait's pretreatment warns about but still writes 1-4-frame sequences, and its
    # CASIA-B evaluation uses them (13,592 sequences), so an imported pkl tree keeps them.
    note = "short_kept" if len(arr) < MIN_FRAMES else None
    return Result(task, np.ascontiguousarray(arr), note, f"{path}: {len(arr)} frames")


def _special_file(folder: str, suffix: str) -> str | None:
    """A frame file (``*suffix``) of ``folder`` that is a FIFO, socket, device or a link to one:
    opening it can block forever, so its sequence is skipped unread (a broken link is not)."""
    special = [e.path for e in os.scandir(folder) if e.name.lower().endswith(suffix)
               and not e.is_file() and os.path.exists(e.path)]
    return min(special, default=None)


def load_sequence(task: Task) -> Result:
    """Load one sequence folder (runs in a worker process); never raises for bad data."""
    try:
        special = _special_file(task.path, f".{task.kind}")
        if special is not None:
            return Result(task, None, "not_regular", special)
        return (_load_pkl if task.kind == "pkl" else _load_png)(task)
    except OSError as err:  # permissions, vanished files, I/O errors
        return Result(task, None, "unreadable", f"{task.path}: {err}")


def _init_worker() -> None:
    cv2.setNumThreads(1)  # the processes are the parallelism


def _results(tasks: list[Task], workers: int) -> Iterator[Result]:
    """Loaded sequences in task order.

    PNG folders (decode + pretreat: CPU-bound) go to worker processes. pkl files are
    I/O plus a memcpy, and sending each array back through a pipe costs more than it
    saves (full CASIA-B: ~36 s with processes vs ~10-20 s in one process), so they go
    to threads, which overlap the reads with the main process's writes.
    """
    if workers <= 1:
        yield from map(load_sequence, tasks)
        return
    chunksize = max(1, min(32, len(tasks) // (workers * 8)))
    if tasks[0].kind == "pkl":
        pool = ThreadPool(workers)
    else:
        pool = Pool(workers, initializer=_init_worker)
    with pool:
        yield from pool.imap(load_sequence, tasks, chunksize=chunksize)


# ----------------------------------------------------------------------------- summary, driver

@dataclass
class ImportSummary:
    """What an import did: counts, skip reasons with example paths, speed."""

    dataset: str
    source: str
    out: str
    layout: str = ""
    imported: int = 0
    n_frames: int = 0
    n_subjects: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    elapsed_s: float = 0.0
    cleaned: list[str] = field(default_factory=list)  # stale temporary dirs of earlier imports

    def skip(self, reason: str, detail: str) -> None:
        self._count(self.skipped, reason, detail)

    def note(self, reason: str, detail: str) -> None:
        self._count(self.notes, reason, detail)

    def _count(self, counter: Counter, reason: str, detail: str) -> None:
        counter[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(detail)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def sequences_per_s(self) -> float:
        return self.imported / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def report(self) -> str:
        how = {"png": "raw PNG, pretreated on import", "pkl": "OpenGait pkl, validated"}
        kind = how.get(self.layout.rpartition(".")[2], "layout unknown")
        lines = [f"import {self.dataset}: {self.source} ({self.layout}: {kind}) -> {self.out}",
                 f"  imported {self.imported} sequences ({self.n_frames} frames, "
                 f"{self.n_subjects} subjects) in {self.elapsed_s:.1f} s "
                 f"({self.sequences_per_s:.1f} sequences/s)",
                 f"  skipped {self.n_skipped}" + (":" if self.n_skipped else "")]
        lines += self._details(self.skipped, SKIP_REASONS)
        if self.notes:
            lines.append("  imported with a warning:")
            lines += self._details(self.notes, NOTES)
        if self.cleaned:
            lines.append(f"  removed {len(self.cleaned)} temporary directories of interrupted "
                         f"imports: {', '.join(self.cleaned[:MAX_EXAMPLES])}")
        return "\n".join(lines)

    def _details(self, counter: Counter, descriptions: dict[str, str]) -> list[str]:
        lines = []
        for reason, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {count:6d}  {reason}: {descriptions.get(reason, reason)}")
            lines += [f"            e.g. {ex}" for ex in self.examples.get(reason, [])]
        return lines


def import_dataset(dataset: str, src: str | os.PathLike, out: str | os.PathLike,
                   workers: int | None = None, force: bool = False,
                   progress: bool = True, frame_size: int = FRAME_SIZE) -> ImportSummary:
    """Import ``dataset`` ("casia-b" or "oumvlp") from the tree at ``src`` into a store at ``out``.

    The layout is detected (see the module docstring). Bad sequences are skipped with a
    reason, never fatal. Raises ValueError for an unknown dataset, an unrecognised tree, a
    tree with nothing importable or an ``out`` that is, holds or lies in ``src``, and
    FileExistsError for an ``out`` that :func:`~gaitlib.data.store.check_out` refuses; in
    every failure ``out`` is left as it was. ``frame_size`` is 64 (the 64x44 input of every
    paper's main table) or 128 (the 128x88 input of 3D Local's and CSTL's Table 1).
    """
    if frame_size not in (64, 128):
        raise ValueError(f"frame_size must be 64 or 128, got {frame_size}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise (ValueError if src.exists() else FileNotFoundError)(f"{src} is not a directory")
    check_out(out, force, source=src)  # before the scan; StoreWriter checks again
    started = time.perf_counter()
    summary = ImportSummary(dataset, str(src), str(out))
    layout = _detect(dataset, src)
    tasks = _walk(layout, src, summary.skip)
    if not tasks:
        raise ValueError(f"no sequence folders under {src} (expected {EXPECTED[dataset]})\n"
                         + summary.report())
    kind = _file_kind(tasks, src)
    tasks = [t._replace(kind=kind, size=frame_size) for t in tasks]
    summary.layout = f"{layout.name}/*.{kind}"
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    meta = {"source": str(src.resolve()), "layout": summary.layout,
            "pretreated_on_import": kind == "png"}
    subjects: set[str] = set()
    with StoreWriter(out, dataset, frame_size=frame_size, force=force, extra_meta=meta) as writer:
        summary.cleaned = [str(p) for p in writer.cleaned]
        bar = tqdm(total=len(tasks), unit="seq", desc=f"import {dataset}", disable=not progress)
        with bar:
            for res in _results(tasks, workers):
                bar.update()
                if res.frames is None:
                    summary.skip(res.reason, res.detail)
                    if res.reason in ("too_few_frames", "no_foreground"):
                        log.warning("dropped (%s): %s", SKIP_REASONS[res.reason], res.detail)
                    continue
                if res.reason:
                    summary.note(res.reason, res.detail)
                    log.warning("%s: %s", NOTES[res.reason], res.detail)
                t = res.task
                writer.add(t.subject, t.condition, t.view, res.frames)
                summary.imported += 1
                summary.n_frames += len(res.frames)
                subjects.add(t.subject)
        summary.n_subjects = len(subjects)
        summary.elapsed_s = time.perf_counter() - started
        if not summary.imported:
            raise ValueError(f"nothing importable from {src}; no store written\n{summary.report()}")
        writer.extra_meta.update(skipped=dict(summary.skipped), notes=dict(summary.notes))
    summary.elapsed_s = time.perf_counter() - started
    return summary
