"""Figures of what a trained model does inside: SSFL's frame selections (CSTL Fig. 7), the
3D Local CNN's sampled volumes and fusion weights (Fig. 4)."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from gaitlib.figures._common import check_frames_source, declare_frames, numpy_array, unit_range
from gaitlib.models.local_sampling import PARTS


def plot_ssfl_selection(frames, index, parts: int | None = None, *, source: str,
                        n_frames: int = 6, title: str = "", cmap: str = "viridis") -> Figure:
    """Fig. 7: SSFL's choice of frame for each of the K horizontal parts.

    ``frames`` (T, H, W) is the sequence the model saw (uint8 0..255 or float 0..1),
    ``index`` (K,) the frame picked for each part (the model's ``ssfl_index[i]``). Part k is
    rows [k H/K, (k+1) H/K). Three axes: the most often picked frames (up to ``n_frames``,
    in time order, framed in their time colour); the composite silhouette made of each
    part's strip from its picked frame, with a bar coloured by that frame's time; and how
    many parts picked each frame. ``source`` names the dataset the frames come from: only
    synthetic frames are drawn (a real dataset's raise
    :class:`~gaitlib.figures._common.RealFramesError`).
    """
    check_frames_source(source)
    frames = unit_range(frames)
    if frames.ndim != 3:
        raise ValueError(f"frames must be (T, H, W), got shape {frames.shape}")
    idx = numpy_array(index).astype(np.int64).ravel()
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
    return declare_frames(fig, "synthetic")


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


def plot_local_volumes(inspection: dict, sample: int = 0, block=None, *, source: str, sils=None,
                       n_slices: int = 4, frame: int | None = None, title: str = "") -> Figure:
    """Fig. 4 (top): what each local path of one block samples, from ``model.inspect(sils)``.

    One row per path (head, torso, arm_l, arm_r, leg_l, leg_r): ``n_slices`` time slices of
    its sampled volume, channel mean, scaled per path. ``block`` defaults to the first block
    with local paths. When the input silhouettes are at hand (``sils``, the tensor given to
    ``inspect``, or an ``'sils'`` entry in the dict), a first column shows input frame
    ``frame`` (default: the middle one) with each path's sampling grid drawn: its extent as a
    box and its centre as a dot, mapped from the block's map to the input frame.  The title
    counts the paths whose centre stays on the map in every frame (when the records hold
    ``on_map``); ``title`` goes above it (what the sequence is).  The volumes are resampled
    input: ``source`` names the dataset of the silhouettes given to ``inspect``, and only
    synthetic ones are drawn (a real dataset's raise
    :class:`~gaitlib.figures._common.RealFramesError`).
    """
    check_frames_source(source)
    volumes = inspection["volumes"]
    key = _block_key(volumes, block)
    records = volumes[key]
    paths = _ordered_paths(list(records))
    if sils is None:
        sils = inspection.get("sils", inspection.get("input"))
    frames = None
    if sils is not None:
        frames = numpy_array(sils)
        frames = frames.reshape(frames.shape[0], -1, *frames.shape[-2:])[sample]  # (T, H, W)
    overview = frames is not None and all("mu_x" in records[p] and "mu_y" in records[p] for p in paths)

    grid = plt.figure(figsize=(1.15 * n_slices + (2.2 if overview else 0.4), 1.35 * len(paths) + 0.7),
                      layout="constrained")
    cols = n_slices + (1 if overview else 0)
    spec = grid.add_gridspec(len(paths), cols, width_ratios=([2.0] if overview else []) + [1.0] * n_slices)
    path_colours = {p: mpl.colormaps["tab10"](i) for i, p in enumerate(paths)}
    for r, path in enumerate(paths):
        rec = records[path]
        vol = numpy_array(rec["volume"])[sample].mean(axis=0)  # (L, H, W), channel mean
        length = vol.shape[0]
        slices = np.linspace(0, length - 1, n_slices).round().astype(int)
        vmax = float(np.abs(vol).max()) or 1.0
        mu_t = numpy_array(rec["mu_t"])[sample] if "mu_t" in rec else None
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
        ax.imshow(unit_range(frames[t0]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        for path in paths:
            rec = records[path]
            hb, wb = numpy_array(rec["volume"]).shape[-2:]
            sx, sy = w_in / wb, h_in / hb  # block map pixels -> input pixels
            mx = numpy_array(rec["mu_x"])[sample]
            my = numpy_array(rec["mu_y"])[sample]
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
    heading = f"block {key}: sampled local volumes (channel mean), sample {sample}"
    if all("on_map" in records[p] for p in paths):  # centres per frame (Local3DCNN.inspect)
        on = sum(bool(numpy_array(records[p]["on_map"])[sample].all()) for p in paths)
        heading += f"; {on}/{len(paths)} paths on the map in every frame"
    grid.suptitle(heading if not title else f"{title}\n{heading}", fontsize=10)
    return declare_frames(grid, "synthetic")


def plot_fusion_weights(inspection: dict, *, title: str = "", ax=None) -> Figure:
    """Fig. 4 (bottom): mean ``|w|`` of each block's fusion conv per branch (global and the local
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

