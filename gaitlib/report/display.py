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

from gaitlib.analysis.ablation import AblationResult
from gaitlib.report.evidence import ORDERING_COLUMN

# Inline style of table cells that hold sentences: they wrap instead of widening the table.
WRAP = {"white-space": "normal", "min-width": "14em", "padding-left": "0.8em"}

CAPTIONS = {
    "main": "Mean rank-1 (%) per condition: 'reproduced' is this page's run with its 95% CI and "
            "its mAP (%), 'reported' the paper's number, delta = reproduced - reported; methods "
            "gaitlib does not implement have the paper's numbers only; 'OpenGait' columns: "
            "OpenGait's model zoo for the baselines it trains.",
    "ablation": "Mean rank-1 (%) per condition and ablation row: this page's run with its 95% CI, "
                "then the paper's number ('paper') and the difference ('delta').",
}


def caption_for(table: pd.DataFrame | AblationResult) -> str:
    """The default caption of a table :func:`show` displays (its ``attrs['caption']`` first)."""
    if isinstance(table, AblationResult):
        return CAPTIONS["ablation"]
    if table.attrs.get("caption"):
        return str(table.attrs["caption"])
    if "Mean reproduced" in table.columns:
        return CAPTIONS["ablation"]
    if {"reproduced", "reported"} <= set(table.columns):
        return CAPTIONS["main"]
    return ""


def show(table: pd.DataFrame | AblationResult, caption: str | None = None,
         baselines: pd.DataFrame | None = None):
    """A comparison, ablation or per-view table styled for the book (one decimal, signed
    deltas), with a caption saying what is reproduced and what is reported (``caption``, else
    :func:`caption_for`).  An ablation table is shown compactly: per condition the reproduced
    mean with its CI in one cell, then the paper's number and the delta.  ``baselines``
    (:func:`gaitlib.report.scale.baselines`): chance and GEI lines appended, in grey."""
    from gaitlib.analysis.tables import style_comparison

    caption = caption_for(table) if caption is None else caption
    if isinstance(table, AblationResult):
        table = compact_ablation(table)
    extra = 0
    if baselines is not None and len(baselines):
        before = len(table)
        table = with_baselines(table, baselines)
        extra = len(table) - before
    styled = style_comparison(table)
    words = [c for c in table.columns if c in ("what", "paper's model", "page shows",
                                                ORDERING_COLUMN, "paper scale", "verdict",
                                                "scale", "full model")]
    if hasattr(styled, "set_properties"):
        if words:  # text columns read better left-aligned, and wrap (the book's CSS keeps
            # number cells on one line); 'td.colN' outranks the table's right-aligned 'td'
            props = "; ".join(f"{k}: {v}" for k, v in {**WRAP, "text-align": "left"}.items())
            styled = styled.set_table_styles(
                [{"selector": f"td.col{list(table.columns).index(c)}", "props": props}
                 for c in words], overwrite=False)
        if caption:
            styled = styled.set_caption(caption)
        grey = []
        if "source" in (table.index.names or []):  # per-view: the paper's rows in grey italics
            grey = [i for i, key in enumerate(table.index) if key[-1] == "paper"]
        if extra:  # the baselines: the last lines
            grey = list(range(len(table) - extra, len(table)))
        if grey:
            styled = styled.apply(lambda col: ["color: #555; font-style: italic"
                                               if i in grey else "" for i in range(len(col))])
    return styled


