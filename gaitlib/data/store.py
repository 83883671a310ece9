"""The project's on-disk store of pretreated sequences.

One store per dataset, a directory holding

- ``frames.u8``: every frame of every sequence, uint8, back to back (memory-mapped on read);
- ``index.csv``: one row per sequence: subject, condition, view, start (frame offset), length;
- ``meta.json``: format version, dataset name, frame shape, counts, provenance.

No pickles anywhere. A store is written into a sibling temporary directory and renamed
into place only when complete, so an interrupted import never leaves a directory that
looks like a finished store; ``meta.json`` is the last file written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

FORMAT = "gaitlib-store"
FORMAT_VERSION = 1
INDEX_COLUMNS = ["subject", "condition", "view", "start", "length"]


class StoreError(RuntimeError):
    """A store is missing, incomplete or inconsistent."""


class StoreWriter:
    """Builds a store atomically: ``with StoreWriter(out, "casia-b") as w: w.add(...)``.

    On an exception inside the block the temporary directory is removed and ``out`` is
    untouched. An existing store at ``out`` is replaced only with ``force=True``.
    """

    def __init__(self, out: str | os.PathLike, dataset: str, frame_size: int = 64,
                 force: bool = False, extra_meta: dict | None = None):
        self.out = Path(out)
        self.dataset = dataset
        self.frame_shape = (frame_size, frame_size)
        self.force = force
        self.extra_meta = dict(extra_meta or {})
        self._rows: list[tuple[str, str, str, int, int]] = []
        self._n_frames = 0
        self._tmp: Path | None = None
        self._file = None

    def __enter__(self) -> StoreWriter:
        if self.out.exists() and not self.force:
            raise FileExistsError(f"{self.out} already exists; pass force=True (--force) to replace it")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        self._file = open(self._tmp / "frames.u8", "wb")
        return self

    def add(self, subject: str, condition: str, view: str, frames: np.ndarray) -> None:
        """Append one sequence of (T, H, W) uint8 frames, T >= 1."""
        frames = np.ascontiguousarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 3 or frames.shape[1:] != self.frame_shape:
            raise ValueError(f"{subject}/{condition}/{view}: expected uint8 (T, {self.frame_shape[0]}, "
                             f"{self.frame_shape[1]}), got {frames.dtype} {frames.shape}")
        if len(frames) == 0:
            raise ValueError(f"{subject}/{condition}/{view}: a sequence needs at least one frame")
        self._file.write(frames.tobytes())
        self._rows.append((str(subject), str(condition), str(view), self._n_frames, len(frames)))
        self._n_frames += len(frames)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._file.close()
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        index = pd.DataFrame(self._rows, columns=INDEX_COLUMNS)
        index.to_csv(self._tmp / "index.csv", index=False)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "frame_shape": list(self.frame_shape),
            "n_sequences": len(index),
            "n_frames": self._n_frames,
            "n_subjects": int(index["subject"].nunique()),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **self.extra_meta,
        }
        (self._tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        _replace_dir(self._tmp, self.out)


def _replace_dir(new: Path, out: Path) -> None:
    """Move ``new`` to ``out``; an old ``out`` is moved aside first and deleted after."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(new, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class Sequence:
    subject: str
    condition: str
    view: str
    frames: np.ndarray  # (T, H, W) uint8, a read-only memory-mapped view


class Store:
    """A finished store, opened read-only. ``store[i]`` is a :class:`Sequence`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            hint = " (an interrupted import leaves no store)" if self.path.is_dir() else ""
            raise StoreError(f"{self.path} is not a gaitlib store: no meta.json{hint}. "
                             "Create one with `gaitlib data synth` or `gaitlib data import`.")
        self.meta = json.loads(meta_file.read_text())
        if self.meta.get("format") != FORMAT or self.meta.get("format_version") != FORMAT_VERSION:
            raise StoreError(f"{meta_file}: unsupported store format {self.meta.get('format')!r} "
                             f"version {self.meta.get('format_version')!r}")
        self.index = pd.read_csv(self.path / "index.csv", dtype={"subject": str, "condition": str,
                                                                  "view": str})
        h, w = self.meta["frame_shape"]
        n = int(self.meta["n_frames"])
        expected = n * h * w
        size = (self.path / "frames.u8").stat().st_size
        if size != expected or len(self.index) != self.meta["n_sequences"]:
            raise StoreError(f"{self.path}: frames.u8 has {size} bytes and index {len(self.index)} rows; "
                             f"meta.json says {expected} bytes and {self.meta['n_sequences']} sequences")
        self.frames = np.memmap(self.path / "frames.u8", dtype=np.uint8, mode="r", shape=(n, h, w))
        self._start = self.index["start"].to_numpy()
        self._length = self.index["length"].to_numpy()

    @property
    def dataset(self) -> str:
        return self.meta["dataset"]

    @property
    def subjects(self) -> np.ndarray:
        return self.index["subject"].to_numpy()

    @property
    def conditions(self) -> np.ndarray:
        return self.index["condition"].to_numpy()

    @property
    def views(self) -> np.ndarray:
        return self.index["view"].to_numpy()

    @property
    def lengths(self) -> np.ndarray:
        return self._length

    def __len__(self) -> int:
        return len(self.index)

    def frames_of(self, i: int) -> np.ndarray:
        start = self._start[i]
        return self.frames[start : start + self._length[i]]

    def __getitem__(self, i: int) -> Sequence:
        row = self.index.iloc[i]
        return Sequence(row["subject"], row["condition"], row["view"], self.frames_of(i))

    def select(self, subjects=None, conditions=None, views=None) -> np.ndarray:
        """Indices of the sequences whose labels are in the given collections (None: any)."""
        keep = np.ones(len(self), dtype=bool)
        for column, wanted in (("subject", subjects), ("condition", conditions), ("view", views)):
            if wanted is not None:
                keep &= self.index[column].isin([str(x) for x in wanted]).to_numpy()
        return np.flatnonzero(keep)

    def __repr__(self) -> str:
        return (f"Store({str(self.path)!r}, dataset={self.dataset!r}, sequences={len(self)}, "
                f"subjects={self.meta['n_subjects']}, frames={self.meta['n_frames']})")
