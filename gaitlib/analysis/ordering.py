"""Do a table's rows order as the paper's?  One statistic answers it everywhere in the book:
Kendall's tau-b between the reproduced and the reported row means, with its one-sided
permutation p-value.

A table comes as the pages show or record it (:mod:`gaitlib.analysis.tables`): an ablation
(``<c> reproduced``, ``<c> ci_low``, ``<c> ci_high``, ``<c> reported`` per condition, indexed by
``label``) or a main table (``method``, ``setting``, ``condition``, ``reproduced``, ``ci_low``,
``ci_high``, ``reported``).  :func:`long_form` puts either in one shape.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gaitlib.analysis.ablation import AblationResult


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def long_form(table: pd.DataFrame | AblationResult) -> pd.DataFrame:
    """A main or ablation table (an :class:`~gaitlib.analysis.tables.AblationResult`, or a
    frame as recorded) in long form: one line per (row, condition) with ``reproduced``, ``low``,
    ``high`` (95% CI) and ``reported``; rows that were not reproduced are dropped."""
    if isinstance(table, AblationResult):
        table = table.to_frame()
    flat = table.reset_index() if not isinstance(table.index, pd.RangeIndex) else table
    lines = []
    if "label" in flat.columns:  # ablation
        conditions = [c[: -len(" reproduced")] for c in flat.columns
                      if str(c).endswith(" reproduced") and not str(c).startswith("Mean")]
        for _, line in flat.iterrows():
            for c in conditions:
                lines.append({"row": str(line["label"]), "condition": c,
                              "reproduced": _num(line.get(f"{c} reproduced")),
                              "low": _num(line.get(f"{c} ci_low")),
                              "high": _num(line.get(f"{c} ci_high")),
                              "reported": _num(line.get(f"{c} reported"))})
    elif {"method", "condition", "reproduced"} <= set(flat.columns):
        for _, line in flat.iterrows():
            setting = str(line.get("setting") or "")
            lines.append({"row": f"{line['method']} {setting}".strip(),
                          "condition": str(line["condition"]),
                          "reproduced": _num(line["reproduced"]), "low": _num(line.get("ci_low")),
                          "high": _num(line.get("ci_high")), "reported": _num(line.get("reported"))})
    else:
        raise ValueError(f"not a main or ablation table: columns {list(flat.columns)}")
    out = pd.DataFrame(lines, columns=["row", "condition", "reproduced", "low", "high", "reported"])
    return out[out["reproduced"].notna()].reset_index(drop=True)


def _tau_b(sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Kendall's tau-b from pair signs (..., pairs) of two rankings (ties give sign 0)."""
    pairs = sx.shape[-1]
    denom = np.sqrt((pairs - (sx == 0).sum(-1)) * (pairs - (sy == 0).sum(-1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sx * sy).sum(-1) / denom


def kendall_permutation(x, y, permutations: int = 20000, seed: int = 0) -> tuple[float, float]:
    """Kendall's tau-b between ``x`` and ``y`` and its one-sided permutation p-value: the share
    of orderings of ``x`` that agree with ``y`` at least as well (exact over all n! orderings
    for n <= 8; else ``permutations`` random ones, counting the observed one, so p > 0).  Small
    n makes the p-value coarse: with 3 rows the smallest possible p is 1/6."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if len(y) != n or n < 2:
        raise ValueError("need two equal-length sequences of at least 2 values")
    i, j = np.triu_indices(n, k=1)
    sy = np.sign(y[i] - y[j])
    tau = float(_tau_b(np.sign(x[i] - x[j]), sy))
    if math.isnan(tau):
        return tau, math.nan
    if n <= 8:
        perms = np.array(list(itertools.permutations(range(n))))
        extra = 0
    else:
        rng = np.random.default_rng(seed)
        perms = np.stack([rng.permutation(n) for _ in range(permutations)])
        extra = 1
    xp = x[perms]
    taus = np.nan_to_num(_tau_b(np.sign(xp[:, i] - xp[:, j]), sy), nan=-2.0)
    return tau, float((np.sum(taus >= tau - 1e-12) + extra) / (len(perms) + extra))



@dataclass
class Ordering:
    """Do this page's rows order as the paper's?  The book answers with one statistic:
    Kendall's tau-b between the reproduced and the reported row means, with its exact one-sided
    permutation p-value (:func:`kendall_permutation`).

    ``rows``: rows with a reproduced and a reported mean; ``tau`` and ``p`` (NaN under 3 rows);
    ``best_paper``/``best_here``: the top row by mean in the paper and here.
    """

    rows: int
    tau: float
    p: float
    best_paper: str
    best_here: str

    def summary(self) -> str:
        """The sentence every page, the scorecard and the evidence summary print."""
        if self.rows < 3 or math.isnan(self.tau):
            return (f"{self.rows} reproduced row{'s' if self.rows != 1 else ''} with a paper "
                    "number: too few to compare orderings")
        return (f"Kendall's tau between this edition's and the paper's row means: "
                f"{self.tau:+.2f} over {self.rows} rows; a random ordering of the rows agrees "
                f"with the paper's at least as well with probability p = {self.p:.2g}")

    def cell(self) -> str:
        """:meth:`summary` for a table cell: the same statistic, in a few words."""
        if self.rows < 3 or math.isnan(self.tau):
            return f"{self.rows} row{'s' if self.rows != 1 else ''}: too few to compare"
        return f"tau {self.tau:+.2f} over {self.rows} rows (p = {self.p:.2g})"


def ordering(table: pd.DataFrame | AblationResult) -> Ordering:
    """Compare the reproduced ordering of a table's rows with the paper's (see :class:`Ordering`);
    a row's mean is taken over the conditions where both sides have a number."""
    data = long_form(table)
    both = data[data["reported"].notna()]
    means = both.groupby("row", sort=False)[["reproduced", "reported"]].mean()
    tau = p = math.nan
    if len(means) >= 3:
        tau, p = kendall_permutation(means["reproduced"], means["reported"])

    def best(col: str) -> str:
        return str(means[col].idxmax()) if len(means) else ""

    return Ordering(len(means), tau, p, best("reported"), best("reproduced"))


__all__ = ["Ordering", "kendall_permutation", "long_form", "ordering"]
