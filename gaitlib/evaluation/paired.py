"""Paired comparison of two evaluations on the same test subjects.

Two ablation rows are scored on the same probes, so the uncertainty of their *difference* is
much smaller than the two separate CIs suggest: a subject that is hard for one model tends to
be hard for the other.  The paired bootstrap resamples the test subjects once per replicate and
applies the same resample to both results' per-subject hit counts
(:class:`~gaitlib.evaluation.protocols.SubjectCounts`), so each replicate's delta compares the
two models on one and the same pseudo test set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gaitlib.evaluation.protocols import EvaluationResult, SubjectCounts, summarise

MEAN = "Mean"  # the mean over the result's rows (NM/BG/CL), as the ablation tables report it


def _aligned(a: SubjectCounts, b: SubjectCounts) -> tuple[np.ndarray, ...]:
    """``b``'s counts reordered to ``a``'s subjects; ValueError unless the test sets agree."""
    if a.rows != b.rows or a.views != b.views:
        raise ValueError(f"results are not on the same protocol rows/views: {a.rows} x {a.views} "
                         f"against {b.rows} x {b.views}")
    if sorted(a.subjects) != sorted(b.subjects):
        only = sorted(set(a.subjects) ^ set(b.subjects))[:5]
        raise ValueError(f"results are not on the same test subjects (e.g. {only} on one side "
                         "only); a paired comparison needs one test set")
    order = [b.subjects.index(s) for s in a.subjects]
    return a.hits, a.totals, b.hits[order], b.totals[order]


def _means(hits: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Row means and their mean, (..., rows + 1), from (..., rows, V, V) counts."""
    rows = summarise(hits, totals)[2]
    return np.concatenate([rows, rows.mean(axis=-1, keepdims=True)], axis=-1)


def paired_delta(result: EvaluationResult, reference: EvaluationResult, bootstrap: int = 1000,
                 seed: int = 0) -> pd.DataFrame:
    """``result - reference`` per row (NM/BG/CL, ...) and for their mean: the delta of the Mean
    accuracies and its 95% paired-bootstrap interval over the shared test subjects.

    Returns a frame indexed by row name and ``"Mean"`` with columns ``delta``, ``low``,
    ``high`` and ``excludes_zero`` (the interval lies entirely on one side of 0).  Raises
    ValueError when either result lacks per-subject counts or the test sets differ.
    """
    if result.subject_counts is None or reference.subject_counts is None:
        raise ValueError("a paired comparison needs per-subject counts (evaluations written by "
                         "this gaitlib; re-evaluate older runs with `gaitlib eval --write`)")
    ha, ta, hb, tb = _aligned(result.subject_counts, reference.subject_counts)
    names = [*result.subject_counts.rows, MEAN]
    delta = _means(ha.sum(0), ta.sum(0)) - _means(hb.sum(0), tb.sum(0))
    low = high = np.full(len(names), np.nan)
    if bootstrap > 0:
        n = ha.shape[0]
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, n, size=(int(bootstrap), n))
        weights = np.stack([np.bincount(d, minlength=n) for d in draws]).astype(np.float64)
        shape = ha.shape[1:]

        def resampled(counts: np.ndarray) -> np.ndarray:
            return (weights @ counts.reshape(n, -1)).reshape(len(weights), *shape)

        with np.errstate(invalid="ignore"):
            deltas = (_means(resampled(ha), resampled(ta)) - _means(resampled(hb), resampled(tb)))
        low = np.nanpercentile(deltas, 2.5, axis=0)
        high = np.nanpercentile(deltas, 97.5, axis=0)
    out = pd.DataFrame({"delta": delta, "low": low, "high": high}, index=names)
    out["excludes_zero"] = (out["low"] > 0) | (out["high"] < 0)
    return out


__all__ = ["paired_delta"]
