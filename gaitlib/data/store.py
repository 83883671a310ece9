"""The project's on-disk store of pretreated sequences.

One store per dataset, a directory holding

- ``frames.u8``: every frame of every sequence, uint8, back to back (memory-mapped on read);
- ``index.csv``: one row per sequence: subject, condition, view, start (frame offset), length;
- ``meta.json``: format version, dataset name, frame shape, counts, provenance, and the
  SHA-256 of ``index.csv`` and ``frames.u8`` (``checksums``).

Opening a store checks that the index describes the frames: every row's labels present and
unique, starts contiguous from 0, lengths positive, the last sequence ending at the last
frame, the frame shape square and consistent with the byte count, and ``index.csv`` equal to
its recorded checksum (cheap: the index is small). The frames' checksum is verified on demand
(:meth:`Store.verify`, ``gaitlib data check``): it reads every byte.

No pickles anywhere. A store is written into a sibling temporary directory and renamed
into place only when complete, so an interrupted import never leaves a directory that
looks like a finished store; ``meta.json`` is the last file written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from gaitlib.data.splits import DATASETS
from gaitlib.errors import GaitlibError, naming

FORMAT = "gaitlib-store"
FORMAT_VERSION = 1
INDEX_COLUMNS = ["subject", "condition", "view", "start", "length"]
CHECKSUMMED = ("index.csv", "frames.u8")  # the only files meta.json's checksums may name
MAX_FRAME_SIDE = 1024  # stores hold 64x64 or 128x128 frames


log = logging.getLogger(__name__)
_CHUNK = 1 << 24  # bytes hashed at a time


class StoreError(GaitlibError, RuntimeError):
    """A store is missing, incomplete or inconsistent."""


def read_meta(meta_file: str | os.PathLike) -> dict:
    """``meta.json`` as a dict; a file that is not a JSON object is a StoreError naming it."""
    meta_file = Path(meta_file)
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreError(f"{meta_file}: unreadable store metadata ({type(err).__name__}: {err})") \
            from err
    if not isinstance(meta, dict):
        raise StoreError(f"{meta_file}: store metadata must be a JSON object, got "
                         f"{type(meta).__name__}")
    return meta


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in chunks (store checksums, imported checkpoints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# What StoreWriter leaves beside an interrupted store: ``.NAME.tmp-PID-XXXXXXXX`` (mkdtemp's 8
# characters; no PID before gaitlib wrote one) and ``.NAME.old-PID`` (a replaced store).
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?:tmp-(?:(?P<pid>\d+)-)?[a-z0-9_]{8}|old-(?P<old>\d+))$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale(out: str | os.PathLike) -> list[Path]:
    """Remove the temporary directories that interrupted writes of the store ``out`` left
    beside it (``.NAME.tmp-PID-*``, ``.NAME.old-PID``), unless their process still runs.
    Returns the removed paths."""
    out = Path(out)
    removed = []
    if not out.parent.is_dir():
        return removed
    for entry in out.parent.iterdir():
        m = _TMP_NAME.match(entry.name)
        if not (m and m["name"] == out.name and entry.is_dir()):
            continue
        pid = m["pid"] or m["old"]
        if pid is not None and _alive(int(pid)):  # a write in progress
            continue
        shutil.rmtree(entry, ignore_errors=True)
        log.warning("removed %s, left by an interrupted write of %s", entry, out)
        removed.append(entry)
    return removed


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a gaitlib store: a readable ``meta.json`` (what
    :class:`StoreWriter` writes last) whose ``format`` says so."""
    meta_file = Path(path) / "meta.json"
    try:  # a FIFO named meta.json is not read: it would block
        return meta_file.is_file() and read_meta(meta_file).get("format") == FORMAT
    except StoreError:  # unreadable, not a JSON object
        return False


def check_out(out: str | os.PathLike, force: bool = False,
              source: str | os.PathLike | None = None) -> None:
    """Refuse to write a store at ``out`` where doing so would destroy anything but a store.

    ``out`` may be new, an empty directory or, with ``force``, a store (replaced); a regular file
    or a directory holding anything else is refused even with ``force``, and so is an ``out``
    that is, contains or lies inside the ``source`` tree of an import."""
    out = Path(out)
    if source is not None:
        src, dst = Path(source).resolve(), out.resolve()
        where = "is" if dst == src else "lies inside" if src in dst.parents else \
            "contains" if dst in src.parents else None
        if where:
            raise ValueError(f"--out {out} {where} the source tree {source}: a store there would "
                             "mix with or (--force) replace the data it is made from; choose an "
                             "--out outside it")
    if not (out.exists() or out.is_symlink()):
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a store directory; choose another --out "
                              "(--force replaces only a gaitlib store)")
    if not force:
        raise FileExistsError(f"{out} already exists; pass force=True (--force) to replace it")
    if any(out.iterdir()) and not is_store(out):
        raise FileExistsError(f"{out} is not a gaitlib store (no readable meta.json of one); "
                              "--force replaces only a store: choose another --out")


