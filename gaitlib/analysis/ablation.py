"""An ablation table as numbers: each row's reproduced and reported means per condition, its
seed-to-seed SD and its paired delta against the table's reference row.

:func:`ablation_table` builds an :class:`AblationResult` from the rows' evaluations and the
paper's table (labels matched as :mod:`gaitlib.analysis.tables` matches them);
:meth:`AblationResult.to_frame` is its display and record form, :func:`paired_cells` the paired
deltas as text cells.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from gaitlib.analysis.tables import (
    DASH,
    OVERALL,
    _by_condition,
    _check_reported,
    _float,
    _key,
    _listing,
    _select,
    _table_and_ci,
)


def _paper_means(rows: pd.DataFrame, conditions: list[str], label: str) -> dict[str, float]:
    """Reported Mean per condition, plus 'Mean' (the paper's overall mean if it gives one,
    else the mean of the per-condition numbers when all of them are there)."""
    paper = _by_condition(rows, f"ablation row {label!r}")
    means = {c: _float(paper[_key(c)]["Mean"]) if _key(c) in paper else math.nan
             for c in conditions}
    overall = [_float(r["Mean"]) for k, r in paper.items() if k in OVERALL]
    if overall:
        means["Mean"] = overall[0]
    else:
        vals = list(means.values())
        means["Mean"] = float(np.mean(vals)) if vals and not np.isnan(vals).any() else math.nan
    return means


def _reported_rows(reported: pd.DataFrame, key: str, method: str | None) -> pd.DataFrame:
    """Reported lines of one ablation row: ``setting == key`` (within ``method`` if given),
    or, without a method, ``method == key``."""
    if method is not None:
        rows = _select(reported, "method", method, "method")
        return _select(rows, "setting", key, "ablation row", within=f" for method {method!r}")
    if "setting" in reported.columns:
        hit = reported[reported["setting"].map(_key) == _key(key)]
        if not hit.empty:
            return hit
    hit = reported[reported["method"].map(_key) == _key(key)]
    if hit.empty:
        settings = _listing(reported["setting"]) if "setting" in reported.columns else "(none)"
        raise KeyError(f"ablation row {key!r} matches no setting or method in the reported table; "
                       f"settings: {settings}; methods: {_listing(reported['method'])}")
    return hit


def _primary(result):
    """The result shown for a row: the first of several seeds."""
    return result[0] if isinstance(result, (list, tuple)) else result


def _seed_sd(result, conditions: list[str]) -> dict[str, float]:
    """Seed-to-seed SD (ddof 1) of each condition's Mean and of their mean; NaN for one seed."""
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(results) < 2:
        return {c: math.nan for c in [*conditions, "Mean"]}
    tables = [_table_and_ci(r)[0] for r in results]
    out = {c: float(np.std([_float(t.loc[c, "Mean"]) for t in tables], ddof=1))
           for c in conditions}
    out["Mean"] = float(np.std([float(t["Mean"].mean()) for t in tables], ddof=1))
    return out


@dataclass(frozen=True)
class PairedDelta:
    """One ablation row's accuracy minus the reference row's, on the same test subjects.

    ``low``/``high``: its 95% paired-bootstrap interval (NaN where the runs have no per-subject
    counts, and for the reference row itself); ``paper``: the same difference in the paper's
    table; ``seed_sd``: the seed-to-seed SD of the row's accuracy (NaN with one seed)."""

    delta: float
    low: float
    high: float
    paper: float
    seed_sd: float = math.nan

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    def to_record(self) -> dict:
        """The JSON form a record keeps (numbers to 4 decimals, None for NaN)."""
        return {"delta": _json_num(self.delta),
                "delta_ci": None if math.isnan(self.low) else [_json_num(self.low),
                                                               _json_num(self.high)],
                "excludes_zero": self.excludes_zero, "paper_delta": _json_num(self.paper),
                "seed_sd": _json_num(self.seed_sd)}


@dataclass(frozen=True)
class AblationRow:
    """One row of an ablation table.  Dicts are keyed by condition (NM, BG, CL, ...) and
    'Mean' (the mean over conditions; it has no CI, and is left out of ``ci``)."""

    label: str
    reproduced: dict[str, float]
    ci: dict[str, tuple[float, float]]
    reported: dict[str, float]
    seed_sd: dict[str, float]
    paired: dict[str, PairedDelta] = field(default_factory=dict)  # empty without a reference

    def delta(self, condition: str) -> float:
        """Reproduced minus reported (NaN where the paper gives no number)."""
        return self.reproduced[condition] - self.reported[condition]


