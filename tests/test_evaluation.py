"""Evaluation protocols on hand-built feature sets whose answers follow from the geometry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gaitlib.evaluation import evaluate, nearest_per_group, pairwise_distance


def _labels(rows):
    """rows of (subject, condition, view, feature) -> features, subjects, conditions, views."""
    subjects, conditions, views, feats = zip(*rows, strict=True)
    return np.array(feats, dtype=np.float32), list(subjects), list(conditions), list(views)


def _casia(rows, **kw):
    feats, s, c, v = _labels(rows)
    return evaluate(feats, s, c, v, "casia-b", bootstrap=kw.pop("bootstrap", 0), **kw)


# Gallery (nm-01) and probes (nm-05) of subjects A, B at views 000 and 090, placed so that
# every same-view match is right and every cross-view match is wrong.
CROSS_WRONG = [
    ("A", "nm-01", "000", [0, 0]), ("B", "nm-01", "000", [10, 0]),
    ("A", "nm-01", "090", [10, 1]), ("B", "nm-01", "090", [0, 1]),
    ("A", "nm-05", "000", [0, 0]), ("B", "nm-05", "000", [10, 0]),
    ("A", "nm-05", "090", [10, 1]), ("B", "nm-05", "090", [0, 1]),
]


def test_identical_view_excluded_from_means():
    res = _casia(CROSS_WRONG)
    acc = res.view_accuracy["NM"]
    assert acc.loc["000", "000"] == 100 and acc.loc["090", "090"] == 100
    assert acc.loc["000", "090"] == 0 and acc.loc["090", "000"] == 0
    # With the diagonal included every probe view would read 50.
    assert list(res.table.loc["NM"]) == [0.0, 0.0, 0.0]
    assert list(res.table.columns) == ["000", "090", "Mean"]
    assert list(res.table.index) == ["NM", "BG", "CL"]
    assert res.table.loc[["BG", "CL"]].isna().all().all()  # no such probes: NaN, no crash


def test_nearest_neighbour_restricted_to_gallery_view():
    rows = [
        ("B", "nm-01", "000", [0.1]),  # the nearest gallery sequence overall, wrong subject
        ("A", "nm-01", "090", [1.0]), ("B", "nm-01", "090", [5.0]),
        ("A", "nm-05", "000", [0.0]),
    ]
    acc = _casia(rows).view_accuracy["NM"]
    assert acc.loc["000", "090"] == 100  # among view-090 gallery A is nearest
    assert acc.loc["000", "000"] == 0  # A has no view-000 gallery sequence: B wins
    assert np.isnan(acc.loc["090", "000"])  # no probes at 090


def test_distance_is_per_part_average_not_flattened():
    # Probe (0, 0) in two parts of one channel. Gallery A: parts (0, 5) -> part mean 2.5,
    # flattened 5. Gallery B: parts (3, 3) -> part mean 3, flattened sqrt(18) ~ 4.24.
    probe = np.zeros((1, 1, 2), np.float32)
    gallery = np.array([[[0, 5]], [[3, 3]]], np.float32)
    d = pairwise_distance(probe, gallery, device="cpu").numpy()
    np.testing.assert_allclose(d, [[2.5, 3.0]], rtol=1e-6)
    feats = np.concatenate([gallery, probe])
    res = evaluate(feats, ["A", "B", "A"], ["nm-01", "nm-01", "nm-05"], ["000"] * 3, "casia-b",
                   bootstrap=0)
    assert res.view_accuracy["NM"].loc["000", "000"] == 100
    flat = evaluate(feats.reshape(3, 2), ["A", "B", "A"], ["nm-01", "nm-01", "nm-05"],
                    ["000"] * 3, "casia-b", bootstrap=0)
    assert flat.view_accuracy["NM"].loc["000", "000"] == 0


def test_oumvlp_missing_gallery_counts_as_miss_or_is_discarded():
    # Identity is perfectly encoded (A=0, B=10), but B has no gallery sequence at 015.
    rows = [
        ("A", "01", "000", [0.0]), ("B", "01", "000", [10.0]), ("A", "01", "015", [0.0]),
        ("A", "00", "000", [0.0]), ("B", "00", "000", [10.0]),
        ("A", "00", "015", [0.0]), ("B", "00", "015", [10.0]),
    ]
    feats, s, c, v = _labels(rows)
    res = evaluate(feats, s, c, v, "oumvlp", bootstrap=0)
    assert list(res.table.index) == ["miss", "discard"]
    # probe view 000 vs gallery 015: A right, B can only match A -> 50% or, B dropped, 100%.
    assert res.view_accuracy["miss"].loc["000", "015"] == 50
    assert res.view_accuracy["discard"].loc["000", "015"] == 100
    assert res.table.loc["miss"].tolist() == [50.0, 100.0, 75.0]
    assert res.table.loc["discard"].tolist() == [100.0, 100.0, 100.0]


def test_cosine_metric():
    # Probe (1, 0): same-subject gallery (10, 0) is at cosine distance 0 but Euclidean 9;
    # the other subject's (0, 1) is at cosine distance 1 but Euclidean sqrt(2).
    rows = [("A", "nm-01", "000", [10, 0]), ("B", "nm-01", "000", [0, 1]),
            ("A", "nm-05", "000", [1, 0])]
    assert _casia(rows, metric="cos").view_accuracy["NM"].loc["000", "000"] == 100
    assert _casia(rows, metric="euc").view_accuracy["NM"].loc["000", "000"] == 0
    # Per-part cosine distances 0 and 1 (orthogonal) average to 0.5.
    x = np.array([[[1, 1], [0, 0]]], np.float32)  # parts (1, 0) and (1, 0)
    y = np.array([[[2, 0], [0, 3]]], np.float32)  # parts (2, 0) and (0, 3)
    np.testing.assert_allclose(pairwise_distance(x, y, "cos", "cpu").numpy(), [[0.5]], atol=1e-6)


def _bad(**overrides):
    feats, s, c, v = _labels(CROSS_WRONG)
    kwargs = dict(features=feats, subjects=s, conditions=c, views=v, protocol="casia-b",
                  bootstrap=0)
    kwargs.update(overrides)
    return lambda: evaluate(**kwargs)


@pytest.mark.parametrize("overrides, message", [
    (dict(subjects=["A"] * 3), "subjects has"),
    (dict(views=["000"] * 9), "views has"),
    (dict(protocol="casia"), "valid: casia-b, oumvlp"),
    (dict(metric="l1"), "unknown metric 'l1'"),
    (dict(features=np.zeros(8, np.float32)), "(n, c, p) or (n, d)"),
    (dict(features=np.zeros((8, 2, 2, 2), np.float32)), "(n, c, p) or (n, d)"),
    (dict(conditions=["nm-05"] * 8), "empty gallery"),
    (dict(conditions=["nm-01"] * 8), "empty probe set"),
])
def test_bad_inputs_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _bad(**overrides)()


def _random_casia(n_subj=6, seed=0, noise=1.0, views=("000", "018", "036")):
    """Subject signal plus noise: intermediate accuracies in every cell."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_subj, 8, 4))
    conds = ["nm-01", "nm-02", "nm-05", "nm-06", "bg-01", "cl-01"]
    rows = [(f"{s:03d}", c, v) for s in range(n_subj) for c in conds for v in views]
    feats = np.stack([centres[int(s)] + noise * rng.normal(size=(8, 4)) for s, _, _ in rows])
    s, c, v = (list(x) for x in zip(*rows, strict=True))
    return feats.astype(np.float32), s, c, v


