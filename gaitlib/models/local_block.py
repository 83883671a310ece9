"""The 3D local block of Huang et al., "3D Local Convolutional Neural Networks for Gait
Recognition", ICCV 2021 (Sec. 3, eqs. 1-10).

A block is a *global path* (any backbone block) plus local paths, one per body part.  Eqs. 1-2
define a local convolution as a conv whose neighbourhood is an adaptive volume ``V`` cut from the
input; here ``V`` is the sampled volume and the FE conv plays ``f, g`` of eq. 1.  Each local
path has four modules:

* **localization (L)**: reads the global path's output, *detached* (Sec. 3.2.1: "gradients of
  this module are not propagated to the global path"), and emits per eq. 3
  ``(atanh dx, atanh dy, atanh dt, log sx, log sy, log st, log sigma^2, logit gamma)``;
* **sampling (S)**: a separable filterbank (eqs. 4-10) that cuts an ``M x N x L`` volume out of
  the *block input* ``I`` (eqs. 4-6 measure the grid in the size of ``I``);
* **feature extraction (FE)**: one 3x3x3 conv + ReLU with half the global path's channels;
* **fusion (FS)**: concatenation of global and local outputs on channels, 1x1x1 conv + ReLU back
  to the global width.

Choices the paper leaves open (its supplementary tables are not available), with reasons:

* Output size: ``M x N x L`` equals the global output (``W x H x T``), because fusion
  concatenates on channels and Sec. 3.2.3 says FE keeps height, width and length.
* Part priors (centre ``c_x, c_y`` and extent as fractions of the map) come from the authors'
  code (SPEC §4).  The stride prior makes the grid span the part: ``s_x0 = w_part * W / M``;
  in time ``c_t = 0.5`` and ``s_t0 = 1`` (the whole sequence; the authors' code starts at 0.4).
  The network emits log-strides *relative* to these priors (``s = s0 * exp(out)``), i.e. eq. 3
  with the prior as a fixed bias, so an untrained path looks at its part.  ``sigma0 = 0.5`` px.
* Pixel ``p`` has its centre at ``p + 0.5``, so ``c_x W`` with ``c_x = 0.5`` is the true centre
  of the map; the grid index runs ``i = 1..M``, making eq. 4's ``i - M/2 - 0.5`` symmetric.
* ``dx, dy`` are per frame (Sec. 3.2.1 "in each frame"); ``dt`` and the strides, variance and
  confidence are per sequence: the temporal mean of per-frame outputs, which works for any
  length.  The localization net keeps the time axis (max-pools only in space) for that reason.
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
  integer positions).  Spatial sampling is done frame by frame
  with that frame's centre, then the frames are interpolated: the operators are linear and
  separable, so this is eq. 10's ``gamma G_X G_Y T_T I`` with per-frame ``G_X, G_Y``.
* ``sampler='gaussian'`` uses Gaussian filters on all three axes (same ``sigma^2``, in frames),
  ``'trilinear'`` linear interpolation on all three, ``'mixture'`` Gaussian in space and linear
  in time (eq. 10; the paper's default).
* Localization layers follow Sec. 3.2.1 ("Batch Normalization and ReLU non-linearity are adopted
  after input and each convolutional layer"): BN+ReLU on the input, max-pool, three convs each
  followed by BN+ReLU (a max-pool after the second), a spatial max-pool to 2 x 2 and the FC.
  Widths follow the authors' ``Localization3D`` (hidden = C/2), without its temporal pooling
  and its BN after the FC (which would start every path at a random offset); the FC starts
  near zero (std 1e-3) so paths start at their priors and still pass gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import BasicConv3d

SAMPLERS = ("gaussian", "trilinear", "mixture")

# Part priors from the authors' code on a 16 x 11 map (SPEC §4):
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


# ---------------------------------------------------------------------------------------------
# Sampling (eqs. 4-10), as functions of the location parameters
# ---------------------------------------------------------------------------------------------

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


def locate(raw: Tensor, prior: Tensor, size: Sequence[int]) -> dict[str, Tensor]:
    """Raw localization output ``(n, P, T, 8)`` of ``P`` paths -> their sampling grids for an
    input of ``size = (T, H, W)`` (output ``M x N x L = W x H x T``).  ``prior`` ``(P, 4)``
    holds each path's ``(c_x, c_y, height, width)`` fractions (``PARTS``).  Returns ``mu_x``
    ``(n, P, T, M)``, ``mu_y`` ``(n, P, T, N)``, ``mu_t`` ``(n, P, L)``, ``sigma2``, ``gamma``
    ``(n, P)``.
    """
    t, h, w = size
    cx, cy, ph, pw = prior.to(raw.dtype).unbind(-1)  # each (P,)
    dxy = torch.tanh(raw[..., :2])  # per-frame offsets in (-1, 1)  (eq. 3)
    seq = raw[..., 2:].mean(dim=-2)  # per-sequence parameters (n, P, 6)
    dt = torch.tanh(seq[..., 0])
    sx = pw * torch.exp(seq[..., 1])  # log strides, relative to the part prior (eq. 3)
    sy = ph * torch.exp(seq[..., 2])
    st = PRIOR_ST * torch.exp(seq[..., 3])
    sigma2 = PRIOR_SIGMA**2 * torch.exp(seq[..., 4])  # log variance
    gamma = torch.sigmoid(seq[..., 5])  # confidence in (0, 1)
    dxy = smooth_offsets(dxy)  # Sec. 4.2: the mean of this and the previous two frames' offsets
    # Eqs. 4-5 with each offset's reach bounded by its prior's distance to the border (module
    # notes): the centre stays in the map whatever the network emits.
    centre_x = (cx.unsqueeze(-1) + offset_reach(cx).unsqueeze(-1) * dxy[..., 0]) * w  # eq. 4
    centre_y = (cy.unsqueeze(-1) + offset_reach(cy).unsqueeze(-1) * dxy[..., 1]) * h  # eq. 5
    centre_t = (PRIOR_CT + 0.5 * dt) * t  # eq. 6 (central prior: eq. 6's reach of 1/2)
    return {"mu_x": grid_positions(centre_x, sx.unsqueeze(-1), w),
            "mu_y": grid_positions(centre_y, sy.unsqueeze(-1), h),
            "mu_t": grid_positions(centre_t, st, t),
            "sigma2": sigma2, "gamma": gamma}


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


def sample_volumes(x: Tensor, mu_x: Tensor, mu_y: Tensor, mu_t: Tensor, sigma2: Tensor,
                   gamma: Tensor, sampler: str = "mixture") -> Tensor:
    """Eq. 10 for ``P`` paths at once: ``V_p = gamma_p G_X G_Y T_T I``.

    ``x`` ``(n, C, T, H, W)``; ``mu_x`` ``(n, P, T, M)`` and ``mu_y`` ``(n, P, T, N)`` per input
    frame, ``mu_t`` ``(n, P, L)``, ``sigma2`` and ``gamma`` ``(n, P)``.
    Returns ``(n, P, C, L, N, M)``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    _, _, t, h, w = x.shape
    s2 = sigma2.unsqueeze(-1).unsqueeze(-1)
    if sampler == "trilinear":
        gx = linear_filterbank(mu_x, w, border=True)
        gy = linear_filterbank(mu_y, h, border=True)
    else:
        gx = gaussian_filterbank(mu_x, s2, w)  # eq. 7, (n, P, T, M, W)
        gy = gaussian_filterbank(mu_y, s2, h)  # eq. 8, (n, P, T, N, H)
    if sampler == "gaussian":
        tt = gaussian_filterbank(mu_t, sigma2.unsqueeze(-1), t)  # (n, P, L, T)
    else:
        tt = linear_filterbank(mu_t, t, border=True)  # eq. 9
    # Separable, one axis at a time; x is shared by the paths, so the first product reads it
    # once for all of them.
    v = torch.einsum("nctqp,nztip->nzctqi", x, gx)  # (n, P, C, T, H, M)
    v = torch.einsum("nztjq,nzctqi->nzctji", gy, v)  # (n, P, C, T, N, M)
    v = torch.einsum("nzlt,nzctji->nzclji", tt, v)  # (n, P, C, L, N, M)
    return v * gamma.reshape(*gamma.shape, 1, 1, 1, 1)


