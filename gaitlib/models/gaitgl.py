"""GaitGL: Lin, Zhang, Yu, "Gait Recognition via Effective Global-Local Feature
Representation and Local Temporal Aggregation", ICCV 2021 (arXiv 2011.01461).

A 3D-CNN that keeps frame order.  Its global-local convolution (GLConv) runs two 3x3x3 convs
side by side: a *global* one on the whole map and a *local* one applied separately to
``2**halving`` horizontal strips (zero padding at strip borders, shared weights), so local
features never see another body part.  GLConv type A sums the two LeakyReLU outputs; type B
concatenates them along the height (the map doubles in height).  Local temporal aggregation
(LTA) is a (3,1,1) conv with temporal stride 3 that replaces temporal pooling early on.  The
head is temporal max, GeM over horizontal strips, separate FCs, a BatchNorm and a separate FC
classifier; training uses triplet + cross-entropy.

This follows OpenGait's implementation of the two published configurations:

* ``variant="casia-b"`` (default, 3.10M parameters): conv3d 1->32, LTA 32->32,
  GLConvA 32->64 (8 strips), max-pool (1,2,2), GLConvA 64->128, GLConvB 128->128,
  GeM with 64 bins (one per row of the concatenated 64-row map), separate FC 128->128,
  ``BatchNorm1d(128)`` shared by all parts, separate FC 128->74 classes;
* ``variant="oumvlp"`` (95.6M parameters): two stem convs, every GLConv stage doubled,
  2 strips (halving 1), a fourth channel width (256), 5153 classes.

As in OpenGait the embedding used for both the triplet loss and retrieval is the
BatchNorm output (OpenGait's "original GaitGL head").  Sequences shorter than 3 frames are
repeated to survive LTA (OpenGait's rule); packed sequences are run one at a time through the
3D trunk, since temporal convs would otherwise mix neighbouring sequences.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import (
    BasicConv3d,
    BNNeck,
    GeMHPP,
    Lengths,
    SeparateFCs,
    halved_options,
    init_weights,
    per_sequence,
    prepare_input,
    strip_height,
)

VARIANTS: dict[str, dict] = {
    "casia-b": {"channels": (32, 64, 128), "num_classes": 74, "depth": 1, "halving": 3},
    "oumvlp": {"channels": (32, 64, 128, 256), "num_classes": 5153, "depth": 2, "halving": 1},
}


class GLConv(nn.Module):
    """Global-local conv on ``(n, c, s, h, w)``; ``concat=True`` is type B (height doubles)."""

    def __init__(self, in_channels: int, out_channels: int, halving: int, concat: bool = False):
        super().__init__()
        self.halving = halving
        self.concat = concat
        self.global_conv = BasicConv3d(in_channels, out_channels)
        self.local_conv = BasicConv3d(in_channels, out_channels)

    def _local(self, x: Tensor) -> Tensor:
        k = 2**self.halving
        n, c, s, h, w = x.shape
        rows = strip_height(h, k, "GLConv")
        # Fold the strips into the batch: one conv call, zero padding at every strip border.
        z = x.reshape(n, c, s, k, rows, w).permute(0, 3, 1, 2, 4, 5)
        z = self.local_conv(z.reshape(n * k, c, s, rows, w))
        z = z.reshape(n, k, *z.shape[1:]).permute(0, 2, 3, 1, 4, 5)
        return z.reshape(n, z.shape[1], s, h, w)

    def forward(self, x: Tensor) -> Tensor:
        g, loc = self.global_conv(x), self._local(x)
        if self.concat:
            return F.leaky_relu(torch.cat([g, loc], dim=3))
        return F.leaky_relu(g) + F.leaky_relu(loc)


def _gl_stage(c_in: int, c_out: int, depth: int, halving: int, concat_last: bool) -> nn.Sequential:
    convs = [GLConv(c_in if i == 0 else c_out, c_out, halving,
                    concat=concat_last and i == depth - 1) for i in range(depth)]
    return nn.Sequential(*convs)


class GaitGL(nn.Module):
    """GaitGL.  Output: ``{"embedding": (n, c, parts)}``, plus ``"logits"``
    ``(n, num_classes, parts)`` in training mode."""

    @classmethod
    def cheap_options(cls, options: dict) -> dict:
        """The cheap profiles' build options: half the widths, half as many parts
        (:func:`halved_options`)."""
        return halved_options(cls, options, strips="parts", variants=VARIANTS)

    def __init__(self, *, variant: str = "casia-b", num_classes: int | None = None,
                 channels: Sequence[int] | None = None, parts: int = 64,
                 parallel_bn: bool = False, fc_init: str = "opengait"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown GaitGL variant {variant!r}; valid: {', '.join(VARIANTS)}")
        cfg = VARIANTS[variant]
        ch = tuple(channels) if channels is not None else cfg["channels"]
        if len(ch) < 3:
            raise ValueError(f"GaitGL needs at least 3 channel widths, got {ch}")
        num_classes = cfg["num_classes"] if num_classes is None else num_classes
        depth, halving = cfg["depth"], cfg["halving"]

        stem: list[nn.Module] = []
        for i in range(depth):  # one stem conv on CASIA-B, two on OU-MVLP
            stem += [BasicConv3d(1 if i == 0 else ch[0], ch[0]), nn.LeakyReLU(inplace=True)]
        self.stem = nn.Sequential(*stem)
        self.lta = nn.Sequential(
            BasicConv3d(ch[0], ch[0], kernel_size=(3, 1, 1), stride=(3, 1, 1), padding=0),
            nn.LeakyReLU(inplace=True))
        self.stage_a0 = _gl_stage(ch[0], ch[1], depth, halving, concat_last=False)
        self.pool = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.stage_a1 = _gl_stage(ch[1], ch[2], depth, halving, concat_last=False)
        self.stage_b2 = _gl_stage(ch[2], ch[-1], depth, halving, concat_last=True)
        self.gem = GeMHPP((parts,))
        self.head = SeparateFCs(parts, ch[-1], ch[-1], init=fc_init)
        self.bnneck = BNNeck(parts, ch[-1], num_classes, parallel_bn=parallel_bn, init=fc_init)
        init_weights(self)

    def _trunk(self, x: Tensor) -> Tensor:
        """``(n, 1, s, h, w)`` of equal-length sequences -> temporally pooled ``(n, c, h', w')``."""
        s = x.shape[2]
        if s < 3:
            x = x.repeat(1, 1, 3 if s == 1 else 2, 1, 1)
        x = self.lta(self.stem(x))
        x = self.pool(self.stage_a0(x))
        x = self.stage_b2(self.stage_a1(x))
        return x.amax(dim=2)

    def forward(self, sils: Tensor, lengths: Lengths = None) -> dict[str, Tensor]:
        x, lens = prepare_input(sils, lengths)
        x = per_sequence(self._trunk, x, lens, dim=2)
        feat, logits = self.bnneck(self.head(self.gem(x)))
        out = {"embedding": feat}
        if self.training:
            out["logits"] = logits
        return out
