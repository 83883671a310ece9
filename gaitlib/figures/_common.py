"""Small helpers shared by the figure modules, and what a figure's raster images show.

CASIA-B's and OU-MVLP's terms forbid redistributing their frames, so the book never shows one.
A figure function that draws silhouettes takes the name of the dataset its frames come from and
refuses a real one (:func:`check_frames_source`); every figure that holds a raster image says
what the image shows (:func:`declare_frames`: 'synthetic' walker frames or 'none', e.g. a heatmap
of accuracies).  :func:`frames_declaration` reads it back; publishing a real-data page refuses a
figure with an undeclared raster image (:mod:`gaitlib.report.frames`).
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.image import AxesImage, FigureImage

# What a figure's raster images show: frames of the synthetic walker, or no frames at all.
FRAMES_SHOWN = ("synthetic", "none")
_FRAMES_ATTR = "_gaitlib_frames"


class RealFramesError(ValueError):
    """Frames of a licence-gated dataset asked to be drawn, or a page that would show them."""


def is_synthetic_source(source: str) -> bool:
    """True for the synthetic stores' dataset names ('synthetic', 'synthetic-oumvlp')."""
    return str(source).startswith("synthetic")


def check_frames_source(source: str) -> None:
    """Raise :class:`RealFramesError` unless ``source`` (the dataset the frames come from, e.g. a
    store's ``dataset``) is synthetic."""
    if not is_synthetic_source(source):
        raise RealFramesError(
            f"refusing to draw frames of {source!r}: the book shows only the synthetic walker's "
            "frames (the real datasets' terms forbid redistributing them); draw a synthetic "
            "sequence through the same model instead (gaitlib.report.study.shown_sequence)")


def declare_frames(fig: Figure, shows: str) -> Figure:
    """Record on ``fig`` what its raster images show: 'synthetic' (the synthetic walker's frames)
    or 'none' (no frames: heatmaps and the like)."""
    if shows not in FRAMES_SHOWN:
        raise RealFramesError(f"a figure may show {' or '.join(FRAMES_SHOWN)} frames, not {shows!r}")
    setattr(fig, _FRAMES_ATTR, shows)
    return fig


def frames_declaration(fig: Figure) -> str:
    """What ``fig``'s raster images show: its declaration, 'none' for a figure without raster
    images (lines, bars, scatter), else 'undeclared'."""
    declared = getattr(fig, _FRAMES_ATTR, None)
    if declared is not None:
        return declared
    rasters = [a for a in fig.get_children() if isinstance(a, AxesImage | FigureImage)]
    rasters += [im for ax in fig.get_axes() for im in ax.get_images()]
    return "undeclared" if rasters else "none"


def numpy_array(x) -> np.ndarray:
    """numpy view of an array or a (possibly GPU, possibly grad-tracking) tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def unit_range(frames) -> np.ndarray:
    """Frames as float in [0, 1]: uint8 (or anything above 1) is read as 0..255."""
    arr = numpy_array(frames)
    scale = 255.0 if arr.dtype == np.uint8 or (arr.size and float(arr.max()) > 1.0) else 1.0
    return arr.astype(np.float32) / scale


def identity_colours(labels) -> dict[str, tuple]:
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