def sample_volume(x: Tensor, mu_x: Tensor, mu_y: Tensor, mu_t: Tensor, sigma2: Tensor,
                  gamma: Tensor, sampler: str = "mixture") -> Tensor:
    """Eq. 10: ``V = gamma G_X G_Y T_T I`` for one path.

    ``x`` ``(n, C, T, H, W)``; ``mu_x`` ``(n, T, M)`` and ``mu_y`` ``(n, T, N)`` per input frame,
    ``mu_t`` ``(n, L)``, ``sigma2`` and ``gamma`` ``(n,)``.  Returns ``(n, C, L, N, M)``.
    """
    grid = (mu_x, mu_y, mu_t, sigma2, gamma)
    return sample_volumes(x, *(g.unsqueeze(1) for g in grid), sampler)[:, 0]


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------

class Localization(nn.Module):
    """L (eq. 3): detached global features ``(n, C, T, H, W)`` -> raw parameters ``(n, T, 8)``."""

    def __init__(self, channels: int):
        super().__init__()
        hid = max(channels // 2, 1)
        pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.convs = nn.Sequential(
            nn.BatchNorm3d(channels), nn.ReLU(inplace=True), pool,
            BasicConv3d(channels, hid, 1, padding=0), nn.BatchNorm3d(hid), nn.ReLU(inplace=True),
            BasicConv3d(hid, hid, 3), nn.BatchNorm3d(hid), nn.ReLU(inplace=True), pool,
            BasicConv3d(hid, hid, 3), nn.BatchNorm3d(hid), nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool3d((None, 2, 2)))
        self.fc = nn.Linear(hid * 4, NUM_PARAMS)

    def reset_fc(self) -> None:
        nn.init.normal_(self.fc.weight, std=1e-3)
        nn.init.zeros_(self.fc.bias)

    def forward(self, g: Tensor) -> Tensor:
        z = self.convs(g)  # (n, hid, T, 2, 2)
        n, c, t = z.shape[:3]
        return self.fc(z.permute(0, 2, 1, 3, 4).reshape(n, t, c * 4))


class LocalPath(nn.Module):
    """One body part: localization, sampling, feature extraction (Fig. 2)."""

    def __init__(self, part: str, in_channels: int, global_channels: int, sampler: str,
                 feature_extraction: bool = True, fe_convs: int = 1):
        super().__init__()
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; valid: {', '.join(PARTS)}")
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
        self.part, self.sampler = part, sampler
        self.localization = Localization(global_channels)
        self.out_channels = global_channels // 2 if feature_extraction else in_channels
        fe: list[nn.Module] = []
        for k in range(fe_convs if feature_extraction else 0):  # Sec. 3.2.3: 3x3x3 + ReLU
            fe += [BasicConv3d(in_channels if k == 0 else self.out_channels, self.out_channels),
                   nn.ReLU(inplace=True)]
        self.feature_extraction = nn.Sequential(*fe)

    def locate(self, raw: Tensor, size: Sequence[int]) -> dict[str, Tensor]:
        """Raw localization output ``(n, T, 8)`` -> sampling grid for an input of
        ``size = (T, H, W)`` (output ``M x N x L = W x H x T``); see ``locate``."""
        prior = torch.tensor([PARTS[self.part]], dtype=raw.dtype, device=raw.device)
        return {k: v[:, 0] for k, v in locate(raw.unsqueeze(1), prior, size).items()}

    def forward(self, x: Tensor, g: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``x`` block input, ``g`` global output.  Returns (features, volume, grid).
        ``LocalBlock3D`` runs all its paths at once instead; this is the one-path form."""
        raw = self.localization(g.detach())  # no gradient into the global path
        grid = self.locate(raw, x.shape[2:])
        vol = sample_volume(x, grid["mu_x"], grid["mu_y"], grid["mu_t"], grid["sigma2"],
                            grid["gamma"], self.sampler)
        return self.feature_extraction(vol), vol, grid


# ---------------------------------------------------------------------------------------------
# All paths of a block at once.  Every path of a block has the same layer shapes, and its
# localization reads the same global features, so each layer of the P paths runs as one grouped
# conv (groups = P, the paths' weights concatenated on output channels) over the paths'
# inputs stacked on channels.  The weights stay in the per-path modules above (same parameters,
# same checkpoints); only the calls are batched.  The maths is that of ``LocalPath.forward``.
# ---------------------------------------------------------------------------------------------

def _grouped_conv(z: Tensor, convs: Sequence[nn.Conv3d]) -> Tensor:
    """The convs of P paths on their inputs stacked on channels, ``(n, P * C_in, ...)``."""
    c = convs[0]
    w = torch.cat([m.weight for m in convs])
    return F.conv3d(z, w, None, c.stride, c.padding, c.dilation, len(convs) * c.groups)


def _batch_norm(z: Tensor, bns: Sequence[nn.BatchNorm3d]) -> Tensor:
    """P paths' BatchNorms on their channels stacked, ``(n, P * C, ...)``: statistics are per
    channel, so this is each module's own forward, running statistics included."""
    b0 = bns[0]
    w, b = torch.cat([m.weight for m in bns]), torch.cat([m.bias for m in bns])
    mean, var = torch.cat([m.running_mean for m in bns]), torch.cat([m.running_var for m in bns])
    if not b0.training:
        return F.batch_norm(z, mean, var, w, b, False, 0.0, b0.eps)
    for m in bns:
        m.num_batches_tracked.add_(1)
    momentum = 1.0 / float(b0.num_batches_tracked) if b0.momentum is None else b0.momentum
    out = F.batch_norm(z, mean, var, w, b, True, momentum, b0.eps)  # updates mean, var
    for m, mu, v in zip(bns, mean.chunk(len(bns)), var.chunk(len(bns)), strict=True):
        m.running_mean.copy_(mu)
        m.running_var.copy_(v)
    return out


def _shared_batch_norm(g: Tensor, bns: Sequence[nn.BatchNorm3d]) -> tuple[Tensor, Tensor]:
    """P BatchNorms on the *same* input ``g`` ``(n, C, ...)`` (no gradient), as per-channel
    affine maps ``a x + b``: returns ``a, b`` ``(P, C)``, updating running statistics as each
    module's forward would.  The batch statistics of a shared input are computed once."""
    b0 = bns[0]
    w, b = torch.stack([m.weight for m in bns]), torch.stack([m.bias for m in bns])
    if b0.training:
        var, mean = torch.var_mean(g, dim=[d for d in range(g.dim()) if d != 1], unbiased=False)
        count = g.numel() // g.shape[1]
        unbiased = var * count / max(count - 1, 1)
        for m in bns:
            m.num_batches_tracked.add_(1)
            f = 1.0 / float(m.num_batches_tracked) if m.momentum is None else m.momentum
            m.running_mean.mul_(1 - f).add_(mean, alpha=f)
            m.running_var.mul_(1 - f).add_(unbiased, alpha=f)
    else:
        mean = torch.stack([m.running_mean for m in bns])
        var = torch.stack([m.running_var for m in bns])
    a = w * torch.rsqrt(var + b0.eps)
    return a, b - mean * a


def localize_paths(g: Tensor, locs: Sequence[Localization]) -> Tensor:
    """L (eq. 3) of P paths on the same detached global features ``g`` ``(n, C, T, H, W)``:
    raw parameters ``(n, P, T, 8)``, path ``p`` equal to ``locs[p](g)``."""
    p, (n, c, t) = len(locs), g.shape[:3]
    layers = [loc.convs for loc in locs]
    pool = layers[0][2]
    # BN + ReLU + max-pool.  BN of a shared input is an affine map a x + b per path and channel,
    # and relu(a x + b) is monotone in x, so its window max is relu(a max x + b) (a >= 0) or
    # relu(a min x + b) (a < 0): pool g once instead of P times the BN's output.
    a, b = _shared_batch_norm(g, [s[0] for s in layers])
    a, b = a.reshape(1, p, c, 1, 1, 1), b.reshape(1, p, c, 1, 1, 1)
    hi = pool(g).unsqueeze(1)  # (n, 1, C, T, H', W')
    pooled = torch.where(a >= 0, hi, -pool(-g).unsqueeze(1)) if bool((a < 0).any()) else hi
    z = torch.relu(pooled * a + b).flatten(1, 2)  # (n, P * C, T, H', W')
    z = torch.relu(_batch_norm(_grouped_conv(z, [s[3] for s in layers]), [s[4] for s in layers]))
    z = torch.relu(_batch_norm(_grouped_conv(z, [s[6] for s in layers]), [s[7] for s in layers]))
    z = torch.relu(_batch_norm(_grouped_conv(pool(z), [s[10] for s in layers]),
                               [s[11] for s in layers]))
    z = layers[0][13](z)  # (n, P * hid, T, 2, 2)
    z = z.reshape(n, p, -1, t, 4).transpose(2, 3).flatten(3)  # (n, P, T, hid * 4)
    w = torch.stack([loc.fc.weight for loc in locs])  # (P, 8, hid * 4)
    bias = torch.stack([loc.fc.bias for loc in locs])
    return torch.einsum("nptk,pok->npto", z, w) + bias.unsqueeze(1)


def extract_features(vol: Tensor, fes: Sequence[nn.Sequential]) -> Tensor:
    """FE (Sec. 3.2.3) of P paths on their volumes ``(n, P, C, L, N, M)``: ``(n, P * C', L, N,
    M)``, the paths' features concatenated on channels (the volumes themselves without FE)."""
    z = vol.flatten(1, 2)
    for k in range(0, len(fes[0]), 2):  # conv + ReLU pairs
        z = torch.relu(_grouped_conv(z, [fe[k] for fe in fes]))
    return z


class LocalBlock3D(nn.Module):
    """Global path + local paths + fusion (Fig. 2).  ``forward(x, g)`` takes the block input
    ``x`` ``(n, C_in, T, H, W)`` and the global path's output ``g`` ``(n, C, T, H, W)`` (same
    ``T, H, W``) and returns the fused ``(n, C, T, H, W)``.

    Set ``record = True`` to keep, after each forward, the sampled volumes and grids of every
    path in ``recorded`` (detached copies; the computation is unchanged): the Fig. 4 hook.
    """

    def __init__(self, in_channels: int, global_channels: int, paths: Sequence[str],
                 sampler: str = "mixture", feature_extraction: bool = True, fe_convs: int = 1):
        super().__init__()
        if not paths:
            raise ValueError("a local block needs at least one local path")
        self.sampler = sampler
        self.paths = nn.ModuleDict({p: LocalPath(p, in_channels, global_channels, sampler,
                                                 feature_extraction, fe_convs) for p in paths})
        self.branch_channels = {"global": global_channels}
        self.branch_channels.update({p: m.out_channels for p, m in self.paths.items()})
        self.fusion = nn.Sequential(  # Sec. 3.2.4: concat, 1x1x1 conv + ReLU
            BasicConv3d(sum(self.branch_channels.values()), global_channels, 1, padding=0),
            nn.ReLU(inplace=True))
        self.record = False
        self.recorded: dict[str, dict[str, Tensor]] = {}

    def reset_localization(self) -> None:
        for path in self.paths.values():
            path.localization.reset_fc()

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        """Every path's ``LocalPath.forward``, batched over the paths, then fusion."""
        paths = list(self.paths.values())
        raw = localize_paths(g.detach(), [p.localization for p in paths])  # no grad into global
        prior = torch.tensor([PARTS[name] for name in self.paths], dtype=x.dtype, device=x.device)
        grid = locate(raw, prior, x.shape[2:])
        vol = sample_volumes(x, grid["mu_x"], grid["mu_y"], grid["mu_t"], grid["sigma2"],
                             grid["gamma"], self.sampler)  # (n, P, C_in, T, H, W)
        feats = extract_features(vol, [p.feature_extraction for p in paths])
        if self.record:
            for i, name in enumerate(self.paths):
                self.recorded[name] = {"volume": vol[:, i].detach(),
                                       **{k: v[:, i].detach() for k, v in grid.items()}}
        return self.fusion(torch.cat([g, feats], dim=1))

    def fusion_weights(self, absolute: bool = True) -> dict[str, float]:
        """Mean fusion weight per branch (Fig. 4b): the 1x1x1 conv's weights averaged over
        output channels and the branch's input channels (mean |w| unless ``absolute=False``)."""
        w = self.fusion[0].weight.detach().flatten(1)
        w = w.abs() if absolute else w
        out, start = {}, 0
        for name, c in self.branch_channels.items():
            out[name] = w[:, start:start + c].mean().item()
            start += c
        return out


__all__ = ["PARTS", "SAMPLERS", "LocalBlock3D", "LocalPath", "Localization", "extract_features",
           "gaussian_filterbank", "grid_positions", "linear_filterbank", "localize_paths", "locate",
           "offset_reach", "path_centres", "sample_volume", "sample_volumes", "smooth_offsets"]
