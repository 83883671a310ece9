"""Reproduced vs reported accuracies, side by side.

Reported numbers come as a tidy DataFrame, one line per (method, setting, condition) with
columns ``method``, ``setting``, ``condition``, the probe views as strings (``'000'``, ...)
and ``Mean`` (``setting`` may be absent). Reproduced numbers are an
:class:`~gaitlib.evaluation.EvaluationResult` (or anything with ``.table`` and optionally
``.ci``, such as a recorded result), or a bare table DataFrame (no CI then).

Labels (method, setting, condition) match ignoring case and whitespace, nothing more: a
typo fails with a ``KeyError`` that lists what there is, instead of silently comparing with
the wrong line.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# Conditions that stand for "the paper gives only an overall mean" in a reported table.
OVERALL = ("", "mean", "all", "average", "avg", "overall", "nan", "none")
DASH = "\N{EM DASH}"


def _key(label) -> str:
    """Case- and whitespace-insensitive form of a label."""
    return "".join(str(label).split()).casefold()


def _table_and_ci(reproduced) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, ci) from an EvaluationResult-like object or a bare table."""
    if isinstance(reproduced, pd.DataFrame):
        table = reproduced
        ci = None
    elif hasattr(reproduced, "table"):
        table, ci = reproduced.table, getattr(reproduced, "ci", None)
    else:
        raise TypeError(f"expected an EvaluationResult or a DataFrame, got {type(reproduced).__name__}")
    if "Mean" not in table.columns:
        raise ValueError(f"reproduced table has no 'Mean' column (columns: {list(table.columns)})")
    if ci is None:
        ci = pd.DataFrame(np.nan, index=table.index, columns=["low", "high"])
    return table, ci.reindex(index=table.index, columns=["low", "high"])


def _check_reported(reported: pd.DataFrame) -> None:
    missing = [c for c in ("method", "condition", "Mean") if c not in reported.columns]
    if missing:
        raise ValueError(f"reported table lacks column(s) {missing}; it has {list(reported.columns)}")


def _listing(values) -> str:
    seen = list(dict.fromkeys(str(v) for v in values))
    return ", ".join(repr(v) for v in seen) or "(none)"


def _select(reported: pd.DataFrame, column: str, label: str, what: str,
            within: str = "") -> pd.DataFrame:
    """Rows of ``reported`` whose ``column`` matches ``label``; KeyError listing the choices."""
    if column not in reported.columns:
        raise KeyError(f"reported table has no {column!r} column to find {what} {label!r} in")
    hit = reported[reported[column].map(_key) == _key(label)]
    if hit.empty:
        raise KeyError(f"{what} {label!r} not in the reported table{within}; "
                       f"available: {_listing(reported[column])}")
    return hit


def _by_condition(rows: pd.DataFrame, context: str) -> dict[str, pd.Series]:
    """Normalised condition -> its one reported line (ValueError if a condition repeats)."""
    keys = rows["condition"].map(lambda c: "" if pd.isna(c) else _key(c))
    dup = sorted(set(keys[keys.duplicated()]))
    if dup:
        detail = ""
        if "setting" in rows.columns:
            detail = f"; settings there: {_listing(rows['setting'])} (pass setting=...)"
        raise ValueError(f"{context}: condition(s) {dup} appear more than once{detail}")
    return {k: row for k, (_, row) in zip(keys, rows.iterrows(), strict=True)}


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def ci_text(low: float, high: float, digits: int = 1, missing: str = DASH) -> str:
    """A CI for display, ``'[low, high]'`` (``missing`` when either bound is NaN or None).
    Tables keep the bounds as numbers; only display turns them into text."""
    low, high = _float(low), _float(high)
    if np.isnan(low) or np.isnan(high):
        return missing
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def compare_with_reported(reproduced, reported: pd.DataFrame, method: str,
                          setting: str | None = None) -> pd.DataFrame:
    """One line per condition (NM/BG/CL, or miss/discard): the paper's Mean, the reproduced
    Mean, their difference (reproduced - reported), the reproduced 95% CI and the reproduced
    per-view accuracies.

    ``method`` (and ``setting``, when the paper reports several, e.g. ``'64x44'``) select
    the reported lines. Conditions only one side has get NaN on the other side.
    """
    _check_reported(reported)
    table, ci = _table_and_ci(reproduced)
    rows = _select(reported, "method", method, "method")
    if setting is not None:
        rows = _select(rows, "setting", setting, "setting", within=f" for method {method!r}")
    paper = _by_condition(rows, f"method {method!r}" + (f", setting {setting!r}" if setting else ""))

    views = [c for c in table.columns if c != "Mean"]
    names = list(table.index)
    extra = [str(r["condition"]) for k, r in paper.items()
             if k not in {_key(n) for n in names} and k not in OVERALL]
    out = []
    for name in names + extra:
        line = paper.get(_key(name))
        rep = table.loc[name] if name in table.index else None
        reported_mean = _float(line["Mean"]) if line is not None else math.nan
        reproduced_mean = _float(rep["Mean"]) if rep is not None else math.nan
        low, high = ci.loc[name] if name in ci.index else (np.nan, np.nan)
        out.append({"condition": name, "reported": reported_mean, "reproduced": reproduced_mean,
                    "delta": reproduced_mean - reported_mean, "ci_low": _float(low),
                    "ci_high": _float(high),
                    **{v: (_float(rep[v]) if rep is not None else math.nan) for v in views}})
    df = pd.DataFrame(out).set_index("condition")
    df.attrs.update(method=str(method), setting=setting)
    return df


