"""Small helpers shared by the figure modules."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np


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

