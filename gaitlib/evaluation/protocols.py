"""Rank-1 accuracy under the CASIA-B and OU-MVLP protocols (OpenGait's), with bootstrap CIs.

Every probe is matched once against every gallery view (nearest neighbour restricted to
that view); the outcome is kept as a per-probe, per-gallery-view indicator. All tables,
and every bootstrap resample over test subjects, are then sums of those indicators, so
the bootstrap costs a matrix product, not a recomputation of distances.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gaitlib.errors import GaitlibError
from gaitlib.evaluation.distance import as_parts, check_metric, nearest_per_group


class NonFiniteFeaturesError(GaitlibError, ValueError):
    """Features with NaN or infinite values: every distance to them is meaningless, and a NaN
    distance can win a nearest-neighbour search, so such features are never scored."""


@dataclass(frozen=True)
class ConditionRow:
    """One row of a results table: which probe conditions it scores, and how probes whose
    subject has no gallery sequence at the gallery view count (miss, or left out)."""

    name: str
    probe_conditions: tuple[str, ...]
    discard_missing: bool = False


@dataclass(frozen=True)
class Protocol:
    name: str
    gallery_conditions: tuple[str, ...]
    rows: tuple[ConditionRow, ...]


PROTOCOLS = {
    "casia-b": Protocol(
        "casia-b", ("nm-01", "nm-02", "nm-03", "nm-04"),
        (ConditionRow("NM", ("nm-05", "nm-06")), ConditionRow("BG", ("bg-01", "bg-02")),
         ConditionRow("CL", ("cl-01", "cl-02")))),
    # 'miss' is OpenGait's convention (and CSTL's, 3D Local's Table 2); 'discard' is 3D Local
    # code's (GaitMM's Table 2).
    "oumvlp": Protocol("oumvlp", ("01",), (ConditionRow("miss", ("00",)),
                                           ConditionRow("discard", ("00",), True))),
}

DATASET_PROTOCOL = {"casia-b": "casia-b", "synthetic": "casia-b", "oumvlp": "oumvlp",
                    "synthetic-oumvlp": "oumvlp"}


def protocol_for(dataset: str) -> str:
    """The protocol a store's dataset is scored with."""
    if dataset not in DATASET_PROTOCOL:
        raise ValueError(f"no protocol for dataset {dataset!r}; known: {', '.join(DATASET_PROTOCOL)}")
    return DATASET_PROTOCOL[dataset]


@dataclass
class SubjectCounts:
    """Per probe subject: ``hits`` and ``totals`` (probes counted), shape
    (subjects, rows, probe views, gallery views), integers.  Summed over subjects and passed
    through :func:`summarise` they give the result's table exactly."""

    subjects: list[str]
    rows: list[str]
    views: list[str]
    hits: np.ndarray
    totals: np.ndarray

    def to_json(self) -> dict:
        return {"subjects": list(self.subjects), "rows": list(self.rows),
                "views": list(self.views), "shape": list(self.hits.shape),
                "hits": self.hits.astype(np.int64).ravel().tolist(),
                "totals": self.totals.astype(np.int64).ravel().tolist()}

    @classmethod
    def from_json(cls, data: dict) -> SubjectCounts:
        shape = tuple(data["shape"])
        return cls([str(s) for s in data["subjects"]], [str(r) for r in data["rows"]],
                   [str(v) for v in data["views"]],
                   np.asarray(data["hits"], dtype=np.float64).reshape(shape),
                   np.asarray(data["totals"], dtype=np.float64).reshape(shape))


