"""mAP as OpenGait's cross-view gallery evaluation computes it: against a direct transcription of
its per-probe loop (distances, identical-view exclusion, average precision, means)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaitlib.evaluation import evaluate
from gaitlib.evaluation.mean_ap import average_precision, mean_average_precision

VIEWS = ("000", "090", "180")
CONDS = ("nm-01", "nm-02", "bg-01", "bg-02", "cl-01", "cl-02", "nm-05", "nm-06")


def _data(n_subjects=6, seed=0, drop=0.1):
    rng = np.random.default_rng(seed)
    rows = [(f"{s:03d}", c, v) for s in range(n_subjects) for c in CONDS for v in VIEWS]
    rows = [r for r in rows if rng.random() > drop]  # some sequences missing, as in CASIA-B
    subjects, conditions, views = (np.array(x) for x in zip(*rows, strict=True))
    centre = rng.standard_normal((n_subjects, 8, 4)).astype(np.float32)
    feats = centre[subjects.astype(int)] + 1.2 * rng.standard_normal((len(rows), 8, 4)).astype(np.float32)
    return feats, subjects, conditions, views


def _opengait_like(feats, subjects, conditions, views, probe, gallery):
    """OpenGait's per-probe loop, written out: per-part Euclidean distance averaged over parts;
    the probe's own subject at its own view removed from its gallery; AP over the sorted
    matches; the mean of APs per probe view, then over the views."""
    g = np.isin(conditions, gallery)
    per_view = []
    for view in sorted(set(views[np.isin(conditions, probe)])):
        aps = []
        for i in np.flatnonzero(np.isin(conditions, probe) & (views == view)):
            keep = g & ((views != view) | (subjects != subjects[i]))
            d = np.sqrt(((feats[keep] - feats[i]) ** 2).sum(1)).mean(1)  # (n, c, p): per part
            matches = (subjects[keep][np.argsort(d, kind="stable")] == subjects[i]).astype(int)
            if matches.sum() == 0:
                continue
            precision = np.cumsum(matches) / np.arange(1, len(matches) + 1)
            aps.append((precision * matches).sum() / matches.sum())
        per_view.append(100 * np.mean(aps))
    return per_view, float(np.mean(per_view))


def test_average_precision_of_one_ranking():
    # ranked: relevant, other, relevant, (excluded relevant) -> AP = (1/1 + 2/3) / 2
    d = torch.tensor([[0.1, 0.2, 0.3, 0.05]])
    relevant = torch.tensor([[True, False, True, True]])
    excluded = torch.tensor([[False, False, False, True]])
    assert average_precision(d, relevant, excluded).item() == pytest.approx((1 + 2 / 3) / 2)
    assert torch.isnan(average_precision(d, relevant & False, excluded)).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_casia_b_map_matches_the_direct_computation(seed):
    feats, subjects, conditions, views = _data(seed=seed)
    table = mean_average_precision(feats, subjects, conditions, views, "casia-b", chunk_size=5)
    assert list(table.index) == ["NM", "BG", "CL"] and list(table.columns) == [*VIEWS, "Mean"]
    for row, probe in (("NM", ["nm-01"]), ("BG", ["bg-01"]), ("CL", ["cl-01"])):
        per_view, mean = _opengait_like(feats, subjects, conditions, views, probe,
                                        ["nm-02", "bg-02", "cl-02"])
        assert table.loc[row, list(VIEWS)].to_numpy() == pytest.approx(per_view, abs=1e-9)
        assert table.loc[row, "Mean"] == pytest.approx(mean, abs=1e-9)


def test_oumvlp_map_and_perfect_features():
    rng = np.random.default_rng(0)
    subjects = np.repeat([f"{i:05d}" for i in range(5)], 4)
    conditions = np.tile(["00", "01"], 10)
    views = np.tile(["000", "000", "015", "015"], 5)
    feats = np.eye(5, dtype=np.float32)[subjects.astype(int)] * 10 + 0.01 * rng.random((20, 5))
    table = mean_average_precision(feats, subjects, conditions, views, "oumvlp")
    # each probe's only relevant gallery sequence (its subject at the other view) ranks first
    assert table.loc["miss", "Mean"] == pytest.approx(100.0)
    assert table.loc["discard", "Mean"] == table.loc["miss", "Mean"]
    with pytest.raises(ValueError, match="no mAP protocol"):
        mean_average_precision(feats, subjects, conditions, views, "kitti")


def test_evaluate_reports_map_beside_rank1_and_it_survives_a_run_directory(tmp_path):
    from gaitlib.training.rundir import read_evaluation, write_evaluation

    feats, subjects, conditions, views = _data()
    result = evaluate(feats, subjects, conditions, views, "casia-b", bootstrap=0)
    assert result.map_table is not None and result.map_table["Mean"].between(0, 100).all()
    write_evaluation(tmp_path, result)
    back = read_evaluation(tmp_path)
    assert back.map_table.round(4).equals(result.map_table.round(4))
    assert evaluate(feats, subjects, conditions, views, "casia-b", bootstrap=0,
                    mean_ap=False).map_table is None
