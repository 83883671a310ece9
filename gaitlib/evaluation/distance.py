"""Distances between gait features, as OpenGait's evaluation computes them.

Features are (n, c, p): ``c`` channels for each of ``p`` horizontal parts. The distance
between two sequences is the Euclidean (or cosine) distance of each part, averaged over
the parts, not the distance of the flattened vectors: the two can pick different
neighbours, and the papers' numbers use the former.

An OU-MVLP test set has ~72k probes and ~72k gallery sequences, so a full distance matrix
(20 GB in float32, times the number of parts for a batched computation) never exists here:
probes go through in chunks and only each probe's nearest gallery sequence per gallery
group (view) survives a chunk.

Magnitudes. The squared distances are float32 sums of squares: features beyond about 1e18
overflow them (inf - inf = NaN, nearest neighbours at random) and features below about 1e-19
underflow them to 0 (every distance 0, ties everywhere). Features whose largest magnitude lies
outside [2^-40, 2^40] are therefore multiplied by one power of two that brings it to about 1
(:func:`magnitude_scale`). Scaling by a power of two is exact in binary floating point and
scales every distance by the same factor, so each nearest neighbour is the one the exact
arithmetic would pick; features in the ordinary range are not touched at all.
"""

from __future__ import annotations

import math

import numpy as np
import torch

METRICS = ("euc", "cos")

# Elements of one (chunk x gallery) temporary; a chunk holds about three of them.
_CPU_BUDGET = 1 << 24
_CUDA_BUDGET = 1 << 27
# Largest magnitudes left as they are: squares of sums over up to 2^16 channels stay normal.
_SAFE_RANGE = (2.0**-40, 2.0**40)
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_parts(features) -> torch.Tensor:
    """Features as a float32 (n, c, p) tensor; (n, d) is read as one part of d channels."""
    x = features.detach() if isinstance(features, torch.Tensor) else torch.from_numpy(
        np.asarray(features))
    if x.ndim == 2:
        x = x.unsqueeze(2)
    if x.ndim != 3:
        raise ValueError(f"features must be (n, c, p) or (n, d); got shape {tuple(x.shape)}")
    if x.dtype == torch.float64 and x.numel():
        top = _largest(x)
        if math.isfinite(top) and top > _FLOAT32_MAX:
            raise ValueError(f"features reach {top:.3g}, beyond float32's range "
                             f"({_FLOAT32_MAX:.3g}) in which distances are computed; divide "
                             "them by a power of two first")
    return x.float()


def _largest(x: torch.Tensor) -> float:
    """max |x| in one pass, without an |x| copy of the whole tensor."""
    low, high = torch.aminmax(x)
    return max(-float(low), float(high))


def magnitude_scale(*features: torch.Tensor) -> float:
    """1.0 for features whose largest magnitude is within [2^-40, 2^40] (or all zero or
    non-finite), else the power of two that brings it into [0.5, 1): multiplying by it is exact
    and keeps every nearest neighbour (see the module note)."""
    top = max((_largest(x) for x in features if x.numel()), default=0.0)
    if not math.isfinite(top) or top == 0.0 or _SAFE_RANGE[0] <= top <= _SAFE_RANGE[1]:
        return 1.0
    return math.ldexp(1.0, -math.frexp(top)[1])


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")


def _prepare(x: torch.Tensor, metric: str, device: torch.device,
             scale: float = 1.0) -> torch.Tensor:
    """(n, c, p) -> (p, n, c) on ``device``, times ``scale`` (a power of two; see
    :func:`magnitude_scale`); unit-normalised per part for the cosine metric."""
    x = x.to(device).permute(2, 0, 1).contiguous()
    if scale != 1.0:
        x = x * scale  # not in place: x may still be the caller's tensor
    if metric == "cos":
        x = torch.nn.functional.normalize(x, p=2, dim=2)
    return x


def _part_distance(xp: torch.Tensor, yp: torch.Tensor, y2: torch.Tensor | None,
                   metric: str) -> torch.Tensor:
    """Distance of prepared (p, m, c) probes to prepared (p, n, c) gallery: (m, n).

    Euclidean: per part ``sqrt(max(x^2 + y^2 - 2xy, 0))``, summed over parts then divided
    by p, in that order (OpenGait's). ``y2`` is the gallery's per-part squared norms (p, n).
    """
    p, m, _ = xp.shape
    acc = torch.zeros(m, yp.shape[1], dtype=xp.dtype, device=xp.device)
    if metric == "cos":
        for i in range(p):
            acc.addmm_(xp[i], yp[i].T)
        return acc.div_(-p).add_(1.0)
    x2 = xp.square().sum(2)
    for i in range(p):
        d = x2[i].unsqueeze(1) + y2[i].unsqueeze(0)
        d.addmm_(xp[i], yp[i].T, alpha=-2.0)
        acc += d.clamp_min_(0.0).sqrt_()
    return acc.div_(p)


