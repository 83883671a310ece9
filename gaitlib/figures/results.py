"""Figures of results: view x view heatmaps, t-SNE of embeddings, accuracy against parameters."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, NullFormatter

from gaitlib.figures._common import declare_frames, identity_colours, numpy_array


def plot_view_heatmaps(result, title: str = "", *, cmap: str = "viridis", digits: int = 0) -> Figure:
    """One annotated probe x gallery heatmap per row of an EvaluationResult (NM/BG/CL, or
    miss/discard). The identical-view diagonal, which no mean uses, is hatched and left
    blank. Axes: one per row plus a shared colour bar."""
    rows = list(result.table.index)
    if not rows:
        raise ValueError("the result has no rows")
    n_views = max(len(result.view_accuracy[r]) for r in rows)
    colours = mpl.colormaps[cmap].with_extremes(bad="white")
    norm = Normalize(0, 100)
    # One panel per row, stacked: side by side, three 11-view panels are scaled down to a third of
    # a book page and their labels become unreadable; stacked, each keeps 9 pt labels at ~100 %.
    size = 0.45 * n_views + 1.0
    fig, axes = plt.subplots(len(rows), 1, squeeze=False, figsize=(size + 1.4, (size + 0.5) * len(rows)),
                             layout="constrained")
    axes = axes.T
    font = 9.0
    image = None
    for ax, row in zip(axes[0], rows, strict=True):
        acc = result.view_accuracy[row]
        values = acc.to_numpy(dtype=float)
        v = len(acc)
        shown = values.copy()
        np.fill_diagonal(shown, np.nan)
        image = ax.imshow(np.ma.masked_invalid(shown), cmap=colours, norm=norm)
        for i in range(v):
            ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, facecolor="0.85", edgecolor="0.45",
                                   hatch="////", linewidth=0))
            for j in range(v):
                if i != j and np.isfinite(values[i, j]):
                    dark = norm(values[i, j]) < 0.55  # viridis-like maps: light text on dark cells
                    ax.text(j, i, f"{values[i, j]:.{digits}f}", ha="center", va="center",
                            fontsize=font, color="white" if dark else "black")
        labels = [str(c) for c in acc.columns]
        ax.set_xticks(range(v), labels, rotation=90, fontsize=font)
        ax.set_yticks(range(v), [str(i) for i in acc.index], fontsize=font)
        ax.set_xlabel("gallery view")
        ax.set_ylabel("probe view")
        mean = result.table.loc[row, "Mean"]
        ax.set_title(f"{row}: mean {mean:.1f}%" if np.isfinite(mean) else f"{row}: no probes")
    fig.colorbar(image, ax=axes[0].tolist(), label="rank-1 accuracy (%)", shrink=0.85)
    fig.suptitle(title or f"rank-1 per probe and gallery view ({result.protocol}); "
                 f"hatched: identical view, excluded from the means", fontsize=10)
    return declare_frames(fig, "none")  # a raster of accuracies, not of frames


# ---------------------------------------------------------------------------------------------
# t-SNE of embeddings (CSTL Fig. 6)
# ---------------------------------------------------------------------------------------------

def pick_identities(subjects, k: int = 10, seed: int = 0) -> np.ndarray:
    """Boolean mask selecting every sequence of ``k`` identities drawn at random (seeded)."""
    subjects = np.asarray(subjects).astype(str)
    names = np.unique(subjects)
    if k > len(names):
        raise ValueError(f"asked for {k} identities, the data has {len(names)}")
    chosen = np.random.default_rng(seed).choice(names, size=k, replace=False)
    return np.isin(subjects, chosen)


def tsne_embedding(features, seed: int = 0, perplexity: float | None = None) -> np.ndarray:
    """2-D t-SNE (scikit-learn, PCA init, seeded) of features (n, c, p) or (n, d), flattened.

    The default perplexity is min(30, (n - 1) / 3), at least 1: t-SNE needs it below n, and
    a few sequences per identity call for a small neighbourhood anyway.
    """
    from sklearn.manifold import TSNE  # imported here: slow, and only these figures need it

    x = numpy_array(features).astype(np.float64)
    x = x.reshape(len(x), -1)
    if len(x) < 3:
        raise ValueError(f"t-SNE needs at least 3 samples, got {len(x)}")
    if perplexity is None:
        perplexity = max(1.0, min(30.0, (len(x) - 1) / 3))
    if not 0 < perplexity < len(x):
        raise ValueError(f"perplexity must lie in (0, n={len(x)}), got {perplexity}")
    return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed).fit_transform(x)


def _scatter_identities(ax, points: np.ndarray, subjects: np.ndarray, colours: dict) -> None:
    for name in sorted(set(subjects)):
        sel = subjects == name
        ax.scatter(points[sel, 0], points[sel, 1], s=18, color=colours[name], label=name,
                   edgecolors="none", alpha=0.85)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_tsne(features, subjects, *, title: str = "", seed: int = 0, ax=None,
              perplexity: float | None = None, legend: bool = True) -> Figure:
    """t-SNE of one model's embeddings, one colour per identity (see :func:`tsne_embedding`)."""
    subjects = np.asarray(subjects).astype(str)
    if len(subjects) != len(features):
        raise ValueError(f"{len(subjects)} subject labels for {len(features)} feature rows")
    points = tsne_embedding(features, seed, perplexity)
    fig = ax.figure if ax is not None else plt.figure(figsize=(4.6, 4.0), layout="constrained")
    ax = ax if ax is not None else fig.add_subplot()
    _scatter_identities(ax, points, subjects, identity_colours(subjects))
    ax.set_title(title)
    if legend and len(set(subjects)) <= 20:
        ax.legend(title="subject", fontsize=7, title_fontsize=8, loc="center left",
                  bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


def plot_tsne_pair(feats_a, feats_b, subjects, titles: tuple[str, str] = ("baseline", "CSTL"), *,
                   seed: int = 0, perplexity: float | None = None) -> Figure:
    """Fig. 6: t-SNE of two models' embeddings of the same sequences, side by side, with the
    same colour per identity in both and one legend."""
    subjects = np.asarray(subjects).astype(str)
    for name, f in (("feats_a", feats_a), ("feats_b", feats_b)):
        if len(f) != len(subjects):
            raise ValueError(f"{name} has {len(f)} rows for {len(subjects)} subject labels")
    colours = identity_colours(subjects)
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 4.2), layout="constrained")
    for ax, feats, name in zip(axes, (feats_a, feats_b), titles, strict=True):
        _scatter_identities(ax, tsne_embedding(feats, seed, perplexity), subjects, colours)
        ax.set_title(name)
    if len(colours) <= 20:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, title="subject", fontsize=7, title_fontsize=8,
                   loc="outside right center", frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------
