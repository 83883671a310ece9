"""Tables, plots and notes for the book: how an artifact's comparison is shown.

:func:`show` styles a comparison, ablation or per-view table (compacting an ablation with
:func:`compact_ablation`, captioned by :func:`caption_for`); :func:`show_paired` the paired deltas
of an ablation; :func:`plot_ablation` draws its rows; :func:`ordering_note` and
:func:`paired_note` say in markdown how its rows order against the paper's and which claimed
deltas are resolved.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CAPTIONS = {
    "main": "Mean rank-1 (%) per condition: 'reproduced' is this page's run with its 95% CI, "
            "'reported' the paper's number, delta = reproduced - reported; methods gaitlib does "
            "not implement have the paper's numbers only.",
    "ablation": "Mean rank-1 (%) per condition and ablation row: this page's run with its 95% CI, "
                "then the paper's number ('paper') and the difference ('delta').",
}


def caption_for(table: pd.DataFrame) -> str:
    """The default caption of a table :func:`show` displays (its ``attrs['caption']`` first)."""
    if table.attrs.get("caption"):
        return str(table.attrs["caption"])
    if "Mean reproduced" in table.columns:
        return CAPTIONS["ablation"]
    if {"reproduced", "reported"} <= set(table.columns):
        return CAPTIONS["main"]
    return ""


def show(table: pd.DataFrame, caption: str | None = None):
    """A comparison, ablation or per-view table styled for the book (one decimal, signed
    deltas), with a caption saying what is reproduced and what is reported (``caption``, else
    :func:`caption_for`).  An ablation table is shown compactly: per condition the reproduced
    mean with its CI in one cell, then the paper's number and the delta."""
    from gaitlib.report.tables import style_comparison

    caption = caption_for(table) if caption is None else caption
    if "Mean reproduced" in table.columns:
        table = compact_ablation(table)
    styled = style_comparison(table)
    words = [c for c in table.columns if c in ("what", "paper's model", "page shows",
                                                "ordering against the paper", "paper scale")]
    if hasattr(styled, "set_properties"):
        if words:  # text columns read better left-aligned
            styled = styled.set_properties(subset=words, **{"text-align": "left"})
        if caption:
            styled = styled.set_caption(caption)
        if "source" in (table.index.names or []):  # per-view: the paper's rows in grey italics
            paper = [i for i, key in enumerate(table.index) if key[-1] == "paper"]
            styled = styled.apply(lambda col: ["color: #555; font-style: italic"
                                               if i in paper else "" for i in range(len(col))])
    return styled


def compact_ablation(table: pd.DataFrame) -> pd.DataFrame:
    """``<c> reproduced`` and ``<c> 95% CI`` merged into one text column ``<c>``; ``<c> paper``
    and ``<c> delta`` kept numeric."""
    out = pd.DataFrame(index=table.index)
    conditions = [c[: -len(" reproduced")] for c in table.columns if c.endswith(" reproduced")]
    for c in conditions:
        ci = table.get(f"{c} 95% CI")
        out[c] = [f"{v:.1f} {t}" if _parse_ci(t) else ("" if v != v else f"{v:.1f}")
                  for v, t in zip(table[f"{c} reproduced"],
                                  ci if ci is not None else [None] * len(table), strict=True)]
        out[f"{c} paper"] = table[f"{c} reported"]
        out[f"{c} delta"] = table[f"{c} delta"]
    out.attrs.update(table.attrs)
    return out


def ordering_note(table: pd.DataFrame) -> str:
    """Markdown: does the reproduced ablation order the rows as the paper does?  Kendall's tau
    between the reproduced and the reported means, with a one-sided permutation p-value."""
    from gaitlib.report.tables import kendall_permutation

    both = table[["Mean reproduced", "Mean reported"]].dropna()
    if len(both) < 3:
        return "Too few rows with reported means to compare orderings."
    tau, p = kendall_permutation(both["Mean reproduced"], both["Mean reported"])
    best_paper = both["Mean reported"].idxmax()
    best_ours = both["Mean reproduced"].idxmax()
    widths = [_ci_width(table.loc[i]) for i in both.index]
    return (f"Rank agreement (Kendall's tau) between the reproduced and the reported means over "
            f"the {len(both)} rows: **{tau:.2f}**, permutation p = {p:.2g} (the share of all "
            f"orderings of the rows that agree with the paper's at least as well; small p: the "
            f"agreement is unlikely by chance). The paper's best row is *{best_paper}*; here it "
            f"is *{best_ours}*. The typical 95% CI of a reproduced condition mean is about "
            f"±{np.nanmedian(widths) / 2:.1f} points; the paired deltas below are the sharper "
            f"test of each row against the reference.")


