"""Figures shared by the book and the reports."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from gaitlib.data.pretreatment import crop_width  # noqa: E402
from gaitlib.data.store import Store  # noqa: E402
from gaitlib.models.local_block import PARTS  # noqa: E402


def _strip(frames: np.ndarray, n_frames: int) -> np.ndarray:
    """``n_frames`` evenly spaced model-input frames, then the GEI, side by side with gaps."""
    frames = crop_width(np.asarray(frames)).astype(np.float32) / 255
    picks = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
    gap = np.full((frames.shape[1], 3), 0.5, dtype=np.float32)
    tiles = []
    for i in picks:
        tiles += [frames[i], gap]
    return np.concatenate([*tiles, gap, frames.mean(axis=0)], axis=1)


def plot_synthetic_samples(store: Store, subject: str | None = None,
                           views=("000", "054", "090", "126", "180"),
                           conditions=("nm-01", "bg-01", "cl-01"), n_frames: int = 4) -> Figure:
    """One subject seen from ``views`` (rows) in ``conditions`` (columns): each cell shows
    ``n_frames`` frames and the GEI, cropped to 64x44 as the models see them.

    ``subject`` defaults to the first subject that has every requested sequence (or, if
    none has, the first subject). Missing sequences are left blank and labelled.
    """
    views, conditions = [str(v) for v in views], [str(c) for c in conditions]
    if not views or not conditions:
        raise ValueError("need at least one view and one condition")
    subjects = list(dict.fromkeys(store.subjects))
    if subject is None:
        wanted = len(views) * len(conditions)
        subject = next((s for s in subjects
                        if len(store.select([s], conditions, views)) >= wanted), subjects[0])
    elif str(subject) not in subjects:
        raise ValueError(f"subject {subject!r} is not in {store.path}")
    subject = str(subject)
    fig, axes = plt.subplots(len(views), len(conditions), squeeze=False,
                             figsize=(2.6 * len(conditions) * (n_frames + 1) / 5 + 0.6,
                                      1.25 * len(views) + 0.6))
    for r, view in enumerate(views):
        for c, cond in enumerate(conditions):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            found = store.select([subject], [cond], [view])
            if len(found):
                ax.imshow(_strip(store.frames_of(int(found[0])), n_frames), cmap="gray",
                          vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.text(0.5, 0.5, "not in store", ha="center", va="center",
                        transform=ax.transAxes)
            if r == 0:
                ax.set_title(cond, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{view}\N{DEGREE SIGN}", fontsize=9)
    fig.suptitle(f"{store.dataset} subject {subject}: {n_frames} frames + GEI (64x44)",
                 fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Helpers for the artifact figures
# ---------------------------------------------------------------------------------------------

def _numpy(x) -> np.ndarray:
    """numpy view of an array or a (possibly GPU, possibly grad-tracking) tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _unit(frames) -> np.ndarray:
    """Frames as float in [0, 1]: uint8 (or anything above 1) is read as 0..255."""
    arr = _numpy(frames)
    scale = 255.0 if arr.dtype == np.uint8 or (arr.size and float(arr.max()) > 1.0) else 1.0
    return arr.astype(np.float32) / scale


def _identity_colours(labels) -> dict[str, tuple]:
    """A fixed colour per identity (sorted labels), distinct for up to 20 identities."""
    names = sorted(set(map(str, labels)))
    if len(names) <= 10:
        cmap, count = mpl.colormaps["tab10"], 10
    elif len(names) <= 20:
        cmap, count = mpl.colormaps["tab20"], 20
    else:
        cmap, count = mpl.colormaps["hsv"], len(names) + 1
    return {name: cmap(i / max(count - 1, 1) if count > 20 else i) for i, name in enumerate(names)}


