"""The GEI baseline on a tiny hand-made store."""

from __future__ import annotations

import numpy as np
import pytest

from gaitlib.data.store import Store, StoreWriter
from gaitlib.evaluation import gei_baseline, gei_features

CONDITIONS = ("nm-01", "nm-02", "nm-05", "bg-01", "cl-01")
VIEWS = ("000", "090")


def _subject_frames(k: int) -> np.ndarray:
    """Three frames of a bar whose rows and position identify subject k (inside the crop)."""
    frames = np.zeros((3, 64, 64), np.uint8)
    for t in range(3):
        frames[t, 8 * k : 8 * k + 8, 12 + 4 * k + t : 20 + 4 * k + t] = 255
    return frames


@pytest.fixture
def store(tmp_path) -> Store:
    # Four subjects: the synthetic split tests on 003 and 004. Every sequence of a subject is
    # identical whatever its condition and view, so each nearest neighbour is the subject's.
    with StoreWriter(tmp_path / "tiny", "synthetic") as w:
        for k in range(4):
            for cond in CONDITIONS:
                for view in VIEWS:
                    w.add(f"{k + 1:03d}", cond, view, _subject_frames(k))
        # A sequence showing the crop and the scaling: 255 in the 10 columns cut off each
        # side, and a half-time pixel inside.
        edge = np.zeros((2, 64, 64), np.uint8)
        edge[:, :, :10] = 255
        edge[:, :, 54:] = 255
        edge[0, 30, 30] = 255
        w.add("001", "nm-06", "000", edge)
    return Store(tmp_path / "tiny")


def test_gei_features_crop_and_scale(store):
    feats = gei_features(store)
    assert feats.shape == (len(store), 64 * 44) and feats.dtype == np.float32
    assert feats.min() >= 0 and feats.max() <= 1
    edge = feats[-1].reshape(64, 44)
    assert edge[30, 20] == pytest.approx(0.5)  # column 30 of 64 is column 20 after the crop
    assert edge.sum() == pytest.approx(0.5)  # the cut-off columns left nothing
    bar = gei_features(store, [0])[0].reshape(64, 44)
    assert bar.sum() == pytest.approx(8 * 8)  # 8 rows x 8 columns of mean 1 per frame
    np.testing.assert_array_equal(gei_features(store, [0, 1]), feats[:2])


def test_gei_baseline_identical_sequences_score_100(store):
    res = gei_baseline(store, bootstrap=20)
    assert res.protocol == "casia-b"
    assert res.n_subjects == 2  # test subjects only
    assert res.n_probes == {"NM": 4, "BG": 4, "CL": 4}
    assert (res.table == 100).all().all()
    assert (res.ci == 100).all().all()
    assert list(res.table.columns) == [*VIEWS, "Mean"]