def show_paired(table: pd.DataFrame):
    """The paired deltas of an ablation table (see :func:`gaitlib.report.tables.paired_cells`),
    styled for the book, with a caption naming the reference row."""
    from gaitlib.report.tables import paired_cells

    cells = paired_cells(table)
    info = table.attrs["paired"]
    try:
        styled = cells.style
    except ImportError:
        return cells
    caption = (f"Paired delta against \"{info['reference']}\" (reproduced, 95% bootstrap CI over "
               f"the shared test subjects; * = CI excludes 0) and the paper's delta")
    return styled.set_caption(caption).set_table_styles(
        [{"selector": "td", "props": "text-align: right;"}])


def paired_note(table: pd.DataFrame) -> str:
    """Markdown: which rows' paired deltas against the reference are resolved (CI excludes 0)
    and whether they point the paper's way; with extra seeds, the verdict on each claimed delta
    (:mod:`gaitlib.report.claims`: the paper's sign, CI excluding 0 and beyond two seed SDs)."""
    from gaitlib.report import claims

    info = table.attrs.get("paired")
    if not info:
        return ""
    found = claims.of_table("", table)
    mean = found[found["condition"] == "Mean"] if not found.empty else found
    rows = len([r for r in info["rows"] if r != info["reference"]])
    same_sign = (mean["delta"] > 0) == (mean["paper delta"] > 0)
    agree = int((mean["ci excludes 0"] & same_sign).sum()) if len(mean) else 0
    contra = int((mean["ci excludes 0"] & ~same_sign).sum()) if len(mean) else 0
    text = (f"Against the reference row *{info['reference']}*, on the mean over conditions: {agree} "
            f"row(s) differ in the paper's direction with a 95% paired CI that excludes 0, {contra} "
            f"differ in the opposite direction, {rows - agree - contra} are not resolved by this "
            f"run. The pairing resamples the test subjects once for both rows, so shared "
            f"difficulty cancels; it does not cover seed-to-seed variation of training.")
    seeds = len(table.attrs.get("seeds", [0]))
    if seeds == 1:
        return text + (" No extra seeds ran for this page, so training noise is unknown and no "
                       "claim is settled here (`gaitlib reproduce --extra-seeds 1,2,3,4`).")
    counts = mean["verdict"].value_counts()
    full = mean.iloc[-1:]  # the full model is an ablation's last row
    verdicts = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in claims.VERDICTS)
    text += (f"\n\nWith {seeds} seeds of the reference row and the full model, the seed SD of a "
             f"delta joins the CI. The paper's claimed deltas (mean over conditions): {verdicts} "
             f"(supported: the paper's sign, a CI that excludes 0 and more than two seed SDs).")
    if len(full):
        line = full.iloc[0]
        text += (f" The full model's delta, {line['delta']:+.1f} against the paper's "
                 f"{line['paper delta']:+.1f} with two seed SDs of {2 * line['seed SD of delta']:.1f},"
                 f" is **{line['verdict']}**.")
    return text


def _parse_ci(text) -> tuple[float, float] | None:
    """``(low, high)`` of a CI cell written as ``'[low, high]'`` (gaitlib.report.tables), else None."""
    if not isinstance(text, str) or not text.startswith("["):
        return None
    low, high = (float(x) for x in text.strip("[]").split(","))
    return low, high


def _ci_width(line: pd.Series) -> float:
    cis = [_parse_ci(text) for col, text in line.items() if str(col).endswith("95% CI")]
    widths = [high - low for low, high in filter(None, cis)]
    return float(np.mean(widths)) if widths else np.nan


def plot_ablation(table: pd.DataFrame, title: str = ""):
    """Grouped bars of the reproduced means per condition (with 95% CIs) and the paper's means
    as black markers, one group per ablation row."""
    import matplotlib.pyplot as plt

    conditions = [c[: -len(" reproduced")] for c in table.columns
                  if c.endswith(" reproduced") and not c.startswith("Mean")]
    n, m = len(table), len(conditions)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * n + 2), 3.6))
    width = 0.8 / max(m, 1)
    x = np.arange(n)
    for j, cond in enumerate(conditions):
        pos = x - 0.4 + width * (j + 0.5)
        vals = table[f"{cond} reproduced"].to_numpy(float)
        errs = np.array([_err(t, v) for t, v in zip(table[f"{cond} 95% CI"], vals, strict=True)]).T
        ax.bar(pos, vals, width, label=f"{cond} reproduced", yerr=errs, capsize=2, alpha=0.85)
        rep = table[f"{cond} reported"].to_numpy(float)
        ax.scatter(pos, rep, marker="_", s=200, color="black", zorder=3,
                   label="reported" if j == 0 else None)
    ax.set_xticks(x, [str(i) for i in table.index], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("rank-1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=m + 1, loc="lower right")
    fig.tight_layout()
    return fig


def _err(text, value: float) -> tuple[float, float]:
    ci = _parse_ci(text)
    if ci is None:
        return (0.0, 0.0)
    return (max(value - ci[0], 0.0), max(ci[1] - value, 0.0))