# ---------------------------------------------------------------------------------------------
# Probe x gallery view accuracies
# ---------------------------------------------------------------------------------------------

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
    size = 0.36 * n_views + 1.2
    fig, axes = plt.subplots(1, len(rows), squeeze=False, figsize=(size * len(rows) + 1.0, size + 0.9),
                             layout="constrained")
    font = max(4.0, min(9.0, 66.0 / n_views))
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
        ax.set_xticks(range(v), labels, rotation=90, fontsize=font + 1)
        ax.set_yticks(range(v), [str(i) for i in acc.index], fontsize=font + 1)
        ax.set_xlabel("gallery view")
        ax.set_ylabel("probe view")
        mean = result.table.loc[row, "Mean"]
        ax.set_title(f"{row}: mean {mean:.1f}%" if np.isfinite(mean) else f"{row}: no probes")
    fig.colorbar(image, ax=axes[0].tolist(), label="rank-1 accuracy (%)", shrink=0.85)
    fig.suptitle(title or f"rank-1 per probe and gallery view ({result.protocol}); "
                 f"hatched: identical view, excluded from the means", fontsize=10)
    return fig


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

    x = _numpy(features).astype(np.float64)
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
    _scatter_identities(ax, points, subjects, _identity_colours(subjects))
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
    colours = _identity_colours(subjects)
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

