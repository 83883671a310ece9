"""Per-subject counts of an evaluation, paired deltas between two evaluations, and the
paired-delta / seed-SD / Kendall columns of the ablation tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gaitlib.analysis.ablation import ablation_table, paired_cells
from gaitlib.analysis.ordering import kendall_permutation
from gaitlib.evaluation import evaluate
from gaitlib.evaluation.paired import paired_delta
from gaitlib.evaluation.protocols import summarise
from gaitlib.training.rundir import read_evaluation, write_evaluation

CONDITIONS = ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "bg-02", "cl-01",
              "cl-02")
VIEWS = ("000", "090", "180")


def features(noise: float, n_subjects: int = 24, seed: int = 0, shared: int = 1):
    """Each subject a random centre; every sequence its centre plus noise.  ``shared`` seeds a
    per-sequence offset common to every model (hard sequences are hard for all of them), which
    is what makes pairing pay off."""
    centres = np.random.default_rng(shared).normal(size=(n_subjects, 16))
    common = np.random.default_rng(shared + 100)
    rng = np.random.default_rng(seed)
    feats, subjects, conditions, views = [], [], [], []
    for s in range(n_subjects):
        for c in CONDITIONS:
            for v in VIEWS:
                offset = common.normal(size=16) * 0.9
                feats.append(centres[s] + offset + rng.normal(size=16) * noise)
                subjects.append(f"{s:03d}")
                conditions.append(c)
                views.append(v)
    return np.asarray(feats, dtype=np.float32), subjects, conditions, views


def result(noise: float, seed: int = 0, **kw):
    return evaluate(*features(noise, seed=seed, **kw), "casia-b", bootstrap=200, seed=0)


def test_subject_counts_sum_to_the_table_and_survive_eval_json(tmp_path):
    res = result(0.6)
    counts = res.subject_counts
    assert counts.rows == ["NM", "BG", "CL"] and counts.views == list(VIEWS)
    assert len(counts.subjects) == 24 and counts.hits.shape == (24, 3, 3, 3)
    _, per_view, mean = summarise(counts.hits.sum(0), counts.totals.sum(0))
    np.testing.assert_allclose(mean, res.table["Mean"].to_numpy())
    np.testing.assert_allclose(per_view, res.table[list(VIEWS)].to_numpy())
    write_evaluation(tmp_path, res)
    assert "subject_counts" in json.loads((tmp_path / "eval.json").read_text())
    back = read_evaluation(tmp_path)
    np.testing.assert_array_equal(back.subject_counts.hits, counts.hits)
    assert back.subject_counts.subjects == counts.subjects


def test_a_result_against_itself_differs_by_exactly_zero():
    res = result(0.6)
    d = paired_delta(res, res, bootstrap=100)
    assert list(d.index) == ["NM", "BG", "CL", "Mean"]
    assert (d[["delta", "low", "high"]].to_numpy() == 0).all()
    assert not d["excludes_zero"].any()


def test_paired_delta_is_the_mean_difference_with_a_narrower_interval_than_unpaired():
    better, worse = result(0.3, seed=1), result(1.0, seed=2)
    d = paired_delta(better, worse, bootstrap=400, seed=3)
    np.testing.assert_allclose(d.loc[["NM", "BG", "CL"], "delta"],
                               better.table["Mean"] - worse.table["Mean"])
    assert d.loc["Mean", "delta"] == pytest.approx(better.table["Mean"].mean()
                                                   - worse.table["Mean"].mean())
    assert (d["low"] <= d["delta"]).all() and (d["delta"] <= d["high"]).all()
    assert d.loc["Mean", "excludes_zero"] and d.loc["Mean", "low"] > 0
    # resampling the subjects independently for each model (unpaired) gives a wider interval
    rng = np.random.default_rng(0)
    a, b = better.subject_counts, worse.subject_counts
    n, unpaired = len(a.subjects), []
    for _ in range(400):
        ia, ib = rng.integers(0, n, n), rng.integers(0, n, n)
        ma = summarise(a.hits[ia].sum(0), a.totals[ia].sum(0))[2].mean()
        mb = summarise(b.hits[ib].sum(0), b.totals[ib].sum(0))[2].mean()
        unpaired.append(ma - mb)
    width_unpaired = np.subtract(*np.percentile(unpaired, [97.5, 2.5]))
    assert d.loc["Mean", "high"] - d.loc["Mean", "low"] < width_unpaired


def test_paired_delta_needs_one_test_set():
    with pytest.raises(ValueError, match="same test subjects"):
        paired_delta(result(0.5), evaluate(*features(0.5, n_subjects=20), "casia-b",
                                           bootstrap=0))


def _reported() -> pd.DataFrame:
    lines = []
    for label, means in (("Base", (90.0, 80.0, 70.0)), ("Mid", (91.0, 82.0, 73.0)),
                         ("Full", (93.0, 85.0, 77.0))):
        for cond, m in zip(("NM", "BG", "CL"), means, strict=True):
            lines.append({"method": label, "condition": cond, "Mean": m})
    return pd.DataFrame(lines)


def test_ablation_table_adds_paired_deltas_paper_deltas_and_seed_sd():
    base, mid = result(1.0, seed=2), result(0.7, seed=4)
    full = [result(0.3, seed=1), result(0.35, seed=5), result(0.3, seed=6)]
    table = ablation_table({"Base": base, "Mid": mid, "Full": full}, _reported(),
                           reference="Base", bootstrap=300)
    info = table.paired_record()
    assert info["reference"] == "Base" and set(info["rows"]) == {"Base", "Mid", "Full"}
    frame = table.to_frame()
    full_mean = info["rows"]["Full"]["Mean"]
    assert full_mean["paper_delta"] == pytest.approx(((93 + 85 + 77) - (90 + 80 + 70)) / 3,
                                                     abs=1e-3)
    assert full_mean["delta"] == pytest.approx(frame.loc["Full", "Mean reproduced"]
                                               - frame.loc["Base", "Mean reproduced"], abs=1e-3)
    assert frame.loc["Full", "Mean paired delta"] == table.row("Full").paired["Mean"].delta
    low, high = full_mean["delta_ci"]
    assert low <= full_mean["delta"] <= high and full_mean["excludes_zero"] == (low > 0 or high < 0)
    assert info["rows"]["Base"]["NM"] == {"delta": 0.0, "delta_ci": None, "excludes_zero": False,
                                          "paper_delta": 0.0, "seed_sd": None}
    sds = [r.table.loc["CL", "Mean"] for r in full]
    assert info["rows"]["Full"]["CL"]["seed_sd"] == pytest.approx(np.std(sds, ddof=1), abs=1e-3)
    assert info["rows"]["Mid"]["CL"]["seed_sd"] is None
    # the shown accuracy is the first seed's
    assert table.row("Full").reproduced["NM"] == full[0].table.loc["NM", "Mean"]
    cells = paired_cells(table)
    assert cells.loc["Base", "NM"] == "reference"
    assert "(paper +3.0)" in cells.loc["Full", "NM"] and "SD" in cells.loc["Full", "NM"]
    assert cells.loc["Full", "Mean"].startswith(f"{full_mean['delta']:+.1f} [")


def test_ablation_table_without_counts_gives_the_delta_but_no_interval():
    tables = {k: result(n, seed=s).table for k, n, s in (("Base", 1.0, 2), ("Mid", 0.7, 4),
                                                         ("Full", 0.3, 1))}
    table = ablation_table(tables, _reported(), reference="Base")
    entry = table.paired_record()["rows"]["Full"]["NM"]
    assert entry["delta_ci"] is None and entry["delta"] == pytest.approx(
        tables["Full"].loc["NM", "Mean"] - tables["Base"].loc["NM", "Mean"], abs=1e-3)
    with pytest.raises(KeyError, match="reference row"):
        ablation_table(tables, _reported(), reference="Nope")


def test_kendall_permutation_p_values():
    assert kendall_permutation([1, 2, 3, 4], [10, 20, 30, 40]) == (pytest.approx(1.0),
                                                                   pytest.approx(1 / 24))
    tau, p = kendall_permutation([4, 3, 2, 1], [10, 20, 30, 40])
    assert tau == pytest.approx(-1.0) and p == pytest.approx(1.0)
    tau, p = kendall_permutation([1, 3, 2, 4, 5], [1, 2, 3, 4, 5])
    assert tau == pytest.approx(0.8) and 0 < p < 0.1


def test_kendall_tau_b_equals_scipys_with_ties():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(1)
    for n in (4, 6, 9):
        x, y = rng.integers(0, 4, n).astype(float), rng.integers(0, 4, n).astype(float)
        tau, p = kendall_permutation(x, y, permutations=2000)
        assert tau == pytest.approx(kendalltau(x, y).statistic) and 0 < p <= 1
