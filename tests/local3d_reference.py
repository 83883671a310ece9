"""The 3D local block as gaitlib computed it before its memory rewrite: the float64 reference
that ``tests/test_local3d.py`` holds the current block to (outputs, gradients, BatchNorm
statistics), and the "previous" formulation of ``bench/local3d_memory.py``.

The code below is the earlier ``gaitlib/models/local_block.py`` (its sampling functions, modules
and batched block, not its inspection helpers) with one change: its data-dependent sign test (a
host sync) reads False on fake tensors, which hold no values (the bench measures models at
initialisation, whose BatchNorm scales are ~ N(1, 0.02), all positive, where that test is False
too).  ``reference_of(block)`` builds it with a current
block's weights and statistics; ``in_block_layout`` maps its tensors back to the current names.
"""

# ruff: noqa: E501

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensor

from gaitlib.models.blocks import BasicConv3d
from gaitlib.models.local_sampling import PARTS, SAMPLERS

PRIOR_CT, PRIOR_ST, PRIOR_SIGMA = 0.5, 1.0, 0.5
NUM_PARAMS = 8


def _any(t: Tensor) -> bool:
    return False if isinstance(t, FakeTensor) else bool(t.any())


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
    pooled = torch.where(a >= 0, hi, -pool(-g).unsqueeze(1)) if _any(a < 0) else hi
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


# ---------------------------------------------------------------------------------------------
# The current block's tensors in the reference layout and back
# ---------------------------------------------------------------------------------------------

# The reference localization's Sequential: BN, ReLU, pool, conv, BN, ReLU, conv, BN, ReLU, pool,
# conv, BN, ReLU, adaptive pool.  Its (conv, BN) positions and the current layers' names:
_LOCALIZATION_LAYERS = (("3", "squeeze"), ("4", "squeeze_norm"), ("6", "conv1"),
                        ("7", "conv1_norm"), ("10", "conv2"), ("11", "conv2_norm"))


def _pairs(block) -> list[tuple[str, str, int | None]]:
    """(current name, reference name, slice index or None for a shared tensor) of every
    parameter and buffer; slice ``i`` is path ``i``'s part of a tensor holding all paths."""
    out = []
    for i, part in enumerate(block.parts):
        ref = f"paths.{part}.localization"
        out += [("localization.input_scale", f"{ref}.convs.0.weight", i),
                ("localization.input_shift", f"{ref}.convs.0.bias", i)]
        out += [(f"localization.input_norm.{k}", f"{ref}.convs.0.{k}", None)
                for k in ("running_mean", "running_var", "num_batches_tracked")]
        for pos, name in _LOCALIZATION_LAYERS:
            keys = ("weight",) if "norm" not in name else (
                "weight", "bias", "running_mean", "running_var", "num_batches_tracked")
            out += [(f"localization.{name}.{k}", f"{ref}.convs.{pos}.{k}",
                     None if k == "num_batches_tracked" else i) for k in keys]
        out += [("localization.fc_weight", f"{ref}.fc.weight", i),
                ("localization.fc_bias", f"{ref}.fc.bias", i)]
        out += [(f"feature_extraction.{part}.{k}", f"paths.{part}.feature_extraction.{k}", None)
                for k in block.feature_extraction[part].state_dict()]
    return out + [("fusion.0.weight", "fusion.0.weight", None)]


def _stacked(name: str) -> bool:
    """Tensors with one row per path (the others hold the paths' slices end to end)."""
    return name.endswith(("input_scale", "input_shift", "fc_weight", "fc_bias"))


def reference_of(block) -> LocalBlock3D:
    """The reference block with ``block``'s parameters and BatchNorm statistics, same dtype,
    device and mode."""
    fe = block.feature_extraction[block.parts[0]]
    convs = sum(1 for m in fe if isinstance(m, nn.Conv3d))
    in_channels = fe[0].in_channels if convs else block.branch_channels[block.parts[0]]
    ref = LocalBlock3D(in_channels, block.branch_channels["global"], block.parts, block.sampler,
                       convs > 0, max(convs, 1))
    first = next(block.parameters())
    if (first.dtype, first.device) != (torch.get_default_dtype(), torch.device("cpu")):
        ref.to(device=first.device, dtype=first.dtype)  # (fake tensors cannot be moved)
    current, state = block.state_dict(), {}
    for name, ref_name, i in _pairs(block):
        t = current[name]
        state[ref_name] = t if i is None else t[i] if _stacked(name) else t.chunk(len(block.parts))[i]
    ref.load_state_dict(state, strict=True)
    return ref.train(block.training)


def in_block_layout(ref: LocalBlock3D, block, what: str = "state") -> dict[str, Tensor]:
    """``ref``'s state (``what='state'``) or parameter gradients (``'grad'``) under ``block``'s
    names: the paths' slices put together, shared tensors taken from the first path (see
    ``shared_copies_agree`` for the others)."""
    if what == "grad":
        source = {k: p.grad for k, p in ref.named_parameters()}
        names = {k for k, _ in block.named_parameters()}
    else:
        source, names = ref.state_dict(), set(block.state_dict())
    groups: dict[str, list[Tensor]] = {}
    for name, ref_name, i in _pairs(block):
        if name in names:
            groups.setdefault(name, [])
            if i is not None or not groups[name]:
                groups[name].append(source[ref_name])
    return {name: (torch.stack(parts) if _stacked(name) else torch.cat(parts))
            if len(parts) > 1 or _stacked(name) else parts[0] for name, parts in groups.items()}


def shared_copies_agree(ref: LocalBlock3D) -> bool:
    """The reference keeps every path's copy of the statistics of the shared input; the current
    block keeps one.  True when all paths' copies are equal."""
    first = None
    for path in ref.paths.values():
        bn = path.localization.convs[0]
        now = (bn.running_mean, bn.running_var, bn.num_batches_tracked)
        if first is not None and not all(torch.equal(a, b) for a, b in zip(first, now, strict=True)):
            return False
        first = now
    return True
