"""Training and test sampling: P x K batches, per-sequence frame sampling, DataLoaders.

Every random choice is a pure function of (seed, iteration, slot), never of a shared stream, so a
run resumed at iteration i draws exactly the batches an uninterrupted run would, whatever the
number of DataLoader workers or distributed ranks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gaitlib.data.pretreatment import crop_width
from gaitlib.data.store import Store

FrameMode = Literal["ordered", "ordered_window", "unordered", "all"]
FRAME_MODES = ("ordered", "ordered_window", "unordered", "all")
PADDINGS = ("repeat", "cyclic")


@dataclass(frozen=True)
class FrameSampling:
    """How frames are drawn from a training sequence.

    - ``ordered``: ``frames`` consecutive frames from a random start (GaitGL, GaitMM, CSTL);
    - ``ordered_window``: a random window of ``window`` (inclusive range) consecutive frames,
      ``frames`` of them kept in time order (GaitPart, 3D Local: 30 out of 30-40);
    - ``unordered``: ``frames`` random frames, order ignored (GaitSet);
    - ``all``: the whole sequence (testing).

    A sequence shorter than the window is padded (``padding``):

    - ``"repeat"``: every frame is kept once, randomly chosen frames are repeated up to the window
      size, and the indices are sorted so time order is kept (each frame then appears 1 to
      ceil(window / length) times; CSTL's code pads its 16-29-frame sequences so);
    - ``"cyclic"``: the sequence is repeated end to end until it covers the window and the window
      starts at a random frame of that loop (OpenGait's ``fixed_ordered`` sampling), so the clip
      runs on past the last frame back to the first.

    ``replace`` (``unordered`` only): draw every frame with replacement, also from sequences
    longer than ``frames`` (the GaitSet authors' code); otherwise with replacement only when
    the sequence is too short (OpenGait).
    """

    mode: FrameMode = "ordered"
    frames: int = 30
    window: tuple[int, int] = (30, 40)
    padding: str = "repeat"
    replace: bool = False

    def __post_init__(self) -> None:
        if self.mode not in FRAME_MODES:
            raise ValueError(f"unknown frame sampling mode {self.mode!r}; valid: {', '.join(FRAME_MODES)}")
        if self.frames < 1 or not (self.frames <= self.window[0] <= self.window[1]):
            raise ValueError(f"need 1 <= frames <= window[0] <= window[1], got frames={self.frames}, "
                             f"window={self.window}")
        if self.padding not in PADDINGS:
            raise ValueError(f"unknown padding {self.padding!r}; valid: {', '.join(PADDINGS)}")

    def indices(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """Frame indices to take from a sequence of ``length`` frames."""
        if length < 1:
            raise ValueError("cannot sample frames from an empty sequence")
        if self.mode == "all":
            return np.arange(length)
        if self.mode == "unordered":
            return rng.choice(length, self.frames, replace=self.replace or length < self.frames)
        span = self.frames if self.mode == "ordered" else int(rng.integers(self.window[0],
                                                                             self.window[1] + 1))
        if length >= span:
            start = int(rng.integers(0, length - span + 1))
            window = np.arange(start, start + span)
        elif self.padding == "cyclic":  # the sequence looped end to end, a window anywhere in it
            loop = length * math.ceil(span / length)
            start = int(rng.integers(0, loop - span + 1))
            window = (start + np.arange(span)) % length
        else:  # every frame once, then repeats spread over the sequence, kept in time order
            extra = np.concatenate([rng.permutation(length) for _ in range(math.ceil(span / length) - 1)])
            window = np.sort(np.concatenate([np.arange(length), extra[: span - length]]))
        if span == self.frames:
            return window
        return window[np.sort(rng.choice(span, self.frames, replace=False))]


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


class PKBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless P x K batches: P subjects, K sequences each.

    Yields lists of ``(item, key)`` pairs: ``item`` indexes the dataset's items, ``key`` seeds that
    item's frame sampling. Sequences are drawn without replacement when a subject has at least K,
    with replacement otherwise (always with ``replace``, as CSTL's code does). Batch ``i`` depends only on (seed, i): ``start_iteration`` resumes.
    With ``world_size`` > 1 each rank gets its own P / world_size subjects of the same global batch.
    """

    def __init__(self, item_subjects: Sequence, p: int, k: int, seed: int = 0,
                 start_iteration: int = 0, rank: int = 0, world_size: int = 1,
                 replace: bool = False):
        labels = np.asarray(item_subjects)
        self.subjects = np.unique(labels)
        if p > len(self.subjects):
            raise ValueError(f"P={p} subjects per batch but the training set has {len(self.subjects)}")
        if p % world_size:
            raise ValueError(f"P={p} must be divisible by the number of ranks ({world_size})")
        self.items_of = [np.flatnonzero(labels == s) for s in self.subjects]
        self.p, self.k, self.seed = p, k, seed
        self.iteration = start_iteration
        self.rank, self.world_size = rank, world_size
        self.replace = replace

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        """The batch this rank gets at ``iteration``."""
        rng = _rng(self.seed, iteration)
        chosen = rng.choice(len(self.subjects), self.p, replace=False)
        per_rank = self.p // self.world_size
        out = []
        for slot_subject, s in enumerate(chosen):
            items = self.items_of[s]
            picks = rng.choice(items, self.k, replace=self.replace or len(items) < self.k)
            if slot_subject // per_rank == self.rank:
                out += [(int(i), iteration * self.p * self.k + slot_subject * self.k + j)
                        for j, i in enumerate(picks)]
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        while True:
            yield self.batch(self.iteration)
            self.iteration += 1


class SequenceDataset(Dataset):
    """Sequences of a store, cut to the model's width, as uint8 tensors (T, H, W).

    Frames stay uint8 until the model's device (``to_model_input``) to keep worker-to-main
    traffic 4x smaller. ``flip`` mirrors a sequence horizontally with probability 1/2 (3D Local).
    """

    def __init__(self, store: Store, items: Sequence[int], sampling: FrameSampling,
                 seed: int = 0, flip: bool = False, label_of: dict[str, int] | None = None):
        self.store = store
        self.items = np.asarray(items, dtype=np.int64)
        self.sampling = sampling
        self.seed = seed
        self.flip = flip
        subjects = store.subjects[self.items]
        self.label_of = label_of or {s: i for i, s in enumerate(sorted(set(subjects)))}
        self.labels = np.array([self.label_of.get(s, -1) for s in subjects])

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, position) -> tuple[int, np.ndarray, bool]:
        """The random choices for ``position``: (store index, frame indices, flipped)."""
        item, key = position if isinstance(position, tuple) else (position, position)
        index = int(self.items[item])
        rng = _rng(self.seed, 1, key)
        frame_indices = self.sampling.indices(int(self.store.lengths[index]), rng)
        flipped = bool(self.flip and rng.random() < 0.5)
        return index, frame_indices, flipped

    def __getitem__(self, position) -> tuple[torch.Tensor, int, int]:
        """``position`` is an int (test) or an (item, key) pair from PKBatchSampler (training)."""
        item = position[0] if isinstance(position, tuple) else position
        index, frame_indices, flipped = self.draw(position)
        frames = crop_width(self.store.frames_of(index)[frame_indices])
        if flipped:
            frames = frames[..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(frames)), int(self.labels[item]), index


def collate_fixed(batch: list) -> dict[str, torch.Tensor]:
    """Training batches: every clip has the same number of frames."""
    frames, labels, index = zip(*batch, strict=True)
    return {"frames": torch.stack(frames), "labels": torch.tensor(labels),
            "index": torch.tensor(index)}


def collate_packed(batch: list) -> dict[str, torch.Tensor]:
    """Test batches of whole sequences, packed along time as (1, sum T, H, W) plus their lengths."""
    frames, labels, index = zip(*batch, strict=True)
    return {"frames": torch.cat(frames).unsqueeze(0), "lengths": torch.tensor([len(f) for f in frames]),
            "labels": torch.tensor(labels), "index": torch.tensor(index)}


def to_model_input(frames: torch.Tensor, device: torch.device | str = "cpu",
                   height: int = 0) -> torch.Tensor:
    """uint8 frames ``(..., H, W)`` -> float in [0, 1] on ``device``.

    ``height`` > 0 and smaller than ``H``: shrink by the integer factor ``H / height`` with an
    area (box) average, so 64x44 becomes 32x22 (the ``cpu`` profile) and 128x88 becomes 64x44.
    """
    x = frames.to(device, non_blocking=True).float().div_(255.0)
    h, w = x.shape[-2:]
    if height <= 0 or height == h:
        return x
    if height > h or h % height or w % (h // height):
        raise ValueError(f"cannot shrink {h}x{w} frames to height {height}: need an integer "
                         f"factor that divides both sides")
    f = h // height
    lead = x.shape[:-2]
    x = torch.nn.functional.avg_pool2d(x.reshape(-1, 1, h, w), f)
    return x.reshape(*lead, h // f, w // f)


def training_items(store: Store, subjects: Sequence[str], min_frames: int = 1) -> np.ndarray:
    """Store indices of the training sequences of ``subjects`` with at least ``min_frames``."""
    items = store.select(subjects=subjects)
    if len(items) == 0:
        raise ValueError(f"{store.path}: none of the {len(subjects)} training subjects is in the store")
    if min_frames > 1:
        items = items[store.lengths[items] >= min_frames]
        if len(items) == 0:
            raise ValueError(f"{store.path}: no training sequence has >= {min_frames} frames")
    return items


def train_loader(store: Store, subjects: Sequence[str], p: int, k: int,
                 sampling: FrameSampling = FrameSampling(), seed: int = 0, workers: int = 2,
                 start_iteration: int = 0, flip: bool = False, rank: int = 0,
                 world_size: int = 1, k_replace: bool = False, min_frames: int = 1) -> DataLoader:
    """An endless loader of P x K training batches of the given subjects.

    ``min_frames``: training sequences with fewer frames are left out (CSTL's code drops those of
    <= 2 frames). ``k_replace``: draw each subject's K sequences with replacement."""
    items = training_items(store, subjects, min_frames)
    dataset = SequenceDataset(store, items, sampling, seed=seed, flip=flip)
    sampler = PKBatchSampler(store.subjects[items], p, k, seed=seed, start_iteration=start_iteration,
                             rank=rank, world_size=world_size, replace=k_replace)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fixed, num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())


class DeviceBatches:
    """Endless P x K training batches drawn from a copy of the store kept on ``device``.

    The training sequences are copied once, cut to the model width, into one uint8 tensor on the
    device (CASIA-B's 74 training subjects: ~1.8 GB). Every batch is the DataLoader path's batch
    (same :class:`PKBatchSampler`, same per-sequence draws of :meth:`SequenceDataset.draw`): only
    the frame indices travel to the device, and one gather builds the batch there. Yields the
    dicts :func:`collate_fixed` makes, on ``device``.
    """

    CHUNK_BYTES = 1 << 26  # host-to-device copies of ~64 MB while loading

    def __init__(self, store: Store, subjects: Sequence[str], p: int, k: int,
                 sampling: FrameSampling = FrameSampling(), seed: int = 0,
                 start_iteration: int = 0, flip: bool = False, rank: int = 0, world_size: int = 1,
                 device: torch.device | str = "cuda", k_replace: bool = False, min_frames: int = 1):
        items = training_items(store, subjects, min_frames)
        self.device = torch.device(device)
        self.dataset = SequenceDataset(store, items, sampling, seed=seed, flip=flip)
        self.sampler = PKBatchSampler(store.subjects[items], p, k, seed=seed,
                                      start_iteration=start_iteration, rank=rank,
                                      world_size=world_size, replace=k_replace)
        lengths = store.lengths[items].astype(np.int64)
        self.offset = dict(zip(items.tolist(), (np.cumsum(lengths) - lengths).tolist(), strict=True))
        frames = torch.empty((int(lengths.sum()), *crop_width(store.frames[:1]).shape[1:]),
                             dtype=torch.uint8, device=self.device)
        at, pending, size = 0, [], 0
        for j, index in enumerate(items):  # ~64 MB at a time: no host copy of the whole store
            pending.append(crop_width(store.frames_of(int(index))))
            size += pending[-1].nbytes
            if size >= self.CHUNK_BYTES or j == len(items) - 1:
                chunk = torch.from_numpy(np.concatenate(pending))
                frames[at : at + len(chunk)].copy_(chunk)
                at, pending, size = at + len(chunk), [], 0
        self.frames = frames

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for positions in self.sampler:
            yield self.batch(positions)

    def batch(self, positions: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
        """The batch of the sampler's ``positions`` (what the DataLoader would collate)."""
        rows, flips, labels, index = [], [], [], []
        for position in positions:
            i, frame_indices, flipped = self.dataset.draw(position)
            rows.append(self.offset[i] + frame_indices)
            flips.append(flipped)
            labels.append(int(self.dataset.labels[position[0]]))
            index.append(i)
        rows_t = torch.from_numpy(np.stack(rows)).to(self.device, non_blocking=True)
        frames = self.frames[rows_t]  # (n, T, H, W)
        if any(flips):
            flip_t = torch.tensor(flips, device=self.device)
            frames = torch.where(flip_t[:, None, None, None], frames.flip(-1), frames)
        return {"frames": frames, "labels": torch.tensor(labels).to(self.device),
                "index": torch.tensor(index)}


def eval_loader(store: Store, items: Sequence[int], workers: int = 2,
                sequences_per_batch: int = 1) -> DataLoader:
    """Whole test sequences in store order, packed ``sequences_per_batch`` at a time."""
    dataset = SequenceDataset(store, items, FrameSampling("all"))
    return DataLoader(dataset, batch_size=sequences_per_batch, shuffle=False, num_workers=workers,
                      collate_fn=collate_packed, pin_memory=torch.cuda.is_available())