@dataclass(frozen=True)
class AblationResult:
    """An ablation table as numbers: its rows (in the paper's order), its conditions, and, with a
    ``reference`` row, every row's :class:`PairedDelta` against it.  The page context
    (``artifact``, ``profile``, ``iterations``, ``seeds``: every seed that ran when more than one)
    is set by :func:`gaitlib.report.compare.ablation`.  :meth:`to_frame` is the display and
    record form."""

    rows: tuple[AblationRow, ...]
    conditions: tuple[str, ...]
    reference: str | None = None
    bootstrap: int = 0
    seed: int = 0
    method: str | None = None
    artifact: str = ""
    profile: str = ""
    iterations: int | None = None
    seeds: tuple[int, ...] = ()

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.rows]

    def row(self, label: str) -> AblationRow:
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(f"no ablation row {label!r}; rows: {self.labels}")

    def __len__(self) -> int:
        return len(self.rows)

    def to_frame(self) -> pd.DataFrame:
        """One line per row, indexed by ``label``: per condition ``<c> reproduced``,
        ``<c> ci_low``, ``<c> ci_high``, ``<c> reported``, ``<c> delta``; ``Mean reproduced``,
        ``Mean reported``, ``Mean delta``; ``<c> seed SD`` (and for 'Mean'); with a reference,
        ``<c> paired delta`` / ``paired low`` / ``paired high`` / ``paper delta``.  Every cell
        is a number (NaN where missing)."""
        lines = []
        for r in self.rows:
            line: dict[str, object] = {"label": r.label}
            for c in self.conditions:
                line[f"{c} reproduced"] = r.reproduced[c]
                line[f"{c} ci_low"], line[f"{c} ci_high"] = r.ci[c]
                line[f"{c} reported"] = r.reported[c]
                line[f"{c} delta"] = r.delta(c)
            for key in ("reproduced", "reported"):
                line[f"Mean {key}"] = getattr(r, key)["Mean"]
            line["Mean delta"] = r.delta("Mean")
            for c in (*self.conditions, "Mean"):
                line[f"{c} seed SD"] = r.seed_sd[c]
            for c, d in r.paired.items():
                line[f"{c} paired delta"] = d.delta
                line[f"{c} paired low"] = d.low
                line[f"{c} paired high"] = d.high
                line[f"{c} paper delta"] = d.paper
            lines.append(line)
        return pd.DataFrame(lines).set_index("label")

    def paired_record(self) -> dict | None:
        """The paired deltas as a record keeps them (None without a reference row)."""
        if self.reference is None:
            return None
        return {"reference": self.reference, "bootstrap": int(self.bootstrap),
                "seed": int(self.seed),
                "rows": {r.label: {c: d.to_record() for c, d in r.paired.items()}
                         for r in self.rows}}