def _is_delta(column) -> bool:
    return "delta" in str(column).casefold() or str(column).startswith("\N{GREEK CAPITAL LETTER DELTA}")


def _frame(table) -> pd.DataFrame:
    """A comparison frame, or an ablation's
    :meth:`~gaitlib.analysis.ablation.AblationResult.to_frame` (its method in ``attrs``, for the
    caption)."""
    if not isinstance(table, pd.DataFrame):
        frame = table.to_frame()
        frame.attrs["method"] = table.method
        return frame
    return table


def format_comparison(df, digits: int = 1) -> pd.DataFrame:
    """Strings for display: numbers to ``digits`` decimals, deltas signed, NaN as a dash,
    each pair of CI bounds (``ci_low``/``ci_high``, ``<c> ci_low``/``<c> ci_high``) merged into
    one '95% CI' (``<c> 95% CI``) column."""
    df = _frame(df).copy()
    for low_col in [c for c in df.columns if str(c).endswith("ci_low")]:
        prefix = str(low_col)[: -len("ci_low")]
        high_col = f"{prefix}ci_high"
        if high_col not in df.columns:
            continue
        pos = list(df.columns).index(low_col)
        text = [ci_text(lo, hi, digits) for lo, hi in zip(df[low_col], df[high_col], strict=True)]
        df = df.drop(columns=[low_col, high_col])
        df.insert(pos, f"{prefix}95% CI", text)
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        if pd.api.types.is_numeric_dtype(df[col]):
            fmt = f"{{:+.{digits}f}}" if _is_delta(col) else f"{{:.{digits}f}}"
            out[col] = [DASH if pd.isna(v) else fmt.format(v) for v in df[col]]
        else:
            out[col] = df[col].fillna(DASH).astype(str)
    out.attrs.update(df.attrs)
    return out


def style_comparison(df, digits: int = 1):
    """A pandas Styler of a comparison or ablation table for Jupyter Book HTML: one decimal,
    signed deltas, deltas shaded by sign. Falls back to :func:`format_comparison`'s strings
    when jinja2 (needed by Styler) is missing."""
    df = _frame(df)
    shown = format_comparison(df, digits)
    try:
        styler = shown.style
    except ImportError:
        return shown
    deltas = [c for c in df.columns if _is_delta(c) and c in shown.columns]

    def shade(column: pd.Series) -> list[str]:
        values = pd.to_numeric(df[column.name], errors="coerce")
        return ["" if pd.isna(v) else ("color: #1a7f37" if v >= 0 else "color: #b42318")
                for v in values]

    if deltas:
        styler = styler.apply(shade, subset=deltas)
    caption = " ".join(str(v) for v in (df.attrs.get("method"), df.attrs.get("setting")) if v)
    if caption:
        styler = styler.set_caption(caption)
    return styler.set_table_styles([{"selector": "td", "props": "text-align: right;"}])


__all__ = ["ci_text", "compare_with_reported", "format_comparison", "style_comparison"]