def test_chunking_matches_single_chunk():
    feats, s, c, v = _random_casia()
    results = [evaluate(feats, s, c, v, "casia-b", bootstrap=50, chunk_size=k)
               for k in (None, 1, 7, 10_000)]
    for other in results[1:]:
        pd.testing.assert_frame_equal(results[0].table, other.table)
        pd.testing.assert_frame_equal(results[0].ci, other.ci)
        for name, acc in results[0].view_accuracy.items():
            pd.testing.assert_frame_equal(acc, other.view_accuracy[name])
    assert 0 < results[0].table.loc["NM", "Mean"] < 100  # the case is not trivial


def test_bootstrap_ci_contains_estimate_and_is_seeded():
    feats, s, c, v = _random_casia(n_subj=10, seed=1, noise=1.2)
    res = evaluate(feats, s, c, v, "casia-b", bootstrap=300, seed=3)
    assert res.n_subjects == 10
    for name in ("NM", "BG", "CL"):
        low, high = res.ci.loc[name]
        assert low < res.table.loc[name, "Mean"] < high
    again = evaluate(feats, s, c, v, "casia-b", bootstrap=300, seed=3)
    pd.testing.assert_frame_equal(res.ci, again.ci)
    assert evaluate(feats, s, c, v, "casia-b", bootstrap=0).ci.isna().all().all()
    assert "95% CI" in str(res) and "NM" in str(res)