def ablation_table(rows: Mapping[str, object], reported: pd.DataFrame, method: str | None = None,
                   keys: Mapping[str, str] | None = None, reference: str | None = None,
                   bootstrap: int = 1000, seed: int = 0) -> AblationResult:
    """An ablation as an :class:`AblationResult`: per row (in ``rows``' order) and condition
    (NM, BG, CL, ...) and for 'Mean' (the mean over conditions) the reproduced mean, its 95% CI
    (conditions only: the Mean's is not bootstrapped jointly), the reported number and the
    seed-to-seed SD.

    ``rows``: label -> EvaluationResult (or table), or a list of them (several seeds of the
    row: the first is the one shown, all give the seed SD). A label is looked up in the
    reported table's ``setting`` column within ``method`` when given; without ``method``, in
    ``setting`` and then in ``method``. ``keys`` maps labels to different reported names.
    Where the paper gives only an overall number (a line whose condition is empty or 'Mean'),
    only the 'Mean' comparison is filled.

    ``reference``: the label of the row every other row is compared with (the paper's baseline
    row).  Each row then also gets a :class:`PairedDelta` per condition and for 'Mean' (row -
    reference, with its 95% paired bootstrap interval over the shared test subjects,
    ``bootstrap`` resamples: see :func:`gaitlib.evaluation.paired.paired_delta`, and the same
    difference in the paper's table).  Rows without per-subject counts (older evaluations) get
    the delta without an interval.
    """
    _check_reported(reported)
    if not rows:
        raise ValueError("no ablation rows given")
    if reference is not None and reference not in rows:
        raise KeyError(f"reference row {reference!r} is not one of the rows: {list(rows)}")
    keys = dict(keys or {})
    built = []
    conditions: list[str] = []
    for label, result in rows.items():
        table, ci = _table_and_ci(_primary(result))
        conditions = [str(c) for c in table.index]
        paper = _paper_means(_reported_rows(reported, keys.get(label, label), method), conditions,
                             label)
        means = {c: _float(table.loc[c, "Mean"]) for c in conditions}
        means["Mean"] = float(table["Mean"].mean()) if table["Mean"].notna().all() else math.nan
        built.append(AblationRow(
            label=label, reproduced=means,
            ci={c: (_float(ci.loc[c, "low"]), _float(ci.loc[c, "high"])) for c in conditions},
            reported=paper, seed_sd=_seed_sd(result, conditions)))
    out = AblationResult(tuple(built), tuple(conditions), method=method)
    if reference is None:
        return out
    return replace(out, rows=tuple(_with_paired(out, rows, reference, bootstrap, seed)),
                   reference=reference, bootstrap=int(bootstrap), seed=int(seed))


def _with_paired(table: AblationResult, results: Mapping[str, object], reference: str,
                 bootstrap: int, seed: int) -> list[AblationRow]:
    """The rows of ``table`` with their :class:`PairedDelta` against ``reference``."""
    from gaitlib.evaluation.paired import paired_delta

    ref = table.row(reference)
    out = []
    for row in table.rows:
        try:
            paired = (paired_delta(_primary(results[row.label]), _primary(results[reference]),
                                   bootstrap, seed) if row.label != reference else None)
        except (ValueError, AttributeError):  # no per-subject counts or another test set
            paired = None
        deltas = {}
        for c in (*table.conditions, "Mean"):
            if row.label == reference:
                delta, low, high = 0.0, math.nan, math.nan
            elif paired is not None and c in paired.index:
                delta, low, high = (float(paired.loc[c, k]) for k in ("delta", "low", "high"))
            else:
                delta, low, high = row.reproduced[c] - ref.reproduced[c], math.nan, math.nan
            deltas[c] = PairedDelta(delta, low, high, row.reported[c] - ref.reported[c],
                                    row.seed_sd[c])
        out.append(replace(row, paired=deltas))
    return out


def _json_num(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def paired_cells(table: AblationResult, digits: int = 1) -> pd.DataFrame:
    """Text cells of an ablation with a reference row: per condition
    ``"+1.2 [+0.3, +2.1]* (paper +0.8)"`` -- the paired delta against the reference row, its
    95% CI (``*`` where it excludes 0) and the paper's own delta; with several seeds of a row,
    ``"SD 0.4"`` follows (the seed-to-seed SD of the row's accuracy).  The reference row reads
    ``"reference"``."""
    if table.reference is None:
        raise ValueError("the table has no paired deltas (pass reference= to ablation_table)")
    out = pd.DataFrame(index=pd.Index(table.labels, name="label"))
    for c in (*table.conditions, "Mean"):
        cells = []
        for row in table.rows:
            d = row.paired[c]
            sd_text = "" if math.isnan(d.seed_sd) else f"; SD {d.seed_sd:.{digits}f}"
            if row.label == table.reference:
                cells.append("reference" + sd_text)
                continue
            text = DASH if math.isnan(d.delta) else f"{d.delta:+.{digits}f}"
            if not math.isnan(d.low):
                text += f" [{d.low:+.{digits}f}, {d.high:+.{digits}f}]" + \
                    ("*" if d.excludes_zero else "")
            text += " (paper " + (DASH if math.isnan(d.paper) else f"{d.paper:+.{digits}f}") + ")"
            cells.append(text + sd_text)
        out[c] = cells
    return out


__all__ = ["AblationResult", "AblationRow", "PairedDelta", "ablation_table", "paired_cells"]
