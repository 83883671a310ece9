"""Sampling of the 3D local block (Huang et al., ICCV 2021, Sec. 3.2.2, eqs. 4-10): from a local
path's location parameters to the volume it cuts out of the block input.

Choices the paper leaves open (its supplementary tables are not available), with reasons:

* Output size: ``M x N x L`` equals the global output (``W x H x T``), because fusion
  concatenates on channels and Sec. 3.2.3 says FE keeps height, width and length.
  ``part_shape='aspect'`` is the authors' code instead: ``M = W`` columns and as many rows as keep
  the part's aspect ratio on an isotropic grid (``round(h_part H / w_part)``, the stride prior
  ``w_part`` px in both axes), the rows centred and zero-padded to ``H`` (zero filter rows).
* Part priors (centre ``c_x, c_y`` and extent as fractions of the map) come from the authors'
  code (its ``LocalBranch`` tables).  The stride prior makes the grid span the part:
  ``s_x0 = w_part * W / M``; in time ``c_t = 0.5`` and ``s_t0 = 1`` (the whole sequence; the
  authors' code starts at 0.4).  The network emits log-strides *relative* to these priors
  (``s = s0 * exp(out)``), i.e. eq. 3 with the prior as a fixed bias, so an untrained path looks
  at its part.  ``sigma0 = 0.5`` px.
* Pixel ``p`` has its centre at ``p + 0.5``, so ``c_x W`` with ``c_x = 0.5`` is the true centre
  of the map; the grid index runs ``i = 1..M``, making eq. 4's ``i - M/2 - 0.5`` symmetric.
* ``dx, dy`` are per frame (Sec. 3.2.1 "in each frame"); ``dt`` and the strides, variance and
  confidence are per sequence: the temporal mean of per-frame outputs, which works for any
  length.
* Centres stay on the map (eqs. 3-6).  Eq. 3 squashes the offsets to ``(-1, 1)`` "to ensure
  the grid center is within the sampling input", but eq. 4's ``c W + dx W / 2`` keeps that
  promise only for a central prior (``c = 1/2``): ``c_y = 0.8`` reaches ``1.3 H``, ``c_y = 1/16``
  reaches ``-0.44 H``.  We keep eq. 4's form and gain (``dx W / 2`` for ``c = 1/2``) and shrink
  the offset's reach to the prior's distance from the nearer border:
  ``centre = (c + r dx) W`` with ``r = min(1/2, c, 1 - c)``, so ``|dx| < 1`` keeps the centre in
  ``(0, W)`` for every prior, smoothly (no clamp that would cut the gradient).  Each path moves
  around its own part (the head within the top ``H / 8``, a leg within the lower 40 %).  We do
  not also keep ``centre +- half the extent`` inside: the priors already touch the borders (the
  head box starts at row 0, the legs end at 0.99 H), so that bound would freeze them; rows of the
  grid past the border read the border instead (next items).
* Centre smoothing (Sec. 4.2): the paper writes ``c^t <- c^t + (dx^{t-1} + dx^{t-2}) / 2`` and
  then adds eq. 4's ``dx^t / 2``, i.e. ``(dx^t + dx^{t-1} + dx^{t-2}) / 2`` on the centre: the
  literal sum triples eq. 4's reach (a unit offset moves a centre 1.5 W) and breaks eq. 3's
  bound.  We read it as the smoothing it is said to be ("to make sure the spatial centers of
  adjacent frames are consistent"): the three terms keep their equal weights, rescaled to eq.
  4's gain, so each frame uses the mean offset ``(dx^t + dx^{t-1} + dx^{t-2}) / 3``.  A mean of
  offsets in ``(-1, 1)`` stays in ``(-1, 1)``, so the centre bound above holds after smoothing.
  The first frames repeat frame 0's offset (replicate padding) so every frame averages three.
* Filter rows at the borders: eqs. 7-8 normalise each row over the map (``Z_X, Z_Y``).  Computed
  as ``exp(.) / sum exp(.)`` a row whose mean lies a few pixels off the map underflows to 0, so
  it samples zeros and passes no gradient (a path that drifted off could not come back).  We
  compute the same normalised row as a softmax over the map's pixels, which is exact on the map
  and, past the border, concentrates on the border pixel: every row sums to 1, always.  The
  linear filters (eq. 9) clamp positions to the map in space as in time, so every sampler reads
  the border past it (replicate padding) rather than zeros.
* Linear interpolation (eq. 9) uses ``ceil = floor + 1`` (eq. 9 as printed gives weight 0 at
  integer positions).
* ``gamma`` multiplies the ``L x T`` time filters, not the sampled volume: the same product,
  without a pass over (or, under autocast, a float32 copy of) the whole volume.
* The order of eq. 10's factors.  With per-frame offsets, ``G_X`` and ``G_Y`` differ from frame
  to frame, and eq. 10's product ``gamma G_X G_Y T_T I`` no longer fixes an order: we sample each
  *input* frame ``r`` with its own filters, then interpolate in time,
  ``V[k] = gamma sum_r T_T[k, r] G_X^r G_Y^r I[r]``.  Interpolating first and sampling each
  *output* frame with its filters is a different operator; the two agree only when the offsets
  are constant in time.
* ``sampler='gaussian'`` uses Gaussian filters on all three axes (same ``sigma^2``, in frames),
  ``'trilinear'`` linear interpolation on all three, ``'mixture'`` Gaussian in space and linear
  in time (eq. 10; the paper's default).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

SAMPLERS = ("gaussian", "trilinear", "mixture")
PART_SHAPES = ("stretch", "aspect")

# Part priors from the authors' code on a 16 x 11 map:
# name -> (c_x, c_y, height fraction, width fraction).
PARTS: dict[str, tuple[float, float, float, float]] = {
    "head": (0.5, 1.0 / 16, 2.0 / 16, 4.0 / 11),
    "torso": (0.5, 3.0 / 8, 8.0 / 16, 10.0 / 11),
    "arm_l": (0.3, 0.5, 3.0 / 16, 3.0 / 11),
    "arm_r": (0.7, 0.5, 3.0 / 16, 3.0 / 11),
    "leg_l": (0.3, 0.8, 6.0 / 16, 5.0 / 11),
    "leg_r": (0.7, 0.8, 6.0 / 16, 5.0 / 11),
}
PRIOR_CT, PRIOR_ST, PRIOR_SIGMA = 0.5, 1.0, 0.5
NUM_PARAMS = 8  # dx, dy, dt, log sx, log sy, log st, log sigma^2, logit gamma  (eq. 3)


def grid_positions(centre: Tensor, stride: Tensor, count: int) -> Tensor:
    """Eqs. 4-6: ``mu^i = centre + (i - count/2 - 0.5) * stride`` for ``i = 1..count``.

    ``centre`` is ``(n, ...)`` in input-pixel (or frame) units, ``stride`` broadcastable to it;
    returns ``(n, ..., count)``.
    """
    i = torch.arange(1, count + 1, dtype=centre.dtype, device=centre.device)
    return centre.unsqueeze(-1) + (i - count / 2 - 0.5) * stride.unsqueeze(-1)


def gaussian_filterbank(mu: Tensor, sigma2: Tensor, size: int) -> Tensor:
    """Eqs. 7-8: ``F[i, p] = exp(-(mu_i - p - 0.5)^2 / 2 sigma^2) / Z``, rows summing to 1.

    Computed as a softmax over ``p``: the same row wherever ``Z`` is representable, and a row
    on the border pixel (not an all-zero row) when ``mu_i`` lies far past the border.
    ``mu`` ``(n, ..., count)``, ``sigma2`` broadcastable to ``(n, ..., 1)``;
    returns ``(n, ..., count, size)``.
    """
    p = torch.arange(size, dtype=mu.dtype, device=mu.device) + 0.5
    return torch.softmax(-(mu.unsqueeze(-1) - p) ** 2 / (2 * sigma2.unsqueeze(-1)), dim=-1)


def linear_filterbank(mu: Tensor, size: int, border: bool) -> Tensor:
    """Eq. 9: weights ``ceil(u) - u`` at ``floor(u)`` and ``u - floor(u)`` at ``floor(u) + 1``,
    with ``u = mu - 0.5`` the position in index units.  ``border`` clamps ``u`` to the input, so
    positions past it read the border (what the samplers use, in space and time); without it they
    read zeros.  Returns ``(..., count, size)``.
    """
    u = mu - 0.5
    if border:
        u = u.clamp(0, size - 1)
    r0 = torch.floor(u).detach()
    frac = (u - r0).unsqueeze(-1)
    idx = torch.arange(size, dtype=mu.dtype, device=mu.device)
    r0 = r0.unsqueeze(-1)
    return (1 - frac) * (idx == r0).to(mu.dtype) + frac * (idx == r0 + 1).to(mu.dtype)


def offset_reach(centre: Tensor) -> Tensor:
    """How far (as a fraction of the map) a unit offset moves a path whose prior centre is
    ``centre``: eq. 4's ``1/2``, shrunk to the distance to the nearer border, so that
    ``centre + reach * d`` stays in the map for every ``|d| < 1`` (eq. 3's aim)."""
    return torch.minimum(torch.minimum(centre, 1 - centre), torch.full_like(centre, 0.5))


def smooth_offsets(d: Tensor) -> Tensor:
    """Sec. 4.2's centre smoothing as a causal mean: frame ``t`` of ``d`` ``(..., T, k)`` becomes
    ``(d^t + d^{t-1} + d^{t-2}) / 3``, the first frames repeating frame 0."""
    pad = torch.cat([d[..., :1, :], d[..., :1, :], d], dim=-2)
    return (pad[..., 2:, :] + pad[..., 1:-1, :] + pad[..., :-2, :]) / 3


def aspect_rows(parts: Sequence[str], height: int) -> list[int]:
    """``part_shape='aspect'``: grid rows per part on an ``H`` x ``W`` map, ``M = W`` columns and
    the part's aspect ratio (the authors' ``round(out_w / in_w * in_h)``), at most ``H``."""
    return [min(height, max(1, round(PARTS[p][2] * height / PARTS[p][3]))) for p in parts]


def locate(raw: Tensor, prior: Tensor, size: Sequence[int],
           rows: Sequence[int] | None = None) -> dict[str, Tensor]:
    """Raw localization output ``(n, P, T, 8)`` of ``P`` paths -> their sampling grids for an
    input of ``size = (T, H, W)`` (output ``M x N x L = W x H x T``).  ``prior`` ``(P, 4)``
    holds each path's ``(c_x, c_y, height, width)`` fractions (``PARTS``).  ``rows`` (one count
    per path, ``aspect_rows``) asks for ``part_shape='aspect'``: that many grid rows at the
    width's stride prior, centred, the other rows of ``mu_y`` set to the centre and masked out
    (``row_mask``).  Returns ``mu_x`` ``(n, P, T, M)``, ``mu_y`` ``(n, P, T, N)``, ``mu_t``
    ``(n, P, L)``, ``sigma2``, ``gamma`` ``(n, P)`` and, with ``rows``, ``row_mask`` ``(P, N)``.
    """
    t, h, w = size
    cx, cy, ph, pw = prior.to(raw.dtype).unbind(-1)  # each (P,)
    dxy = torch.tanh(raw[..., :2])  # per-frame offsets in (-1, 1)  (eq. 3)
    seq = raw[..., 2:].mean(dim=-2)  # per-sequence parameters (n, P, 6)
    dt = torch.tanh(seq[..., 0])
    sx = pw * torch.exp(seq[..., 1])  # log strides, relative to the part prior (eq. 3)
    sy = (ph if rows is None else pw) * torch.exp(seq[..., 2])
    st = PRIOR_ST * torch.exp(seq[..., 3])
    sigma2 = PRIOR_SIGMA**2 * torch.exp(seq[..., 4])  # log variance
    gamma = torch.sigmoid(seq[..., 5])  # confidence in (0, 1)
    dxy = smooth_offsets(dxy)  # Sec. 4.2: the mean of this and the previous two frames' offsets
    # Eqs. 4-5 with each offset's reach bounded by its prior's distance to the border (module
    # notes): the centre stays in the map whatever the network emits.
    centre_x = (cx.unsqueeze(-1) + offset_reach(cx).unsqueeze(-1) * dxy[..., 0]) * w  # eq. 4
    centre_y = (cy.unsqueeze(-1) + offset_reach(cy).unsqueeze(-1) * dxy[..., 1]) * h  # eq. 5
    centre_t = (PRIOR_CT + 0.5 * dt) * t  # eq. 6 (central prior: eq. 6's reach of 1/2)
    grid = {"mu_x": grid_positions(centre_x, sx.unsqueeze(-1), w),
            "mu_y": grid_positions(centre_y, sy.unsqueeze(-1), h),
            "mu_t": grid_positions(centre_t, st, t), "sigma2": sigma2, "gamma": gamma}
    if rows is not None:  # eq. 5 on each path's own row count, placed in the middle of N = H
        index = torch.arange(1, h + 1, dtype=raw.dtype, device=raw.device)
        top = torch.tensor([(h - r) // 2 for r in rows], dtype=raw.dtype, device=raw.device)
        count = torch.tensor(list(rows), dtype=raw.dtype, device=raw.device)
        j = (index - top.unsqueeze(-1)).unsqueeze(1)  # (P, 1, N): the row's index in its grid
        mask = ((j >= 1) & (j <= count.view(-1, 1, 1))).to(raw.dtype)
        offset = (j - count.view(-1, 1, 1) / 2 - 0.5) * mask  # padded rows sit at the centre
        grid["mu_y"] = centre_y.unsqueeze(-1) + offset * sy.unsqueeze(-1).unsqueeze(-1)
        grid["row_mask"] = mask[:, 0]
    return grid


def path_centres(mu_x: Tensor, mu_y: Tensor, size: Sequence[int],
                 tol: float = 1e-3) -> dict[str, Tensor]:
    """Each path's sampling centre per frame and whether it lies on the map.

    ``mu_x`` ``(..., M)`` and ``mu_y`` ``(..., N)`` are grid positions (``locate``'s output or an
    ``inspect`` record), ``size = (H, W)`` the sampled map.  The grid is symmetric about its
    centre (eqs. 4-5), so the centre is the mean position.  Returns ``x``, ``y`` and ``on_map``
    (``0 <= x <= W`` and ``0 <= y <= H``, give or take ``tol`` px of rounding: a saturated offset
    puts a centre exactly on the border), each ``(...)``.
    """
    h, w = size
    x, y = mu_x.mean(-1), mu_y.mean(-1)
    on_map = (x >= -tol) & (x <= w + tol) & (y >= -tol) & (y <= h + tol)
    return {"x": x, "y": y, "on_map": on_map}


def sample_volume(x: Tensor, mu_x: Tensor, mu_y: Tensor, mu_t: Tensor, sigma2: Tensor,
                  gamma: Tensor, sampler: str = "mixture", row_mask: Tensor | None = None) -> Tensor:
    """Eq. 10 for one path: ``V[k] = gamma sum_r T_T[k, r] G_X^r G_Y^r I[r]`` (module notes).

    ``x`` ``(n, C, T, H, W)``; ``mu_x`` ``(n, T, M)`` and ``mu_y`` ``(n, T, N)`` per input frame,
    ``mu_t`` ``(n, L)``, ``sigma2`` and ``gamma`` ``(n,)``; ``row_mask`` ``(N,)`` zeroes the
    padding rows of ``part_shape='aspect'``.  Returns ``(n, C, L, N, M)``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    n, _, t, h, w = x.shape
    s2 = sigma2.view(n, 1, 1)
    if sampler == "trilinear":
        gx = linear_filterbank(mu_x, w, border=True)
        gy = linear_filterbank(mu_y, h, border=True)
    else:
        gx = gaussian_filterbank(mu_x, s2, w)  # eq. 7, (n, T, M, W)
        gy = gaussian_filterbank(mu_y, s2, h)  # eq. 8, (n, T, N, H)
    if row_mask is not None:
        gy = gy * row_mask.unsqueeze(-1)
    v = torch.einsum("nctqp,ntip->nctqi", x, gx)  # (n, C, T, H, M)
    v = torch.einsum("ntjq,nctqi->nctji", gy, v)  # (n, C, T, N, M)
    if sampler == "gaussian":
        tt = gaussian_filterbank(mu_t, sigma2.view(n, 1), t)  # (n, L, T)
    else:
        tt = linear_filterbank(mu_t, t, border=True)  # eq. 9
    return torch.einsum("nlt,nctji->nclji", tt * gamma.view(n, 1, 1), v)  # (n, C, L, N, M)


__all__ = ["NUM_PARAMS", "PARTS", "PART_SHAPES", "SAMPLERS", "aspect_rows", "gaussian_filterbank",
           "grid_positions", "linear_filterbank", "locate", "offset_reach",
           "path_centres", "sample_volume", "smooth_offsets"]