def with_baselines(table: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """``table`` (a main table, or an ablation after :func:`compact_ablation`) with the chance
    and GEI lines of :func:`gaitlib.report.scale.baselines` appended; they have no paper number."""
    if "condition" in (table.index.names or []):  # main table: (method, setting, condition)
        lines = baselines.assign(setting="").set_index(["method", "setting", "condition"])
        return pd.concat([table, lines.reindex(columns=table.columns)])
    rows = []
    for method, part in baselines.groupby("method", sort=False):
        values = part.set_index("condition")["reproduced"]
        line = {f"{c}": f"{values[c]:.1f}" for c in values.index}
        if "Mean" in table.columns:
            line["Mean"] = f"{values.mean():.1f}"
        rows.append(pd.Series(line, name=method))
    return pd.concat([table, pd.DataFrame(rows).reindex(columns=table.columns)])


def compact_ablation(table: AblationResult) -> pd.DataFrame:
    """An ablation for display, one line per row: per condition and for 'Mean' the reproduced
    mean with its CI as text (``<c>``), the paper's number (``<c> paper``) and the delta
    (``<c> delta``), both numeric."""
    from gaitlib.analysis.tables import ci_text

    lines = []
    for row in table.rows:
        line: dict[str, object] = {}
        for c in (*table.conditions, "Mean"):
            value = row.reproduced[c]
            shown = ci_text(*row.ci[c], missing="") if c in row.ci else ""
            line[c] = "" if value != value else f"{value:.1f} {shown}".rstrip()
            line[f"{c} paper"] = row.reported[c]
            line[f"{c} delta"] = row.delta(c)
        lines.append(line)
    out = pd.DataFrame(lines, index=pd.Index(table.labels, name="label"))
    out.attrs["method"] = table.method
    return out


def ordering_note(table: pd.DataFrame | AblationResult) -> str:
    """Markdown: do the reproduced rows order as the paper's?  The one sentence of
    :meth:`gaitlib.analysis.ordering.Ordering.summary` (Kendall's tau with its permutation
    p-value), and which row is best in each."""
    from gaitlib.analysis.ordering import ordering

    found = ordering(table)
    text = found.summary() + "."
    if found.rows >= 2:
        text += (f" The paper's best row is *{found.best_paper}*; this edition's is "
                 f"*{found.best_here}*.")
    return text


def show_paired(table: AblationResult):
    """The paired deltas of an ablation table (see :func:`gaitlib.analysis.tables.paired_cells`),
    styled for the book, with a caption naming the reference row."""
    from gaitlib.analysis.ablation import paired_cells

    cells = paired_cells(table)
    try:
        styled = cells.style
    except ImportError:
        return cells
    caption = (f"Paired delta against \"{table.reference}\" (reproduced, 95% bootstrap CI over "
               f"the shared test subjects; * = CI excludes 0) and the paper's delta")
    return styled.set_caption(caption).set_table_styles(
        [{"selector": "td", "props": "text-align: right; white-space: normal; min-width: 9em;"}])


def paired_note(table: AblationResult) -> str:
    """Markdown: which of the paper's own rows differ from the reference beyond the paired CI
    and whether they point the paper's way; with extra seeds, what each claimed delta shows
    against seed noise (:mod:`gaitlib.analysis.claims`), in words that fit the scale of the runs:
    verdicts at the paper's scale, what was seen at a cheap profile."""
    from gaitlib.analysis import claims

    if table.reference is None:
        return ""
    aid, profile, reference = table.artifact, table.profile, table.reference
    scale = claims.scale_words(profile, table.iterations)
    found = claims.of_table(aid, table, profile=profile, iterations=table.iterations)
    mean = found[found["condition"] == "Mean"] if not found.empty else found
    own = claims.claimed_rows(aid) if aid else table.labels
    rows = len([r for r in table.labels if r != reference and r in own])
    same_sign = (mean["delta"] > 0) == (mean["paper delta"] > 0)
    agree = int((mean["ci excludes 0"] & same_sign).sum()) if len(mean) else 0
    contra = int((mean["ci excludes 0"] & ~same_sign).sum()) if len(mean) else 0
    others = [r for r in table.labels if r not in own]
    text = (f"Against the reference row *{reference}*, on the mean over conditions"
            f"{', ' + scale if scale else ''}: of the paper's {rows} other rows, {agree} differ "
            f"in the paper's direction with a 95% paired CI that excludes 0, {contra} in the "
            f"opposite direction, {rows - agree - contra} are not resolved. The pairing "
            "resamples the test subjects once for both rows, so shared difficulty cancels; it "
            "does not cover seed-to-seed variation of training.")
    if others:
        text += (f" {', '.join(others)}: another paper's model{'s' if len(others) > 1 else ''}, "
                 "shown for comparison; the paper claims no delta for "
                 f"{'them' if len(others) > 1 else 'it'}.")
    seeds = max(1, len(table.seeds))
    if seeds == 1:
        return text + (" No extra seeds ran for this page, so training noise is unknown and no "
                       "claim is settled here (`gaitlib reproduce --extra-seeds 1,2,3,4`).")
    counts = mean["outcome"].value_counts()
    full = mean.iloc[-1:]  # the full model is an ablation's last row
    seen = "; ".join(f"{int(counts.get(o, 0))} {claims.verdict_words(o, profile)}"
                     for o in claims.OUTCOMES)
    text += (f"\n\nWith {seeds} seeds of the reference row and the full model, the seed SD of a "
             f"delta joins the CI. The paper's claimed deltas (mean over conditions)"
             f"{', ' + scale if scale else ''}: "
             f"{seen} (beyond seed noise: the CI excludes 0 and the delta exceeds two seed SDs).")
    if len(full):
        line = full.iloc[0]
        text += (f" The full model's delta is {line['delta']:+.1f} against the paper's "
                 f"{line['paper delta']:+.1f}, with two seed SDs of "
                 f"{2 * line['seed SD of delta']:.1f}: **{line['verdict']}**"
                 f"{', ' + scale if scale else ''}.")
    if profile != "paper":
        text += (" Runs this short (see the scale above) show how each switch changes training "
                 "far from convergence, not whether the paper's converged numbers hold: only "
                 "paper-scale runs can support or contradict its claims.")
    return text


def plot_ablation(table: AblationResult, title: str = ""):
    """Grouped bars of the reproduced means per condition (with 95% CIs) and the paper's means
    as black markers, one group per ablation row."""
    import matplotlib.pyplot as plt

    conditions = table.conditions
    n, m = len(table), len(conditions)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * n + 2), 3.6))
    width = 0.8 / max(m, 1)
    x = np.arange(n)
    for j, cond in enumerate(conditions):
        pos = x - 0.4 + width * (j + 0.5)
        vals = np.array([r.reproduced[cond] for r in table.rows], float)
        low, high = np.array([r.ci[cond] for r in table.rows], float).T
        errs = np.nan_to_num(np.stack([vals - low, high - vals]), nan=0.0).clip(min=0.0)
        ax.bar(pos, vals, width, label=f"{cond} reproduced", yerr=errs, capsize=2, alpha=0.85)
        rep = np.array([r.reported[cond] for r in table.rows], float)
        ax.scatter(pos, rep, marker="_", s=200, color="black", zorder=3,
                   label="reported" if j == 0 else None)
    ax.set_xticks(x, table.labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("rank-1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=m + 1, loc="lower right")
    fig.tight_layout()
    return fig