@dataclass
class EvaluationResult:
    """Rank-1 accuracies in percent.

    ``table``: rows (NM/BG/CL or miss/discard) x probe views + 'Mean'; ``view_accuracy``:
    row -> probe view x gallery view accuracies (diagonal included, though no mean uses
    it); ``ci``: bootstrap 95% interval of each row's Mean (columns low, high; NaN when the
    bootstrap is off). ``undefined``: the cells with no probe or no gallery sequence, one line
    per row and probe view; a probe view with any such cell has no per-view number, and a row
    with any such probe view has no Mean (NaN), so no mean covers fewer cells than it claims.
    ``subject_counts``: the per-subject hit and probe counts every number above is a sum of
    (see :class:`SubjectCounts`); two results on the same test subjects can be compared by a
    paired bootstrap (:func:`gaitlib.evaluation.paired.paired_delta`).  ``map_table``: mAP (%)
    per row and probe view + 'Mean' under OpenGait's cross-view gallery protocol
    (:mod:`gaitlib.evaluation.mean_ap`), or None.
    """

    protocol: str
    metric: str
    table: pd.DataFrame
    view_accuracy: dict[str, pd.DataFrame]
    ci: pd.DataFrame
    bootstrap: int = 0
    n_subjects: int = 0
    n_probes: dict[str, int] = field(default_factory=dict)
    undefined: list[str] = field(default_factory=list)
    subject_counts: SubjectCounts | None = None
    map_table: pd.DataFrame | None = None

    def mean_over_rows(self) -> float:
        """The mean of the rows' Means (the 'mean over conditions'); NaN when any row's Mean is
        undefined, never the mean of the rows that happen to be defined."""
        means = self.table["Mean"].to_numpy(dtype=float)
        return float(means.mean()) if len(means) and np.isfinite(means).all() else float("nan")

    def to_string(self, digits: int = 1) -> str:
        lines = [f"rank-1 accuracy (%), protocol {self.protocol}, metric {self.metric}, "
                 f"identical view excluded", self.table.round(digits).to_string()]
        if self.bootstrap:
            lines.append(f"95% CI of Mean (bootstrap over {self.n_subjects} test subjects, "
                         f"{self.bootstrap} resamples):")
            for name, (low, high) in self.ci[["low", "high"]].iterrows():
                lines.append(f"  {name}: {self.table.loc[name, 'Mean']:.{digits}f} "
                             f"[{low:.{digits}f}, {high:.{digits}f}]")
        if self.undefined:
            lines.append(f"undefined (no probe or no gallery sequence; those per-view numbers "
                         f"and Means are NaN): {len(self.undefined)}")
            lines += [f"  {u}" for u in self.undefined[:12]]
            if len(self.undefined) > 12:
                lines.append(f"  ... and {len(self.undefined) - 12} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_string()


def _view_key(view: str):
    return (0, int(view), view) if view.isdigit() else (1, 0, view)


def _labels(name: str, values, n: int) -> np.ndarray:
    arr = np.asarray(values).astype(str)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{name} has {arr.shape} labels; expected one per feature row ({n})")
    return arr


def summarise(hits: np.ndarray, totals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From (..., V, V) hit and probe counts: accuracies (..., V, V), per probe view means
    over gallery views other than the probe's (..., V), and the mean of those (...).

    A cell without probes is undefined (NaN), and so is every mean that would include it:
    a per-view mean over fewer gallery views, or a Mean over fewer probe views, would be a
    different number that looks like the usual one. On complete data this is the plain mean
    over the V - 1 other gallery views, then over the V probe views (OpenGait's numbers).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(totals > 0, 100.0 * hits / np.maximum(totals, 1), np.nan)
        v = acc.shape[-1]
        off_diagonal = ~np.eye(v, dtype=bool)
        cells = acc[..., off_diagonal].reshape(*acc.shape[:-2], v, v - 1)
        # v == 1 leaves no cross-view cell at all: undefined too
        per_view = cells.mean(axis=-1) if v > 1 else np.full(acc.shape[:-1], np.nan)
        mean = per_view.mean(axis=-1)
    return acc, per_view, mean


def _undefined_cells(row_names: list[str], view_names: list[str], totals: np.ndarray,
                     has_probes: np.ndarray, has_gallery_view: np.ndarray) -> list[str]:
    """One line per (row, probe view) whose mean is undefined, saying which gallery views
    lack a gallery sequence or the row's probes at that view (totals: (rows, V, V))."""
    lines = []
    for r, row in enumerate(row_names):
        if not has_probes[r].any():
            lines.append(f"{row}: no probe sequence in the test set (whole row undefined)")
            continue
        for i, view in enumerate(view_names):
            if len(view_names) == 1:
                lines.append(f"{row} probe view {view}: no other gallery view (one view only)")
                continue
            if not has_probes[r, i]:
                lines.append(f"{row} probe view {view}: no probe sequence at this view")
                continue
            missing = [g for j, g in enumerate(view_names) if j != i and totals[r, i, j] == 0]
            if missing:
                no_gallery = [g for g in missing if not has_gallery_view[view_names.index(g)]]
                why = "no gallery sequence" if len(no_gallery) == len(missing) else "no probe counted"
                lines.append(f"{row} probe view {view}: gallery views {', '.join(missing)} "
                             f"undefined ({why})")
    return lines


def _subject_counts(proto: Protocol, probe_cond, probe_view, probe_subj, correct, valid,
                    has_gallery, n_subj, n_views) -> tuple[np.ndarray, np.ndarray]:
    """hits and totals, (n_subj, rows, V, V): per subject, row, probe view, gallery view."""
    n_rows = len(proto.rows)
    size = n_subj * n_rows * n_views * n_views
    hits = np.zeros(size)
    totals = np.zeros(size)
    cols = np.arange(n_views)
    for r, row in enumerate(proto.rows):
        sel = np.flatnonzero(np.isin(probe_cond, row.probe_conditions))
        counted = valid[sel]
        if row.discard_missing:
            counted = counted & has_gallery[probe_subj[sel]]
        keys = (((probe_subj[sel] * n_rows + r) * n_views + probe_view[sel]) * n_views)[:, None]
        keys = (keys + cols).ravel()
        totals += np.bincount(keys, weights=counted.ravel(), minlength=size)
        hits += np.bincount(keys, weights=(counted & correct[sel]).ravel(), minlength=size)
    shape = (n_subj, n_rows, n_views, n_views)
    return hits.reshape(shape), totals.reshape(shape)


def _bootstrap_means(hits, totals, n_boot: int, seed: int) -> np.ndarray:
    """Row means (n_boot, rows) over resamples of subjects drawn with replacement."""
    n_subj = hits.shape[0]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_subj, size=(n_boot, n_subj))
    draws += np.arange(n_boot)[:, None] * n_subj
    weights = np.bincount(draws.ravel(), minlength=n_boot * n_subj).reshape(n_boot, n_subj)
    weights = weights.astype(np.float64)
    shape = hits.shape[1:]
    h = (weights @ hits.reshape(n_subj, -1)).reshape(n_boot, *shape)
    t = (weights @ totals.reshape(n_subj, -1)).reshape(n_boot, *shape)
    return summarise(h, t)[2]


def evaluate(features, subjects, conditions, views, protocol: str, metric: str = "euc",
             bootstrap: int = 1000, seed: int = 0, device=None,
             chunk_size: int | None = None, mean_ap: bool = True) -> EvaluationResult:
    """Rank-1 accuracy of ``features`` ((n, c, p) or (n, d), numpy or torch) under
    ``protocol`` ('casia-b' or 'oumvlp'), identical view excluded from every mean.

    ``subjects``, ``conditions``, ``views``: one label per row, as in gaitlib.data.splits.
    Only views present in the data appear. ``bootstrap`` resamples of the probe subjects
    (seeded by ``seed``; 0: no CI). ``chunk_size``: probes per distance chunk (default auto).
    ``mean_ap``: also compute OpenGait's mAP (:mod:`gaitlib.evaluation.mean_ap`).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    check_metric(metric)
    proto = PROTOCOLS[protocol]
    feats = as_parts(features)
    n = len(feats)
    subjects = _labels("subjects", subjects, n)
    conditions = _labels("conditions", conditions, n)
    views = _labels("views", views, n)
    _check_finite(feats, subjects, conditions, views)

    probe_conds = sorted({c for row in proto.rows for c in row.probe_conditions})
    is_gallery = np.isin(conditions, proto.gallery_conditions)
    is_probe = np.isin(conditions, probe_conds)
    found = ", ".join(sorted(set(conditions.tolist()))[:12]) or "none"
    if not is_gallery.any():
        raise ValueError(f"empty gallery: no sequence with condition in "
                         f"{list(proto.gallery_conditions)} (found: {found})")
    if not is_probe.any():
        raise ValueError(f"empty probe set: no sequence with condition in {probe_conds} "
                         f"(found: {found})")

    view_names = sorted(set(views[is_gallery | is_probe].tolist()), key=_view_key)
    view_code = {v: i for i, v in enumerate(view_names)}
    n_views = len(view_names)
    subj_names, subj_code = np.unique(subjects, return_inverse=True)
    g_idx, p_idx = np.flatnonzero(is_gallery), np.flatnonzero(is_probe)
    g_view = np.array([view_code[v] for v in views[g_idx]], dtype=np.int64)
    p_view = np.array([view_code[v] for v in views[p_idx]], dtype=np.int64)

    nearest = nearest_per_group(feats, feats, g_view, n_views, metric=metric,
                                chunk_size=chunk_size, device=device, probe_index=p_idx,
                                gallery_index=g_idx)
    valid = nearest >= 0  # the gallery has this view at all
    g_subj = subj_code[g_idx]
    correct = valid & (g_subj[np.maximum(nearest, 0)] == subj_code[p_idx][:, None])
    has_gallery = np.zeros((len(subj_names), n_views), dtype=bool)
    has_gallery[g_subj, g_view] = True

    # Subjects are re-coded to the probe subjects: the bootstrap's resampling units.
    boot_names, p_subj = np.unique(subj_code[p_idx], return_inverse=True)
    hits, totals = _subject_counts(proto, conditions[p_idx], p_view, p_subj, correct, valid,
                                   has_gallery[boot_names], len(boot_names), n_views)
    acc, per_view, mean = summarise(hits.sum(0), totals.sum(0))

    row_names = [row.name for row in proto.rows]
    row_probe_views = np.zeros((len(proto.rows), n_views), dtype=bool)
    for r, row in enumerate(proto.rows):
        row_probe_views[r, p_view[np.isin(conditions[p_idx], row.probe_conditions)]] = True
    undefined = _undefined_cells(row_names, view_names, totals.sum(0), row_probe_views,
                                 np.bincount(g_view, minlength=n_views) > 0)
    if undefined:
        warnings.warn(f"evaluation gaps (no probe or no gallery sequence) leave {len(undefined)} "
                      f"means undefined (NaN): {'; '.join(undefined[:4])}"
                      + (" ..." if len(undefined) > 4 else ""), stacklevel=2)
    table = pd.DataFrame(per_view, index=row_names, columns=view_names)
    table["Mean"] = mean
    view_accuracy = {
        name: pd.DataFrame(acc[r], index=pd.Index(view_names, name="probe view"),
                           columns=pd.Index(view_names, name="gallery view"))
        for r, name in enumerate(row_names)}
    ci = pd.DataFrame(np.nan, index=row_names, columns=["low", "high"])
    if bootstrap:
        means = _bootstrap_means(hits, totals, int(bootstrap), seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ci["low"] = np.nanpercentile(means, 2.5, axis=0)
            ci["high"] = np.nanpercentile(means, 97.5, axis=0)
    n_probes = {row.name: int(np.isin(conditions[p_idx], row.probe_conditions).sum())
                for row in proto.rows}
    counts = SubjectCounts([str(x) for x in subj_names[boot_names]], row_names,
                           [str(v) for v in view_names], hits, totals)
    map_table = None
    if mean_ap:
        from gaitlib.evaluation.mean_ap import mean_average_precision

        map_table = mean_average_precision(feats, subjects, conditions, views, protocol, metric,
                                           device, chunk_size)
    return EvaluationResult(protocol, metric, table, view_accuracy, ci, int(bootstrap),
                            len(boot_names), n_probes, undefined, counts, map_table)


def _check_finite(feats, subjects: np.ndarray, conditions: np.ndarray, views: np.ndarray) -> None:
    """Raise :class:`NonFiniteFeaturesError` naming how many and which sequences have a NaN or
    infinite feature value (a diverged model, a broken extraction)."""
    import torch

    # in chunks of rows: a mask of all OU-MVLP test features at once would be hundreds of MB
    bad = np.concatenate([
        np.flatnonzero((~torch.isfinite(feats[i : i + 4096])).flatten(1).any(1).cpu().numpy()) + i
        for i in range(0, len(feats), 4096)] or [np.zeros(0, np.int64)])
    if len(bad):
        named = ", ".join(f"{subjects[i]}/{conditions[i]}/{views[i]}" for i in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise NonFiniteFeaturesError(
            f"{len(bad)} of {len(feats)} sequences have non-finite (NaN or inf) features: "
            f"{named}{more}; a diverged or broken model cannot be scored (check the run's "
            f"loss in metrics.jsonl)")