def pairwise_distance(x, y, metric: str = "euc", device=None) -> torch.Tensor:
    """The full (m, n) distance matrix, on ``device``. For small sets and as a reference."""
    check_metric(metric)
    dev = resolve_device(device)
    x, y = as_parts(x), as_parts(y)
    scale = magnitude_scale(x, y)
    xp, yp = _prepare(x, metric, dev, scale), _prepare(y, metric, dev, scale)
    if xp.shape[0] != yp.shape[0] or xp.shape[2] != yp.shape[2]:
        raise ValueError(f"probe parts/channels {tuple(xp.shape)} do not match gallery "
                         f"{tuple(yp.shape)} (as parts, n, c)")
    y2 = yp.square().sum(2) if metric == "euc" else None
    return _part_distance(xp, yp, y2, metric)


def nearest_per_group(probe, gallery, groups: np.ndarray, n_groups: int, metric: str = "euc",
                      chunk_size: int | None = None, device=None,
                      probe_index: np.ndarray | None = None,
                      gallery_index: np.ndarray | None = None) -> np.ndarray:
    """For every probe and every gallery group g, the index of the nearest gallery sequence
    among those with ``groups == g``: an int64 (n_probe, n_groups) array, -1 for empty groups.

    ``probe_index``/``gallery_index`` select rows of ``probe``/``gallery`` without copying
    them first (both may then be the same array); returned indices count within the
    selected gallery rows. Probes are processed ``chunk_size`` at a time (default: one
    chunk x gallery temporary of about 64 MB on the CPU, 512 MB on CUDA). Ties go to the
    lowest index.
    """
    check_metric(metric)
    dev = resolve_device(device)
    x = as_parts(probe)
    y = x if gallery is probe else as_parts(gallery)
    p_idx = np.arange(len(x)) if probe_index is None else np.asarray(probe_index, np.int64)
    g_idx = np.arange(len(y)) if gallery_index is None else np.asarray(gallery_index, np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    if len(groups) != len(g_idx):
        raise ValueError(f"{len(groups)} group labels for {len(g_idx)} gallery sequences")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"probe features {tuple(x.shape[1:])} and gallery features "
                         f"{tuple(y.shape[1:])} differ in shape")
    # Sort the gallery by group so each group is one contiguous slice of the distance matrix.
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(n_groups + 1))
    scale = magnitude_scale(x) if y is x else magnitude_scale(x, y)
    yp = _gather_parts(y, g_idx[order], metric, dev, scale)
    y2 = yp.square().sum(2) if metric == "euc" else None
    order_t = torch.from_numpy(order).to(dev)

    n_probe, n_gallery = len(p_idx), len(g_idx)
    if chunk_size is None:
        budget = _CUDA_BUDGET if dev.type == "cuda" else _CPU_BUDGET
        chunk_size = budget // max(n_gallery, 1)
    chunk_size = int(max(1, min(chunk_size, max(n_probe, 1))))

    nearest = np.full((n_probe, n_groups), -1, dtype=np.int64)
    for start in range(0, n_probe, chunk_size):
        rows = torch.from_numpy(p_idx[start : start + chunk_size])
        dist = _part_distance(_prepare(x[rows], metric, dev, scale), yp, y2, metric)
        for g in range(n_groups):
            lo, hi = int(bounds[g]), int(bounds[g + 1])
            if hi > lo:
                idx = dist[:, lo:hi].argmin(1) + lo
                nearest[start : start + len(rows), g] = order_t[idx].cpu().numpy()
    return nearest


def _gather_parts(x: torch.Tensor, idx: np.ndarray, metric: str,
                  device: torch.device, scale: float = 1.0) -> torch.Tensor:
    """Rows ``idx`` of (n, c, p) ``x`` (times ``scale``) as a prepared (p, len(idx), c) tensor,
    one part at a time so that no second full copy of the selection exists at any moment."""
    rows = torch.from_numpy(idx).to(x.device)
    out = torch.empty((x.shape[2], len(idx), x.shape[1]), dtype=torch.float32, device=device)
    for i in range(x.shape[2]):
        part = x[rows, :, i].to(device)
        if scale != 1.0:
            part = part * scale
        out[i] = torch.nn.functional.normalize(part, p=2, dim=1) if metric == "cos" else part
    return out
