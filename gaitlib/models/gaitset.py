"""GaitSet: Chao, He, Zhang, Feng, "GaitSet: Regarding Gait as a Set for Cross-View Gait
Recognition", AAAI 2019 (extended in TPAMI 2021).

A sequence is treated as an unordered *set* of silhouettes: a per-frame 2D CNN, set pooling
(max over frames) after every stage, a multilayer global pipeline (MGP) that accumulates the
pooled maps of all stages, and horizontal pyramid mapping (HPM) on both the last set-level
map and the MGP map.

This is OpenGait's CASIA-B configuration (2.59M parameters), which the GaitMM, 3D Local and
CSTL tables compare against:

* convs 1->32 (5x5), 32->32, pool, 32->64, 64->64, pool, 64->128, 128->128 (3x3), no bias,
  LeakyReLU (slope 0.01), no BatchNorm;
* the MGP branch has its own copies of stages 2 and 3 and adds the set-pooled output of the
  frame branch after each (``gl = gl_block(gl) + max_frames(stage(x))``);
* HPP bins 16, 8, 4, 2, 1 on each branch -> 62 parts, strip descriptor mean + max;
* separate FCs 128 -> 256 per part, OpenGait's 3-D Xavier init (see ``blocks.SeparateFCs``).

Set pooling is plain max: the paper compares several set-pooling functions, and max is the
one its reported model and OpenGait use.  Training uses the batch-all triplet loss only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .blocks import (
    BasicConv2d,
    HorizontalPyramidPooling,
    Lengths,
    SeparateFCs,
    SetBlock,
    halved_options,
    init_weights,
    prepare_input,
    set_max,
)


def _stage(c_in: int, c_out: int, first_kernel: int, pool: bool) -> nn.Sequential:
    """Two convs with LeakyReLU, optionally followed by 2x2 max pooling."""
    layers: list[nn.Module] = [
        BasicConv2d(c_in, c_out, first_kernel, padding=first_kernel // 2),
        nn.LeakyReLU(inplace=True),
        BasicConv2d(c_out, c_out, 3, padding=1),
        nn.LeakyReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


class GaitSet(nn.Module):
    """GaitSet.  Output: ``{"embedding": (n, hidden_dim, 2 * sum(bins))}`` in both modes."""

    @classmethod
    def cheap_options(cls, options: dict) -> dict:
        """The cheap profiles' build options: half the widths, half as many pyramid bins
        (:func:`halved_options`)."""
        return halved_options(cls, options, strips="bins")

    def __init__(self, *, channels: Sequence[int] = (32, 64, 128), hidden_dim: int = 256,
                 bins: Sequence[int] = (16, 8, 4, 2, 1), fc_init: str = "opengait"):
        super().__init__()
        c1, c2, c3 = channels
        self.frame_stages = nn.ModuleList([
            SetBlock(_stage(1, c1, 5, pool=True)),
            SetBlock(_stage(c1, c2, 3, pool=True)),
            SetBlock(_stage(c2, c3, 3, pool=False)),
        ])
        # MGP: set-level copies of stages 2 and 3 (stage 1 has no set-level input yet).
        self.global_stages = nn.ModuleList([
            _stage(c1, c2, 3, pool=True),
            _stage(c2, c3, 3, pool=False),
        ])
        self.hpp = HorizontalPyramidPooling(bins)
        self.head = SeparateFCs(2 * sum(self.hpp.bins), c3, hidden_dim, init=fc_init)
        init_weights(self)

    def forward(self, sils: Tensor, lengths: Lengths = None) -> dict[str, Tensor]:
        x, lens = prepare_input(sils, lengths)
        x = self.frame_stages[0](x)
        pooled = set_max(x, lens)
        gl = pooled
        for frame_stage, global_stage in zip(self.frame_stages[1:], self.global_stages,
                                             strict=True):
            x = frame_stage(x)
            pooled = set_max(x, lens)
            gl = global_stage(gl) + pooled
        # HPM on the last set-level map and on the MGP map: 2 * sum(bins) parts.
        feats = torch.cat([self.hpp(pooled), self.hpp(gl)], dim=-1)
        return {"embedding": self.head(feats)}

