"""Shared fixtures: tiny stores built in a temp dir, and the location of the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from gaitlib.data.store import Store, StoreWriter

# The tests run many tiny ops; one intra-op thread avoids oversubscription on 2-core CI machines.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """../shared/data/casia-b-bin64 beside the repo, or $GAITLIB_SHARED_DATA."""
    env = os.environ.get("GAITLIB_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "casia-b-bin64"


@pytest.fixture
def real_casia_dir() -> Path:
    path = shared_data_dir()
    if not (path / "unpack.py").is_file():
        pytest.skip(f"real CASIA-B copy not found at {path} (set GAITLIB_SHARED_DATA)")
    return path


def blob_silhouettes(n: int, frames: int, h: int = 64, w: int = 44, seed: int = 0,
                     coarse: tuple[int, int] = (8, 6)) -> torch.Tensor:
    """Blob-like binary silhouettes (n, frames, h, w): upsampled coarse noise, thresholded.
    Random pixel noise would be an unrealistically hard input for the models' tests."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n * frames, 1, *coarse, generator=gen)
    x = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear")
    return (x > 0.5).float().reshape(n, frames, h, w)


def make_store(path: Path, subjects=("001", "002", "003"), conditions=("nm-01", "nm-02"),
               views=("000", "090"), lengths=(12, 40), dataset="synthetic", seed=0) -> Store:
    """A store of random-content sequences with varying lengths; frame [0,0,0] encodes its item."""
    rng = np.random.default_rng(seed)
    with StoreWriter(path, dataset) as writer:
        n = 0
        for s in subjects:
            for c in conditions:
                for v in views:
                    t = int(rng.integers(lengths[0], lengths[1] + 1))
                    frames = rng.integers(0, 256, size=(t, 64, 64), dtype=np.uint8)
                    frames[:, 0, 10] = n % 256  # column 10 survives the 64->44 crop
                    frames[:, 1, 10] = np.arange(t) % 256
                    writer.add(s, c, v, frames)
                    n += 1
    return Store(path)


@pytest.fixture
def tiny_store(tmp_path: Path) -> Store:
    return make_store(tmp_path / "tiny")
