"""GaitPart: Fan, Peng, Cao, Liu, Hou, Chi, Huang, He, "GaitPart: Temporal Part-based Model
for Gait Recognition", CVPR 2020.

Three pieces: a frame-level part feature extractor (FPFE) built from *focal* convolutions
(FConv: the map is cut into 2**halving horizontal strips and one shared conv runs on each
strip separately, so receptive fields stay inside a body part), horizontal pooling (HP,
16 strips, mean + max), and a micro-motion capture module (MCM) that models short-range
temporal patterns *per part* before temporal max pooling.

This is OpenGait's CASIA-B configuration (1.20M parameters), which differs from or fixes
details the paper leaves open:

* FPFE: 1->32 (5x5), 32->32, pool, FConv 64 x2 (halving 2 = 4 strips), pool,
  FConv 128 x2 (halving 3 = 8 strips); bias-free, LeakyReLU, no BatchNorm;
* MCM / temporal feature aggregator: two micro-motion template builders per part.  MTB1:
  template = avg-pool + max-pool over a window of 3 frames, attention = sigmoid of
  conv1d(k=3, c->c/4) -> LeakyReLU -> conv1d(k=1, c/4->c).  MTB2: window 5, attention
  conv1d(k=3) -> LeakyReLU -> conv1d(k=3) (receptive field 5).  Output = max over time of
  MTB1 + MTB2.  Every part has its own attention convs (evaluated here as one grouped conv,
  which has exactly the same parameters and arithmetic as 16 separate ones);
* separate FCs 128 -> 128 per part; triplet loss only.

OpenGait's OU-MVLP configuration is ``channels=(32, 64, 128, 256), halving=(0, 0, 3, 3),
out_channels=256`` with the two pools still before stages 1 and 2 (``pools``).

Average pooling counts the zero padding at sequence ends (PyTorch's default, as OpenGait).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import (
    BasicConv2d,
    HorizontalPyramidPooling,
    Lengths,
    SeparateFCs,
    SetBlock,
    halved_options,
    init_weights,
    per_sequence,
    prepare_input,
    split_strips,
)


class FocalConv2d(BasicConv2d):
    """FConv: one bias-free conv applied to each of ``2**halving`` horizontal strips."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 halving: int = 0, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                         **kwargs)
        self.halving = halving

    def forward(self, x: Tensor) -> Tensor:
        if self.halving == 0:
            return super().forward(x)
        conv = super().forward
        strips = split_strips(x, 2**self.halving, dim=2, what=f"FConv (halving={self.halving})")
        return torch.cat([conv(z) for z in strips], dim=2)


class PartConv1d(nn.Module):
    """``parts`` independent bias-free temporal convs, run as one grouped conv.

    Input/output ``(n, parts * c, s)`` with channels grouped part-major.  Each part's
    kernel is Xavier-uniform initialised as a stand-alone ``Conv1d(c_in, c_out, k)`` would be
    (OpenGait init), which a plain grouped ``Conv1d`` would not give (its fan_out counts all
    groups).
    """

    def __init__(self, parts: int, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.parts = parts
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.empty(parts * out_channels, in_channels, kernel_size))
        bound = math.sqrt(6.0 / ((in_channels + out_channels) * kernel_size))
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.weight, padding=self.padding, groups=self.parts)


class TemporalFeatureAggregator(nn.Module):
    """MCM: ``(n, c, s, p) -> (n, c, p)`` for one (unpacked) batch of equal-length sequences."""

    def __init__(self, channels: int, parts: int, squeeze: int = 4):
        super().__init__()
        hidden = channels // squeeze
        self.mtb1 = nn.ModuleList([PartConv1d(parts, channels, hidden, 3),
                                   PartConv1d(parts, hidden, channels, 1)])
        self.mtb2 = nn.ModuleList([PartConv1d(parts, channels, hidden, 3),
                                   PartConv1d(parts, hidden, channels, 3)])

    @staticmethod
    def _builder(x: Tensor, convs: nn.ModuleList, window: int) -> Tensor:
        """One micro-motion template builder: attention-weighted local template."""
        scores = torch.sigmoid(convs[1](F.leaky_relu(convs[0](x))))
        pad = window // 2
        template = (F.avg_pool1d(x, window, 1, pad) + F.max_pool1d(x, window, 1, pad))
        return template * scores

    def forward(self, x: Tensor) -> Tensor:
        n, c, s, p = x.shape
        xp = x.permute(0, 3, 1, 2).reshape(n, p * c, s)  # part-major channels
        feat = self._builder(xp, self.mtb1, 3) + self._builder(xp, self.mtb2, 5)
        return feat.amax(dim=-1).reshape(n, p, c).transpose(1, 2).contiguous()


class GaitPart(nn.Module):
    """GaitPart.  Output: ``{"embedding": (n, out_channels, parts)}`` in both modes."""

    @classmethod
    def cheap_options(cls, options: dict) -> dict:
        """The cheap profiles' build options: half the widths, half as many parts
        (:func:`halved_options`)."""
        return halved_options(cls, options, strips="parts")

    def __init__(self, *, channels: Sequence[int] = (32, 64, 128),
                 halving: Sequence[int] = (0, 2, 3), parts: int = 16, out_channels: int = 128,
                 squeeze: int = 4, fc_init: str = "opengait", pools: Sequence[int] = (1, 2)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for stage, (c, h) in enumerate(zip(channels, halving, strict=True)):
            if stage in pools:  # a 2x2 max-pool before this stage
                layers.append(nn.MaxPool2d(2, 2))
            k = 5 if stage == 0 else 3
            layers += [FocalConv2d(c_in, c, k, halving=h), nn.LeakyReLU(inplace=True),
                       FocalConv2d(c, c, 3, halving=h), nn.LeakyReLU(inplace=True)]
            c_in = c
        self.backbone = SetBlock(nn.Sequential(*layers))
        self.hp = HorizontalPyramidPooling((parts,))
        self.tfa = TemporalFeatureAggregator(c_in, parts, squeeze)
        self.head = SeparateFCs(parts, c_in, out_channels, init=fc_init)
        init_weights(self)

    def forward(self, sils: Tensor, lengths: Lengths = None) -> dict[str, Tensor]:
        x, lens = prepare_input(sils, lengths)
        x = self.hp(self.backbone(x))  # (n, c, s, p): per-frame part features
        x = per_sequence(self.tfa, x, lens, dim=2)
        return {"embedding": self.head(x)}