def test_bootstrap_degenerate_when_all_subjects_score_alike():
    perfect = evaluate(*_random_casia(noise=0.0), "casia-b", bootstrap=100)
    assert (perfect.table["Mean"] == 100).all()
    assert (perfect.ci["low"] == perfect.ci["high"]).all()
    assert (perfect.ci["low"] == 100).all()
    wrong = _casia(CROSS_WRONG, bootstrap=100)  # every subject 0% cross-view
    assert wrong.ci.loc["NM", "low"] == wrong.ci.loc["NM", "high"] == 0


def test_two_dim_and_torch_inputs_match_three_dim():
    feats, s, c, v = _random_casia(seed=2)
    flat = feats.reshape(len(feats), -1)
    a = evaluate(flat, s, c, v, "casia-b", bootstrap=0)
    b = evaluate(flat[:, :, None], s, c, v, "casia-b", bootstrap=0)
    t = evaluate(torch.from_numpy(flat), np.array(s), tuple(c), v, "casia-b", bootstrap=0)
    pd.testing.assert_frame_equal(a.table, b.table)
    pd.testing.assert_frame_equal(a.table, t.table)


def _numpy_distance(x, y, metric):
    x, y = x.astype(np.float64), y.astype(np.float64)
    if metric == "cos":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        y = y / np.linalg.norm(y, axis=1, keepdims=True)
        return 1 - np.einsum("icp,jcp->ijp", x, y).mean(2)
    return np.sqrt(((x[:, None] - y[None]) ** 2).sum(2)).mean(2)


@pytest.mark.parametrize("metric", ["euc", "cos"])
def test_distance_and_nearest_match_numpy_brute_force(metric):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(37, 16, 5)).astype(np.float32)
    y = rng.normal(size=(53, 16, 5)).astype(np.float32)
    ref = _numpy_distance(x, y, metric)
    np.testing.assert_allclose(pairwise_distance(x, y, metric, "cpu").numpy(), ref,
                               rtol=1e-4, atol=1e-4)
    groups = rng.integers(0, 4, size=len(y))
    groups[groups == 2] = 3  # group 2 is empty
    got = nearest_per_group(x, y, groups, 4, metric, chunk_size=6, device="cpu")
    for g in range(4):
        members = np.flatnonzero(groups == g)
        want = members[ref[:, members].argmin(1)] if len(members) else -1
        np.testing.assert_array_equal(got[:, g], want)
    # The same, selecting probe and gallery rows out of one array instead of passing copies.
    both = np.concatenate([y, x])
    sel = nearest_per_group(both, both, groups, 4, metric, chunk_size=5, device="cpu",
                            probe_index=np.arange(len(y), len(both)),
                            gallery_index=np.arange(len(y)))
    np.testing.assert_array_equal(sel, got)
