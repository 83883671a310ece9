"""Loader throughput: gaitlib's memory-mapped store vs a naive one-pkl-per-sequence loader.

Both loaders serve the same P x K training batches (30 ordered frames per sequence, 64x44) through a
torch DataLoader with the same worker count; the naive one opens and unpickles one OpenGait pkl per
sequence per sample (through the restricted unpickler), as a loader without a store must.
Prints sequences/s and frames/s for each and the ratio. Needs the shared CASIA-B copy (../shared).

    .venv/bin/python bench/loader.py [--subjects 001-020] [--batches 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gaitlib.data.pretreatment import crop_width  # noqa: E402
from gaitlib.data.safe_pickle import load_numpy_pickle  # noqa: E402
from gaitlib.data.sampling import FrameSampling, PKBatchSampler, _rng, collate_fixed, train_loader  # noqa: E402
from gaitlib.data.store import Store, StoreWriter  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "casia-b-bin64"


class PklPerSequence(Dataset):
    """The naive baseline: every sample opens its sequence's pkl file."""

    def __init__(self, paths: list[Path], subjects: list[str], sampling: FrameSampling, seed: int):
        self.paths, self.sampling, self.seed = paths, sampling, seed
        label_of = {s: i for i, s in enumerate(sorted(set(subjects)))}
        self.labels = [label_of[s] for s in subjects]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position):
        item, key = position
        frames = load_numpy_pickle(self.paths[item])
        frames = crop_width(frames[self.sampling.indices(len(frames), _rng(self.seed, 1, key))])
        return torch.from_numpy(np.ascontiguousarray(frames)), self.labels[item], item


def throughput(loader, batches: int) -> tuple[float, float]:
    it = iter(loader)
    next(it)  # start the workers before timing
    start, n_seq, n_frames = time.perf_counter(), 0, 0
    for _ in range(batches):
        frames = next(it)["frames"]
        n_seq += frames.shape[0]
        n_frames += frames.shape[0] * frames.shape[1]
    seconds = time.perf_counter() - start
    return n_seq / seconds, n_frames / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", default="001-020", help="CASIA-B subjects to use (default 001-020)")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per loader (default 40)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    parser.add_argument("--p", type=int, default=8)
    parser.add_argument("--k", type=int, default=8)
    args = parser.parse_args()
    if not (SHARED / "unpack.py").is_file():
        sys.exit(f"needs the shared CASIA-B copy at {SHARED}")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "pkl"
        subprocess.run([sys.executable, str(SHARED / "unpack.py"), str(tree), "--subjects", args.subjects],
                       check=True, capture_output=True)
        paths = sorted(tree.glob("*/*/*/*.pkl"))
        subjects = [p.parts[-4] for p in paths]
        with StoreWriter(Path(tmp) / "store", "casia-b") as writer:
            for p in paths:
                writer.add(p.parts[-4], p.parts[-3], p.parts[-2], load_numpy_pickle(p))
        store = Store(Path(tmp) / "store")
        sampling = FrameSampling("ordered")
        stored = train_loader(store, sorted(set(subjects)), args.p, args.k, sampling, workers=args.workers)
        naive = DataLoader(PklPerSequence(paths, subjects, sampling, seed=0),
                           batch_sampler=PKBatchSampler(subjects, args.p, args.k), collate_fn=collate_fixed,
                           num_workers=args.workers, persistent_workers=args.workers > 0)
        store_rate = throughput(stored, args.batches)
        naive_rate = throughput(naive, args.batches)
    print(f"{len(paths)} sequences, batches of {args.p}x{args.k} x 30 frames, {args.workers} workers")
    print(f"store (memory-mapped):  {store_rate[0]:8.0f} sequences/s  {store_rate[1]:9.0f} frames/s")
    print(f"naive (pkl per sample): {naive_rate[0]:8.0f} sequences/s  {naive_rate[1]:9.0f} frames/s")
    print(f"ratio store / naive: {store_rate[0] / naive_rate[0]:.1f}x")


if __name__ == "__main__":
    main()
