"""Mean average precision (mAP) as OpenGait's cross-view gallery evaluation computes it.

OpenGait's model zoo reports mAP beside rank-1, computed under the protocol of "A Comprehensive
Study on the Evaluation of Silhouette-based Gait Recognition" (OpenGait's
``cross_view_gallery_evaluation`` and ``compute_ACC_mAP``), which differs from the rank-1
protocol:

- CASIA-B: probes ``nm-01`` (NM), ``bg-01`` (BG), ``cl-01`` (CL); one gallery of ``nm-02``,
  ``bg-02`` and ``cl-02`` at every view.  OU-MVLP: probe ``00``, gallery ``01``.
- A probe's gallery leaves out the sequences of its own subject at its own view (the
  identical-view case); every other gallery sequence is ranked by distance (the per-part
  distance of :mod:`gaitlib.evaluation.distance`).
- A probe's average precision is the mean, over the gallery sequences of its subject, of the
  precision at each one's rank; probes with no such sequence are left out.  A probe view's
  mAP is the mean over its probes, a condition's the mean over the probe views.

Ties in distance keep the gallery order (a stable sort); OpenGait's ``np.argsort`` leaves their
order unspecified, which only matters for exactly equal distances.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from gaitlib.evaluation.distance import (
    _CPU_BUDGET,
    _CUDA_BUDGET,
    _part_distance,
    _prepare,
    as_parts,
    check_metric,
    resolve_device,
)

# Per protocol: (row name, probe conditions) and the gallery conditions.  OU-MVLP's two rank-1
# rows (probes without a gallery sequence missed or discarded) share one mAP: such probes have
# no relevant sequence and are left out of it in both.
CROSS_VIEW = {
    "casia-b": ((("NM", ("nm-01",)), ("BG", ("bg-01",)), ("CL", ("cl-01",))),
                ("nm-02", "bg-02", "cl-02")),
    "oumvlp": ((("miss", ("00",)), ("discard", ("00",))), ("01",)),
}

__all__ = ["CROSS_VIEW", "average_precision", "mean_average_precision"]


def average_precision(distances: torch.Tensor, relevant: torch.Tensor,
                      excluded: torch.Tensor) -> torch.Tensor:
    """Average precision of each probe (row): ``distances`` (m, n) to the gallery, ``relevant``
    (m, n) the gallery sequences of the probe's subject, ``excluded`` (m, n) those left out of
    its gallery.  NaN for a probe with no relevant sequence left."""
    d = distances.masked_fill(excluded, float("inf"))
    order = torch.sort(d, dim=1, stable=True).indices
    hits = (relevant & ~excluded).gather(1, order).to(torch.float64)
    ranks = torch.arange(1, d.shape[1] + 1, dtype=torch.float64, device=d.device)
    precision = hits.cumsum(1) / ranks
    return (precision * hits).sum(1) / hits.sum(1)  # 0 / 0 = NaN: no relevant sequence


def mean_average_precision(features, subjects, conditions, views, protocol: str,
                           metric: str = "euc", device=None,
                           chunk_size: int | None = None) -> pd.DataFrame:
    """mAP (%) per row (NM/BG/CL, or OU-MVLP's miss/discard) and probe view, plus 'Mean' (see
    the module docstring).  ``features`` (n, c, p) or (n, d); one label per row in
    ``subjects``, ``conditions``, ``views``.  A probe view without a probe with a relevant
    gallery sequence is NaN, and so is the Mean of its row."""
    if protocol not in CROSS_VIEW:
        raise ValueError(f"no mAP protocol for {protocol!r}; known: {', '.join(CROSS_VIEW)}")
    check_metric(metric)
    rows, gallery_conditions = CROSS_VIEW[protocol]
    dev = resolve_device(device)
    feats = as_parts(features)
    subjects, conditions, views = (np.asarray(a).astype(str) for a in (subjects, conditions, views))
    g_idx = np.flatnonzero(np.isin(conditions, gallery_conditions))
    probe_conditions = sorted({c for _, conds in rows for c in conds})
    p_idx = np.flatnonzero(np.isin(conditions, probe_conditions))
    view_names = sorted(set(views[p_idx].tolist()),
                        key=lambda v: (0, int(v), v) if v.isdigit() else (1, 0, v))
    ap = np.full(len(p_idx), np.nan)
    if len(g_idx) and len(p_idx):
        yp = _prepare(feats[torch.from_numpy(g_idx)], metric, dev)
        y2 = yp.square().sum(2) if metric == "euc" else None
        _, codes = np.unique(np.concatenate([subjects[g_idx], subjects[p_idx]]), return_inverse=True)
        g_subj = torch.from_numpy(codes[: len(g_idx)]).to(dev)
        p_subj = codes[len(g_idx):]
        _, vcodes = np.unique(np.concatenate([views[g_idx], views[p_idx]]), return_inverse=True)
        g_view = torch.from_numpy(vcodes[: len(g_idx)]).to(dev)
        p_view = vcodes[len(g_idx):]
        if chunk_size is None:
            chunk_size = (_CUDA_BUDGET if dev.type == "cuda" else _CPU_BUDGET) // max(len(g_idx), 1)
        chunk_size = max(1, int(chunk_size))
        for start in range(0, len(p_idx), chunk_size):
            sel = slice(start, start + chunk_size)
            x = _prepare(feats[torch.from_numpy(p_idx[sel])], metric, dev)
            dist = _part_distance(x, yp, y2, metric)
            same = g_subj[None, :] == torch.from_numpy(p_subj[sel]).to(dev)[:, None]
            same_view = g_view[None, :] == torch.from_numpy(p_view[sel]).to(dev)[:, None]
            ap[sel] = average_precision(dist, same, same & same_view).cpu().numpy()
    table = pd.DataFrame(np.nan, index=[name for name, _ in rows], columns=[*view_names, "Mean"])
    p_cond, p_views = conditions[p_idx], views[p_idx]
    for name, conds in rows:
        for view in view_names:
            picked = ap[np.isin(p_cond, conds) & (p_views == view)]
            picked = picked[~np.isnan(picked)]
            table.loc[name, view] = 100.0 * picked.mean() if len(picked) else np.nan
        per_view = table.loc[name, view_names].to_numpy(float)
        table.loc[name, "Mean"] = per_view.mean() if np.isfinite(per_view).all() else np.nan
    return table