# SSFL's frame selection (CSTL Fig. 7)
# ---------------------------------------------------------------------------------------------

def _count_label(value: float, _pos=None) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:g}{unit}"
    return f"{value:g}"


def plot_accuracy_vs_parameters(df: pd.DataFrame, *, title: str = "", ax=None,
                                ylabel: str = "rank-1 accuracy (%)") -> Figure:
    """Fig. 2: accuracy against parameter count (log axis), one colour per method; filled
    circles for reproduced numbers, open diamonds for reported ones (``source`` column,
    default 'reproduced'), a dotted line joining a method's two. Columns: method, params
    (a count), accuracy, optionally source."""
    missing = [c for c in ("method", "params", "accuracy") if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; got {list(df.columns)}")
    data = df.copy()
    if "source" not in data.columns:
        data["source"] = "reproduced"
    data["source"] = data["source"].astype(str).str.strip().str.lower()
    unknown = sorted(set(data["source"]) - {"reproduced", "reported"})
    if unknown:
        raise ValueError(f"source must be 'reproduced' or 'reported', got {unknown}")
    if (data["params"] <= 0).any():
        raise ValueError("params must be positive counts (log axis)")
    fig = ax.figure if ax is not None else plt.figure(figsize=(6.0, 4.2), layout="constrained")
    ax = ax if ax is not None else fig.add_subplot()
    methods = list(dict.fromkeys(data["method"].astype(str)))
    colours = identity_colours(methods)
    styles = {"reproduced": dict(marker="o", s=46), "reported": dict(marker="D", s=40, facecolors="none")}
    for method in methods:
        rows = data[data["method"].astype(str) == method]
        colour = colours[method]
        for source, style in styles.items():
            sel = rows[rows["source"] == source]
            if len(sel):
                kw = dict(style)
                kw.setdefault("color", colour)
                if "facecolors" in kw:
                    kw["edgecolors"] = kw.pop("color")
                ax.scatter(sel["params"], sel["accuracy"], zorder=3, **kw)
        if set(rows["source"]) == {"reproduced", "reported"}:
            ax.plot(rows["params"], rows["accuracy"], ":", color=colour, linewidth=1, zorder=2)
        anchor = rows[rows["source"] == "reproduced"] if (rows["source"] == "reproduced").any() else rows
        ax.annotate(method, (anchor["params"].iloc[0], anchor["accuracy"].iloc[0]),
                    xytext=(5, 4), textcoords="offset points", fontsize=8, color=colour)
    ax.set_xscale("log")
    ax.margins(x=0.12, y=0.08)  # room for the method labels
    ax.xaxis.set_major_formatter(FuncFormatter(_count_label))
    low, high = ax.get_xlim()
    # Within one decade the minor ticks are the only ones; label them, else they would crowd.
    ax.xaxis.set_minor_formatter(FuncFormatter(_count_label) if high / low < 10 else NullFormatter())
    ax.set_xlabel("parameters")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], marker="o", linestyle="", color="0.3", label="reproduced"),
               Line2D([], [], marker="D", linestyle="", markerfacecolor="none", color="0.3",
                      label="reported")]
    ax.legend(handles=[h for h, s in zip(handles, styles, strict=True) if s in set(data["source"])],
              fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return fig


def plot_learning_curves(curves: pd.DataFrame, reported: pd.DataFrame | None = None, *,
                         title: str = "") -> Figure:
    """Rank-1 against training iterations, one panel per condition (NM, BG, CL) and one line per
    model, with each model's reported number as a dashed line of its colour at the right edge.

    ``curves``: columns model, iteration, condition, rank1 (one row per scored point);
    ``reported``: columns model, condition, rank1 (the paper's numbers; models absent from
    ``curves`` are ignored)."""
    missing = [c for c in ("model", "iteration", "condition", "rank1") if c not in curves.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; got {list(curves.columns)}")
    if curves.empty:
        raise ValueError("no learning-curve points to plot")
    conditions = list(dict.fromkeys(curves["condition"]))
    models = list(dict.fromkeys(curves["model"]))
    colours = identity_colours(models)
    fig, axes = plt.subplots(1, len(conditions), figsize=(3.4 * len(conditions), 3.6),
                             sharey=True, layout="constrained", squeeze=False)
    for ax, condition in zip(axes[0], conditions, strict=True):
        for model in models:
            rows = curves[(curves["model"] == model) & (curves["condition"] == condition)]
            rows = rows.sort_values("iteration")
            ax.plot(rows["iteration"], rows["rank1"], "o-", color=colours[model], markersize=3,
                    linewidth=1.2, label=model)
            if reported is not None:
                ref = reported[(reported["model"] == model) & (reported["condition"] == condition)]
                for value in ref["rank1"]:
                    ax.axhline(value, color=colours[model], linestyle="--", linewidth=0.8,
                               alpha=0.7)
        ax.set_title(condition)
        ax.set_xlabel("training iterations")
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("rank-1 accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if reported is not None and not reported.empty:
        handles.append(Line2D([], [], color="0.3", linestyle="--", linewidth=0.8))
        labels.append("reported (paper)")
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return fig
