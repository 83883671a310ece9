"""The 3D local block of Huang et al., "3D Local Convolutional Neural Networks for Gait
Recognition", ICCV 2021 (Sec. 3, eqs. 1-10).

A block is a *global path* (any backbone block) plus local paths, one per body part.  Eqs. 1-2
define a local convolution as a conv whose neighbourhood is an adaptive volume ``V`` cut from the
input; here ``V`` is the sampled volume and the FE conv plays ``f, g`` of eq. 1.  Each local
path has four modules:

* **localization (L)**: reads the global path's output, *detached* (Sec. 3.2.1: "gradients of
  this module are not propagated to the global path"), and emits per eq. 3
  ``(atanh dx, atanh dy, atanh dt, log sx, log sy, log st, log sigma^2, logit gamma)``;
* **sampling (S)**: a separable filterbank (eqs. 4-10, ``local_sampling.py``, where the choices
  about grids, priors, borders and the order of eq. 10's factors are listed) that cuts an
  ``M x N x L`` volume out of the *block input* ``I`` (eqs. 4-6 measure the grid in its size);
* **feature extraction (FE)**: one 3x3x3 conv + ReLU with half the global path's channels;
* **fusion (FS)**: concatenation of global and local outputs on channels, 1x1x1 conv + ReLU back
  to the global width.

Localization layers follow Sec. 3.2.1 ("Batch Normalization and ReLU non-linearity are adopted
after input and each convolutional layer"): BN+ReLU on the input, max-pool, three convs each
followed by BN+ReLU (a max-pool after the second), a spatial max-pool to 2 x 2 and the FC; the
net keeps the time axis (max-pools only in space), since ``dx, dy`` are per frame.  Widths follow
the authors' ``Localization3D`` (hidden = C/2), without its temporal pooling and its BN after the
FC (which would start every path at a random offset); the FC starts near zero (std 1e-3) so paths
start at their priors and still pass gradients.

How it runs (the maths is the per-path description above; the tests hold the two equal):

* The ``P`` localization nets of a block read the same input, so :class:`Localization` holds
  them side by side: each conv is one grouped conv (``groups = P``, path ``p``'s weights in the
  ``p``-th slice, initialised as its own conv) and each BatchNorm one ``nn.BatchNorm3d`` over the
  ``P`` paths' channels (BatchNorm is per channel).  The input BatchNorms of the ``P`` paths
  see the same input, so they share its statistics (``input_norm``) and differ only in their
  affine maps (``input_scale``, ``input_shift``).  All are real BatchNorm modules, so
  ``nn.SyncBatchNorm.convert_sync_batchnorm`` covers them.
* Sampling, FE and fusion run path by path, and fusion as one 1x1x1 conv per branch summed (the
  conv of the concatenation, split by input channels), so no concatenation is ever built; FE
  is one dense conv per path (never PyTorch's depthwise 3D kernel, which block 1's single input
  channel per path would pick for a grouped conv).  Nothing after the localization mixes
  sequences, so this runs over chunks of the batch (``CHUNK_ELEMENTS``), as do the
  localization's per-sequence layers: the kernels that index with 32-bit integers on CUDA
  (max-pooling, depthwise convs) stay below 2^31 elements at every paper batch.
* ``recompute = True`` (``build('local3d', recompute=True)``) trades time for memory in
  training: each chunk's sampling, FE and fusion, and the localization, keep nothing for the
  backward pass but their inputs and are recomputed there (activation checkpointing); the
  localization's recomputation leaves BatchNorm running statistics untouched, so both settings
  compute the same outputs, gradients and statistics.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .blocks import BasicConv3d
from .local_sampling import (
    NUM_PARAMS,
    PART_SHAPES,
    PARTS,
    SAMPLERS,
    aspect_rows,
    locate,
    sample_volume,
)

# Largest intermediate a chunk of the batch may make, in elements (1 GiB in fp32): far below
# the 2^31 - 1 elements that some CUDA kernels (max-pooling, depthwise 3D convs) index with int32.
CHUNK_ELEMENTS = 2**28


def rows_per_chunk(rows: int, per_row: int, limit: int | None = None) -> int:
    """How many rows of a batch of ``rows`` to process at once when each row makes ``per_row``
    elements of intermediate results: as many as keep a chunk within ``limit`` (default
    ``CHUNK_ELEMENTS``), at least 1."""
    limit = CHUNK_ELEMENTS if limit is None else limit
    return max(1, min(rows, limit // max(per_row, 1)))


def over_batch(fn: Callable[..., Tensor], *xs: Tensor, per_row: int) -> Tensor:
    """``fn(*xs)`` over chunks of the batch (dim 0) within ``CHUNK_ELEMENTS``, concatenated; one
    call when the batch fits.  Only for ``fn`` that treats the rows of the batch independently."""
    step = rows_per_chunk(xs[0].shape[0], per_row)
    if step >= xs[0].shape[0]:
        return fn(*xs)
    return torch.cat([fn(*part) for part in zip(*(x.split(step) for x in xs), strict=True)])


@contextlib.contextmanager
def _running_stats_kept(module: nn.Module) -> Iterator[None]:
    """``module``'s BatchNorms run with momentum 0 (their running statistics stay as they are)
    and get their batch counters back: a recomputation must not count the batch twice.  (Doing
    without the running statistics instead would save other tensors for the backward pass than
    the forward did.)"""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    kept = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
            for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, kept, strict=True):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


def recomputed(fn: Callable[..., Any], *args: Tensor, norms_of: nn.Module | None = None) -> Any:
    """``fn(*args)`` with activation checkpointing: nothing kept for the backward pass but the
    inputs, ``fn`` run again there.  ``norms_of``: a module whose BatchNorms ``fn`` runs; in the
    recomputation they keep the running statistics the forward pass left."""
    calls = []

    def run(*inputs: Tensor) -> Any:
        again = norms_of is not None and bool(calls)
        calls.append(1)
        with _running_stats_kept(norms_of) if again else contextlib.nullcontext():
            return fn(*inputs)

    return checkpoint(run, *args, use_reentrant=False, preserve_rng_state=False)


class Localization(nn.Module):
    """L (eq. 3) of ``paths`` local paths on the same detached global features ``(n, C, T, H,
    W)``: raw parameters ``(n, P, T, 8)``.  Path ``p``'s layers are the ``p``-th slices (module
    notes)."""

    def __init__(self, channels: int, paths: int):
        super().__init__()
        hid = max(channels // 2, 1)
        self.paths, self.hidden = paths, hid
        self.input_norm = nn.BatchNorm3d(channels, affine=False)  # statistics of the shared input
        self.input_scale = nn.Parameter(torch.ones(paths, channels))  # each path's BN affine
        self.input_shift = nn.Parameter(torch.zeros(paths, channels))
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.squeeze = BasicConv3d(paths * channels, paths * hid, 1, padding=0, groups=paths)
        self.squeeze_norm = nn.BatchNorm3d(paths * hid)
        self.conv1 = BasicConv3d(paths * hid, paths * hid, 3, groups=paths)
        self.conv1_norm = nn.BatchNorm3d(paths * hid)
        self.conv2 = BasicConv3d(paths * hid, paths * hid, 3, groups=paths)
        self.conv2_norm = nn.BatchNorm3d(paths * hid)
        self.spatial_pool = nn.AdaptiveMaxPool3d((None, 2, 2))
        self.fc_weight = nn.Parameter(torch.zeros(paths, NUM_PARAMS, hid * 4))
        self.fc_bias = nn.Parameter(torch.zeros(paths, NUM_PARAMS))
        self.recompute = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each path's layers initialised as its own modules would be (``init_weights``:
        Xavier convs, BatchNorm scales ~ N(1, 0.02)); the FC near zero (std 1e-3)."""
        with torch.no_grad():
            for conv in (self.squeeze, self.conv1, self.conv2):
                for weight in conv.weight.chunk(self.paths):
                    nn.init.xavier_uniform_(weight)
            for scale, shift in ((self.input_scale, self.input_shift),
                                 *((n.weight, n.bias) for n in (self.squeeze_norm, self.conv1_norm,
                                                                self.conv2_norm))):
                nn.init.normal_(scale, 1.0, 0.02)
                nn.init.zeros_(shift)
            nn.init.normal_(self.fc_weight, std=1e-3)
            nn.init.zeros_(self.fc_bias)

    def forward(self, g: Tensor) -> Tensor:
        if self.recompute and self.training and torch.is_grad_enabled():
            return recomputed(self._localize, g, norms_of=self)
        return self._localize(g)

    def _input_layers(self, normed: Tensor) -> Tensor:
        """Each path's input BN affine + ReLU + max-pool, then the 1x1x1 conv.  ``relu(a x + b)``
        is monotone in ``x``, so its window max is ``relu(a max x + b)`` (``a >= 0``) or
        ``relu(a min x + b)`` (``a < 0``): the shared input is pooled once for all paths."""
        p, c = self.input_scale.shape
        scale = self.input_scale.view(1, p, c, 1, 1, 1)
        shift = self.input_shift.view(1, p, c, 1, 1, 1)
        high = self.pool(normed).unsqueeze(1)  # (n, 1, C, T, H', W')
        low = -self.pool(-normed).unsqueeze(1)
        z = torch.relu(torch.where(scale >= 0, high * scale, low * scale) + shift)
        return self.squeeze(z.flatten(1, 2))  # (n, P * hid, T, H', W')

    def _localize(self, g: Tensor) -> Tensor:
        n, c, t, h, w = g.shape
        normed = self.input_norm(g)
        per_row = max(self.paths * c * t * ((h + 1) // 2) * ((w + 1) // 2), c * t * h * w)
        z = torch.relu(self.squeeze_norm(over_batch(self._input_layers, normed, per_row=per_row)))
        z = torch.relu(self.conv1_norm(self.conv1(z)))
        z = over_batch(self.pool, z, per_row=math.prod(z.shape[1:]))
        z = torch.relu(self.conv2_norm(self.conv2(z)))
        z = self.spatial_pool(z)  # (n, P * hid, T, 2, 2)
        z = z.reshape(n, self.paths, self.hidden, t, 4).transpose(2, 3).flatten(3)  # (n, P, T, k)
        return torch.einsum("nptk,pok->npto", z, self.fc_weight) + self.fc_bias.unsqueeze(1)


def _feature_extraction(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    """FE of one path (Sec. 3.2.3): ``convs`` times a 3x3x3 conv + ReLU (none: the identity)."""
    layers: list[nn.Module] = []
    for k in range(convs):
        layers += [BasicConv3d(in_channels if k == 0 else out_channels, out_channels),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class LocalBlock3D(nn.Module):
    """Global path + local paths + fusion (Fig. 2).  ``forward(x, g)`` takes the block input
    ``x`` ``(n, C_in, T, H, W)`` and the global path's output ``g`` ``(n, C, T, H, W)`` (same
    ``T, H, W``) and returns the fused ``(n, C, T, H, W)``.

    ``part_shape='aspect'`` samples each part on the authors' aspect-keeping grid (see
    ``local_sampling``).  Set ``record = True`` to keep, after each forward, the sampled volumes
    and grids of every path in ``recorded`` (detached copies; the computation is unchanged): the
    Fig. 4 hook.  ``recompute`` (module notes) is set by ``Local3DCNN``.
    """

    def __init__(self, in_channels: int, global_channels: int, paths: Sequence[str],
                 sampler: str = "mixture", feature_extraction: bool = True, fe_convs: int = 1,
                 part_shape: str = "stretch"):
        super().__init__()
        if not paths:
            raise ValueError("a local block needs at least one local path")
        unknown = sorted(set(paths) - set(PARTS))
        if unknown:
            raise ValueError(f"unknown part(s) {unknown}; valid: {', '.join(PARTS)}")
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
        if part_shape not in PART_SHAPES:
            raise ValueError(f"unknown part_shape {part_shape!r}; valid: {', '.join(PART_SHAPES)}")
        self.parts, self.sampler, self.part_shape = tuple(paths), sampler, part_shape
        self.localization = Localization(global_channels, len(self.parts))
        local = global_channels // 2 if feature_extraction else in_channels
        self.feature_extraction = nn.ModuleDict({
            p: _feature_extraction(in_channels, local, fe_convs if feature_extraction else 0)
            for p in self.parts})
        self.branch_channels = {"global": global_channels, **{p: local for p in self.parts}}
        self.fusion = nn.Sequential(  # Sec. 3.2.4: concat, 1x1x1 conv + ReLU
            BasicConv3d(sum(self.branch_channels.values()), global_channels, 1, padding=0),
            nn.ReLU(inplace=True))
        # float64 so that a float64 model computes eqs. 4-6 from the exact fractions
        self.register_buffer("priors", torch.tensor([PARTS[p] for p in self.parts],
                                                    dtype=torch.float64), persistent=False)
        self.record = False
        self.recorded: dict[str, dict[str, Tensor]] = {}

    @property
    def recompute(self) -> bool:
        return self.localization.recompute

    @recompute.setter
    def recompute(self, value: bool) -> None:
        self.localization.recompute = bool(value)

    def reset_localization(self) -> None:
        self.localization.reset_parameters()

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        raw = self.localization(g.detach())  # no gradient into the global path (Sec. 3.2.1)
        rows = aspect_rows(self.parts, x.shape[3]) if self.part_shape == "aspect" else None
        grid = locate(raw, self.priors.to(raw.dtype), x.shape[2:], rows)
        row_mask = grid.pop("row_mask", None)
        names = list(grid)  # mu_x, mu_y, mu_t, sigma2, gamma: (n, P, ...) each
        widest = max(x.shape[1], g.shape[1], *self.branch_channels.values())
        step = rows_per_chunk(x.shape[0], widest * math.prod(g.shape[2:]))
        checkpointed = self.recompute and self.training and torch.is_grad_enabled()
        volumes: list[list[Tensor]] = [[] for _ in self.parts]

        def fuse(xs: Tensor, gs: Tensor, *cells: Tensor) -> Tensor:
            return self._paths_and_fusion(xs, gs, dict(zip(names, cells, strict=True)), row_mask,
                                          volumes if self.record else None)

        outs = []
        for part in zip(x.split(step), g.split(step), *(grid[k].split(step) for k in names),
                        strict=True):
            outs.append(recomputed(fuse, *part) if checkpointed else fuse(*part))
        if self.record:
            for i, name in enumerate(self.parts):
                self.recorded[name] = {"volume": torch.cat(volumes[i]),
                                       **{k: v[:, i].detach() for k, v in grid.items()}}
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _paths_and_fusion(self, x: Tensor, g: Tensor, grid: dict[str, Tensor],
                          row_mask: Tensor | None, volumes: list[list[Tensor]] | None) -> Tensor:
        """S, FE and FS for one chunk of the batch, path by path: the fusion conv of the
        concatenation ``[g, FE_1, ..., FE_P]`` is the sum of its slices' convs on each branch."""
        weight = self.fusion[0].weight
        start = self.branch_channels["global"]
        out = F.conv3d(g, weight[:, :start])
        for i, name in enumerate(self.parts):
            vol = sample_volume(x, grid["mu_x"][:, i], grid["mu_y"][:, i], grid["mu_t"][:, i],
                                grid["sigma2"][:, i], grid["gamma"][:, i], self.sampler,
                                None if row_mask is None else row_mask[i])  # eq. 10
            if volumes is not None:
                volumes[i].append(vol.detach())
            width = self.branch_channels[name]
            out += F.conv3d(self.feature_extraction[name](vol), weight[:, start:start + width])
            start += width
        return self.fusion[1](out)

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


__all__ = ["CHUNK_ELEMENTS", "PARTS", "SAMPLERS", "LocalBlock3D", "Localization", "over_batch",
           "recomputed", "rows_per_chunk"]
