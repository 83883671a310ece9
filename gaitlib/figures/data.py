"""Figures of the data: what the models see."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from gaitlib.data.pretreatment import crop_width
from gaitlib.data.store import Store
from gaitlib.figures._common import check_frames_source, declare_frames


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
    none has, the first subject). Missing sequences are left blank and labelled. Only a synthetic
    store's frames are drawn: a real dataset's raise
    :class:`~gaitlib.figures._common.RealFramesError`.
    """
    check_frames_source(store.dataset)
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
    return declare_frames(fig, "synthetic")


# ---------------------------------------------------------------------------------------------
# Helpers for the artifact figures
# ---------------------------------------------------------------------------------------------