class StoreWriter:
    """Builds a store atomically: ``with StoreWriter(out, "casia-b") as w: w.add(...)``.

    On an exception inside the block the temporary directory is removed and ``out`` is
    untouched. An existing store at ``out`` is replaced only with ``force=True``, and nothing
    but a store ever is (:func:`check_out`).
    """

    def __init__(self, out: str | os.PathLike, dataset: str, frame_size: int = 64,
                 force: bool = False, extra_meta: dict | None = None):
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
        self.out = Path(out)
        self.dataset = dataset
        self.frame_shape = (frame_size, frame_size)
        self.force = force
        self.extra_meta = dict(extra_meta or {})
        self._rows: list[tuple[str, str, str, int, int]] = []
        self._n_frames = 0
        self._tmp: Path | None = None
        self._file = None
        self._digest = hashlib.sha256()
        self.cleaned: list[Path] = []  # stale temporary directories removed on entry

    def __enter__(self) -> StoreWriter:
        check_out(self.out, self.force)
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.cleaned = clean_stale(self.out)
            # The pid in the name tells a later writer whether this directory is still in use.
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-{os.getpid()}-",
                                              dir=self.out.parent))
        except OSError as err:  # read-only, not a directory: name the store, not a temporary
            raise OSError(err.errno, err.strerror, str(self.out)) from err
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
        data = frames.tobytes()
        with naming(self._file.name):
            self._file.write(data)
        self._digest.update(data)
        self._rows.append((str(subject), str(condition), str(view), self._n_frames, len(frames)))
        self._n_frames += len(frames)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            with naming(self._file.name):
                self._file.close()
            if exc_type is None:
                self._finish()
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _finish(self) -> None:
        index = pd.DataFrame(self._rows, columns=INDEX_COLUMNS)
        with naming(self._tmp / "index.csv"):
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
            "checksums": {"index.csv": sha256_file(self._tmp / "index.csv"),
                          "frames.u8": self._digest.hexdigest()},
        }
        with naming(self._tmp / "meta.json"):
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
        self.meta = read_meta(meta_file)
        if self.meta.get("format") != FORMAT or self.meta.get("format_version") != FORMAT_VERSION:
            raise StoreError(f"{meta_file}: unsupported store format {self.meta.get('format')!r} "
                             f"version {self.meta.get('format_version')!r}")
        h, w, n = self._check_meta(meta_file)
        self.index = self._read_index(self.path / "index.csv")
        expected = n * h * w
        frames_file = self.path / "frames.u8"
        size = frames_file.stat().st_size if frames_file.is_file() else 0
        if size != expected or len(self.index) != self.meta["n_sequences"]:
            raise StoreError(f"{self.path}: frames.u8 has {size} bytes and index {len(self.index)} rows; "
                             f"meta.json says {expected} bytes and {self.meta['n_sequences']} sequences")
        n_subjects = int(self.index["subject"].nunique())
        if self.meta.get("n_subjects", n_subjects) != n_subjects:
            raise StoreError(f"{meta_file}: n_subjects {self.meta['n_subjects']}, but index.csv "
                             f"holds {n_subjects} subjects")
        self._start = self.index["start"].to_numpy()
        self._length = self.index["length"].to_numpy()
        self._check_extent(n)
        self.frames = np.memmap(frames_file, dtype=np.uint8, mode="r", shape=(n, h, w))

    def _check_meta(self, meta_file: Path) -> tuple[int, int, int]:
        """Frame height, width and count from meta.json, which must hold them as positive ints
        with square frames (the writer only writes square frames; a shape with the same byte
        count, such as 32x128 for 64x64, would read every frame as noise)."""
        missing = [k for k in ("dataset", "frame_shape", "n_frames", "n_sequences")
                   if k not in self.meta]
        if missing:
            raise StoreError(f"{meta_file}: missing {', '.join(missing)}")
        if self.meta["dataset"] not in DATASETS:
            raise StoreError(f"{meta_file}: dataset {self.meta['dataset']!r} is not one gaitlib "
                             f"knows ({', '.join(DATASETS)}): no split or protocol for it")
        shape, n = self.meta["frame_shape"], self.meta["n_frames"]
        ok = (isinstance(shape, list) and len(shape) == 2
              and all(_is_count(x) and 0 < x <= MAX_FRAME_SIDE for x in shape)
              and shape[0] == shape[1])
        if not ok:
            raise StoreError(f"{meta_file}: frame_shape {shape!r:.60} is not a square [size, size] "
                             f"of positive integers up to {MAX_FRAME_SIDE}")
        for key in ("n_frames", "n_sequences", "n_subjects"):
            if key in self.meta and not _is_count(self.meta[key]):
                raise StoreError(f"{meta_file}: {key} {self.meta[key]!r} is not a count")
        checksums = self.meta.get("checksums", {})
        if not isinstance(checksums, dict):
            raise StoreError(f"{meta_file}: checksums must map file names to SHA-256 digests, "
                             f"got {type(checksums).__name__} {checksums!r:.60}")
        for name, digest in checksums.items():
            if name not in CHECKSUMMED:  # never read a file the metadata points at elsewhere
                raise StoreError(f"{meta_file}: checksums names {name!r}; a store's checksums "
                                 f"cover {' and '.join(CHECKSUMMED)} only")
            if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
                raise StoreError(f"{meta_file}: the checksum of {name} is {digest!r:.80}, not a "
                                 "SHA-256 hex digest")
        return shape[0], shape[1], n

    def _read_index(self, index_file: Path) -> pd.DataFrame:
        """index.csv, checked row by row: a malformed row is a StoreError naming the file and
        the line, never a TypeError later. Also checked against its recorded checksum."""
        if not index_file.is_file():
            raise StoreError(f"{self.path}: no index.csv (an incomplete store)")
        recorded = self.meta.get("checksums", {}).get("index.csv")
        if recorded is not None and sha256_file(index_file) != recorded:
            raise StoreError(f"{index_file} does not match its checksum in meta.json: the index "
                             "was changed after the store was written (labels or offsets of "
                             "other sequences would be read); re-create the store")
        try:
            index = pd.read_csv(index_file, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise StoreError(f"{index_file}: not a readable CSV ({err})") from err
        missing = [c for c in INDEX_COLUMNS if c not in index.columns]
        if missing:
            raise StoreError(f"{index_file}: missing column(s) {', '.join(missing)}; expected "
                             f"{', '.join(INDEX_COLUMNS)}")
        index = index[INDEX_COLUMNS].copy()
        for column in ("subject", "condition", "view"):
            empty = np.flatnonzero(index[column].str.strip().to_numpy() == "")
            if len(empty):
                raise StoreError(f"{index_file}, line {empty[0] + 2}: empty {column}")
        for column in ("start", "length"):
            # 15 digits: far beyond any store (10^15 frames), far within int64
            ok = index[column].str.fullmatch(r"\d{1,15}").to_numpy()
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                raise StoreError(f"{index_file}, line {i + 2}: {column} "
                                 f"{index[column].iloc[i]!r:.40} is not a non-negative integer "
                                 "below 10^15")
            index[column] = index[column].astype(np.int64)
        dup = index.duplicated(["subject", "condition", "view"], keep=False).to_numpy()
        if dup.any():
            rows = np.flatnonzero(dup)
            first = index.iloc[rows[0]]
            lines = ", ".join(str(i + 2) for i in rows[:6])
            raise StoreError(f"{index_file}: {len(rows)} rows share their (subject, condition, "
                             f"view), e.g. {first['subject']}/{first['condition']}/"
                             f"{first['view']} (lines {lines})")
        return index

    def _check_extent(self, n_frames: int) -> None:
        """Sequences tile frames.u8 exactly: positive lengths, each starting where the previous
        one ended, the first at 0, the last ending at the last frame."""
        index_file = self.path / "index.csv"
        bad = np.flatnonzero(self._length < 1)
        if len(bad):
            raise StoreError(f"{index_file}, line {bad[0] + 2}: length {self._length[bad[0]]} "
                             "(a sequence has at least one frame)")
        bad = np.flatnonzero(self._length > n_frames)  # before any sum could overflow
        if len(bad):
            raise StoreError(f"{index_file}, line {bad[0] + 2}: length {self._length[bad[0]]}: "
                             f"the sequences cover more than the {n_frames} frames of the store")
        expected = np.concatenate([[0], np.cumsum(self._length)[:-1]]) if len(self._length) \
            else np.zeros(0, np.int64)
        bad = np.flatnonzero(self._start != expected)
        if len(bad):
            i = int(bad[0])
            raise StoreError(f"{index_file}, line {i + 2}: start {self._start[i]}, but the "
                             f"previous sequences end at frame {expected[i]} (starts must be "
                             "contiguous: shifted, overlapping or reordered rows)")
        end = int(self._length.sum())
        if end != n_frames:
            raise StoreError(f"{index_file}: the sequences cover {end} frames; meta.json and "
                             f"frames.u8 hold {n_frames}")

    def verify(self) -> dict[str, str]:
        """Check index.csv and frames.u8 against the checksums in meta.json (reads every byte).
        Returns {file: 'verified' or 'unverified'} for both files (unverified: meta.json records
        no checksum of it, as in stores of an older gaitlib); raises StoreError on a mismatch."""
        recorded = self.meta.get("checksums", {})
        checked = {}
        for name in CHECKSUMMED:
            if name not in recorded:
                checked[name] = "unverified"
            elif sha256_file(self.path / name) != recorded[name]:
                raise StoreError(f"{self.path / name} does not match its checksum in meta.json "
                                 "(changed or corrupted after the store was written)")
            else:
                checked[name] = "verified"
        return checked

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


def is_binarized(store_path: str | os.PathLike, sample: int = 200) -> bool:
    """True when the store's frames (a sample of ``sample`` sequences spread over it) hold only
    0 and 255: a binarized copy, whose numbers the book marks as such."""
    store = Store(store_path)
    picks = np.linspace(0, len(store) - 1, min(sample, len(store))).astype(int)
    return all(np.isin(np.unique(store.frames_of(int(i))), (0, 255)).all() for i in picks)