def plot_ssfl_selection(frames, index, parts: int | None = None, *, n_frames: int = 6,
                        title: str = "", cmap: str = "viridis") -> Figure:
    """Fig. 7: SSFL's choice of frame for each of the K horizontal parts.

    ``frames`` (T, H, W) is the sequence the model saw (uint8 0..255 or float 0..1),
    ``index`` (K,) the frame picked for each part (the model's ``ssfl_index[i]``). Part k is
    rows [k H/K, (k+1) H/K). Three axes: the most often picked frames (up to ``n_frames``,
    in time order, framed in their time colour); the composite silhouette made of each
    part's strip from its picked frame, with a bar coloured by that frame's time; and how
    many parts picked each frame.
    """
    frames = _unit(frames)
    if frames.ndim != 3:
        raise ValueError(f"frames must be (T, H, W), got shape {frames.shape}")
    idx = _numpy(index).astype(np.int64).ravel()
    t, h, w = frames.shape
    k = len(idx)
    if parts is not None and parts != k:
        raise ValueError(f"parts={parts} but index has {k} entries")
    if k == 0 or k > h:
        raise ValueError(f"need 1..{h} parts for {h}-row frames, got {k}")
    if idx.min() < 0 or idx.max() >= t:
        raise ValueError(f"index must lie in [0, {t}) for a {t}-frame sequence, "
                         f"got {idx.min()}..{idx.max()}")
    colours = mpl.colormaps[cmap]

    def colour(frame: int) -> tuple:
        return colours(frame / max(t - 1, 1))

    bounds = np.linspace(0, h, k + 1).round().astype(int)
    composite = np.zeros((h, w, 3), np.float32)
    tag = np.ones((h, max(3, w // 6), 3), np.float32)
    for part, f in enumerate(idx):
        rows = slice(bounds[part], bounds[part + 1])
        composite[rows] = frames[f, rows, :, None]
        tag[rows] = colour(int(f))[:3]
    gap = np.ones((h, 2, 3), np.float32)
    counts = np.bincount(idx, minlength=t)
    picked = np.flatnonzero(counts)
    if len(picked) > n_frames:  # the most used frames, ties to the earlier one
        picked = np.sort(np.argsort(-counts, kind="stable")[:n_frames])

    fig, axes = plt.subplots(1, 3, figsize=(1.0 * len(picked) + 5.6, 3.4), layout="constrained",
                             gridspec_kw={"width_ratios": [max(len(picked), 1) * w, 1.6 * w, 3.0 * w]})
    ax_frames, ax_comp, ax_hist = axes
    sep = 3
    tiles = []
    for f in picked:
        tiles += [frames[f], np.ones((h, sep), np.float32)]
    ax_frames.imshow(np.concatenate(tiles[:-1], axis=1), cmap="gray", vmin=0, vmax=1,
                     interpolation="nearest")
    for i, f in enumerate(picked):
        x0 = i * (w + sep) - 0.5
        ax_frames.add_patch(Rectangle((x0, -0.5), w, h, fill=False, edgecolor=colour(int(f)),
                                      linewidth=2))
        ax_frames.text(x0 + w / 2, -1.5, f"t={f}\n{counts[f]} part{'s' if counts[f] != 1 else ''}",
                       ha="center", va="bottom", fontsize=7)
    ax_frames.set_title("most picked frames", fontsize=9, pad=22)
    ax_comp.imshow(np.concatenate([composite, gap, tag], axis=1), interpolation="nearest")
    ax_comp.set_title(f"composite ({k} parts)", fontsize=9, pad=22)
    for ax in (ax_frames, ax_comp):
        ax.set_xticks([])
        ax.set_yticks([])
    ax_hist.bar(np.arange(t), counts, width=1.0, color=[colour(f) for f in range(t)])
    ax_hist.set_xlim(-0.5, t - 0.5)
    ax_hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_hist.set_xlabel("frame")
    ax_hist.set_ylabel("parts that pick it")
    ax_hist.set_title("picked frame positions", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------
# 3D Local CNN's local paths (3D Local Fig. 4)
# ---------------------------------------------------------------------------------------------

def _block_key(volumes: dict, block) -> str:
    if not volumes:
        raise ValueError("the inspection has no local blocks (a model without local paths?)")
    if block is None:
        return sorted(volumes, key=lambda b: int(b) if str(b).isdigit() else str(b))[0]
    if str(block) not in volumes:
        raise ValueError(f"block {block!r} has no local paths; available: {', '.join(map(str, volumes))}")
    return str(block)


def _ordered_paths(names) -> list[str]:
    known = [p for p in PARTS if p in names]
    return known + [p for p in names if p not in PARTS]


def plot_local_volumes(inspection: dict, sample: int = 0, block=None, *, sils=None,
                       n_slices: int = 4, frame: int | None = None) -> Figure:
    """Fig. 4 (top): what each local path of one block samples, from ``model.inspect(sils)``.

    One row per path (head, torso, arm_l, arm_r, leg_l, leg_r): ``n_slices`` time slices of
    its sampled volume, channel mean, scaled per path. ``block`` defaults to the first block
    with local paths. When the input silhouettes are at hand (``sils``, the tensor given to
    ``inspect``, or an ``'sils'`` entry in the dict), a first column shows input frame
    ``frame`` (default: the middle one) with each path's sampling grid drawn: its extent as a
    box and its centre as a dot, mapped from the block's map to the input frame.
    """
    volumes = inspection["volumes"]
    key = _block_key(volumes, block)
    records = volumes[key]
    paths = _ordered_paths(list(records))
    if sils is None:
        sils = inspection.get("sils", inspection.get("input"))
    frames = None
    if sils is not None:
        frames = _numpy(sils)
        frames = frames.reshape(frames.shape[0], -1, *frames.shape[-2:])[sample]  # (T, H, W)
    overview = frames is not None and all("mu_x" in records[p] and "mu_y" in records[p] for p in paths)

    grid = plt.figure(figsize=(1.15 * n_slices + (2.2 if overview else 0.4), 1.35 * len(paths) + 0.7),
                      layout="constrained")
    cols = n_slices + (1 if overview else 0)
    spec = grid.add_gridspec(len(paths), cols, width_ratios=([2.0] if overview else []) + [1.0] * n_slices)
    path_colours = {p: mpl.colormaps["tab10"](i) for i, p in enumerate(paths)}
    for r, path in enumerate(paths):
        rec = records[path]
        vol = _numpy(rec["volume"])[sample].mean(axis=0)  # (L, H, W), channel mean
        length = vol.shape[0]
        slices = np.linspace(0, length - 1, n_slices).round().astype(int)
        vmax = float(np.abs(vol).max()) or 1.0
        mu_t = _numpy(rec["mu_t"])[sample] if "mu_t" in rec else None
        for c, sl in enumerate(slices):
            ax = grid.add_subplot(spec[r, c + (1 if overview else 0)])
            ax.imshow(vol[sl], cmap="gray", vmin=min(0.0, float(vol.min())), vmax=vmax,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            # mu_t is the sampled time in frame units, frame f centred at f + 0.5.
            when = round(float(mu_t[sl]) - 0.5, 1) + 0.0 if mu_t is not None else None  # no -0.0
            label = f"slice {sl}" + (f"\nframe {when:.1f}" if when is not None else "")
            ax.set_title(label, fontsize=7)
            if c == 0:
                ax.set_ylabel(path, fontsize=9, color=path_colours[path] if overview else "black")
    if overview:
        ax = grid.add_subplot(spec[:, 0])
        t_in, h_in, w_in = frames.shape
        t0 = t_in // 2 if frame is None else int(frame)
        if not 0 <= t0 < t_in:
            raise ValueError(f"frame {t0} outside the {t_in}-frame input")
        ax.imshow(_unit(frames[t0]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        for path in paths:
            rec = records[path]
            hb, wb = _numpy(rec["volume"]).shape[-2:]
            sx, sy = w_in / wb, h_in / hb  # block map pixels -> input pixels
            mx = _numpy(rec["mu_x"])[sample]
            my = _numpy(rec["mu_y"])[sample]
            tb = min(t0, mx.shape[0] - 1)
            mx, my = mx[tb], my[tb]
            step_x = (mx.max() - mx.min()) / max(len(mx) - 1, 1)
            step_y = (my.max() - my.min()) / max(len(my) - 1, 1)
            # Grid positions are in pixel units with pixel p centred at p + 0.5; imshow puts
            # pixel p at p, hence the - 0.5.
            x0 = (mx.min() - step_x / 2) * sx - 0.5
            y0 = (my.min() - step_y / 2) * sy - 0.5
            ax.add_patch(Rectangle((x0, y0), (mx.max() - mx.min() + step_x) * sx,
                                   (my.max() - my.min() + step_y) * sy, fill=False,
                                   edgecolor=path_colours[path], linewidth=1.4, label=path))
            ax.plot(mx.mean() * sx - 0.5, my.mean() * sy - 0.5, "o", color=path_colours[path],
                    markersize=3)
        ax.set_xlim(-0.5, w_in - 0.5)
        ax.set_ylim(h_in - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"input frame {t0}: sampling grids", fontsize=8)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2, frameon=False)
    grid.suptitle(f"block {key}: sampled local volumes (channel mean), sample {sample}", fontsize=10)
    return grid


def plot_fusion_weights(inspection: dict, *, title: str = "", ax=None) -> Figure:
    """Fig. 4 (bottom): mean |w| of each block's fusion conv per branch (global and the local
    paths), one bar per block. Takes ``model.inspect(...)`` or its ``'fusion_weights'``
    mapping block -> {branch: weight}."""
    weights = inspection.get("fusion_weights", inspection)
    if not weights:
        raise ValueError("no fusion weights (a model without local blocks?)")
    blocks = sorted(weights, key=lambda b: int(b) if str(b).isdigit() else str(b))
    branches: list[str] = []
    for b in blocks:
        branches += [name for name in weights[b] if name not in branches]
    branches = ["global"] * ("global" in branches) + _ordered_paths([n for n in branches if n != "global"])
    fig = ax.figure if ax is not None else plt.figure(figsize=(1.0 * len(branches) + 1.6, 3.2),
                                                      layout="constrained")
    ax = ax if ax is not None else fig.add_subplot()
    width = 0.8 / len(blocks)
    x = np.arange(len(branches))
    for i, b in enumerate(blocks):
        values = [weights[b].get(name, np.nan) for name in branches]
        ax.bar(x + (i - (len(blocks) - 1) / 2) * width, values, width, label=f"block {b}")
    ax.set_xticks(x, branches)
    ax.set_ylabel("mean |w| of the fusion conv")
    ax.set_title(title or "fusion weights per branch")
    if len(blocks) > 1:
        ax.legend(fontsize=8, frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------
# Accuracy vs model size (GaitMM Fig. 2)
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
    colours = _identity_colours(methods)
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
