"""GaitMM: Wang, Liu, Wang, Yu, "GaitMM: Multi-Granularity Motion Sequence Learning for Gait
Recognition", ICIP 2023 (arXiv 2209.08470).

A 3D CNN with two ideas:

* **FFSL** (full-body and fine-grained sequence learning, eqs. 1-4): a body-level motion
  extractor (BME, one 3x3x3 conv3d on the whole map) plus a part-level one (PME: the map cut
  into k=8 horizontal strips, each with its *own* 3x3x3 conv3d, outputs concatenated along the
  height), summed element-wise.  Unlike GaitGL's local conv the part weights are not shared,
  so each body part learns its own motion filters (8x the parameters, same compute).
* **MSMA** (multi-scale motion aggregation, eq. 5): temporal downsampling by 3 with a local
  motion aggregation ``LMA = p1 * Max_{3x1x1} + p2 * Avg_{3x1x1}`` (p1, p2 learnable, init
  0.5), in a global branch (one LMA) and a part branch (l=8 strips, one LMA each).

Head: temporal max (TP), GeM over horizontal bins (p init 6.5), separate FCs, BNNeck; trained
with triplet (margin 0.2) + cross-entropy.  3 FFSL modules on CASIA-B, 6 on OU-MVLP.

Choices the paper leaves open.  The authors' public code is an earlier version ("GaitFM"); it is
used only where the paper is silent:

1. *Stem.*  Two shared 3x3x3 conv3d 1->32->32 before FFSL1 (GaitFM's "shallow feature
   extraction"); the paper only calls the FFSL input ``C_in`` channels.
2. *Channel widths* (GaitFM): CASIA-B FFSL 32->64, MSMA, 64->128, 128->128; OU-MVLP the
   widths 32/64/128/256 with every stage doubled (6 FFSLs: 32->64->64, MSMA, 64->128->128,
   128->256->256), as GaitFM doubles its OU-MVLP stages.
3. *Activation.*  Eqs. 1-4 show none; each branch gets a LeakyReLU before the sum, as in
   GaitFM (both branches end in LeakyReLU) and GaitGL's GLConv.  (Activating only after the
   sum would make BME + PME almost one per-strip conv with weights W_B + W_P^j.)
4. *Where MSMA sits.*  After FFSL1, where GaitFM has its max-pool LMA; the paper only says
   F_FFSL3 has D/3 frames.  Compressing early makes FFSL2-3 three times cheaper.
5. *How MSMA's branches combine.*  Not stated: summed, like FFSL's eq. 4.  Note for
   the book: both branches weight the same clip max and clip mean, so the sum is one LMA per
   strip with coefficients (p1_g + p1_j, p2_g + p2_j); the global branch is a shared offset of
   the eight part coefficients, not a different function.
6. *Short sequences.*  LMA cuts the sequence into ceil(D/3) clips of 3 consecutive frames, the
   last one shorter when 3 does not divide D, and takes max and mean over the frames present.
   For the paper's D=30 this is exactly stride-3 pooling; a 1- or 2-frame sequence gives one
   clip, and no frame is dropped (GaitFM/GaitGL instead repeat D<3 and drop leftovers).
7. *``msma=False``* (Table 3's rows without MSMA) removes the module: no temporal
   compression at all, TP then pools all D frames.
8. *Spatial downsampling.*  None on CASIA-B (the paper gives F_FFSL3 as H x W; GaitFM's
   CASIA-B code has none).  On OU-MVLP a (1,2,2) max pool follows MSMA, as in GaitFM's OU-MVLP
   code (the 6-FFSL model would otherwise be ~4x costlier).
9. *GeM bins*: one per feature row, 64 on CASIA-B, 32 on OU-MVLP.  GaitFM's 128 bins are one
   per row of its two branches concatenated along H; FFSL sums them, so the rows halve.  Plain
   GeM as the paper says (GaitFM uses a weighted GeM).
10. *BNNeck* as GaitFM and GaitGL: separate FC c->c, one ``BatchNorm1d(c)`` shared by all
    parts, separate FC to the classes; the BN output is the embedding (triplet and retrieval).
11. *DWConv* (Fig. 2): each PME strip conv becomes a depthwise 3x3x3 conv (groups = C_in)
    followed by a pointwise 1x1x1 conv, no nonlinearity between (Xception's definition);
    only PME changes, as the paper says.
12. Initialisation: OpenGait's (``init_weights``); p1 = p2 = 0.5 and GeM p = 6.5 per paper.
"""

from __future__ import annotations

import math
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
    count_parameters,
    halved_options,
    init_weights,
    per_sequence,
    prepare_input,
    split_strips,
    strip_height,
)

# channels: stem width, then the widths of the three FFSL stages (last one repeated if 3 given);
# depth: FFSLs per stage; parts: GeM bins (one per feature row at 64x44 input).
VARIANTS: dict[str, dict] = {
    "casia-b": {"channels": (32, 64, 128), "depth": 1, "num_classes": 74, "parts": 64,
                "spatial_pool": False},
    "oumvlp": {"channels": (32, 64, 128, 256), "depth": 2, "num_classes": 5153, "parts": 32,
               "spatial_pool": True},
}

# Table 3's rows and Fig. 2's DWConv model, as build options.
ABLATIONS: dict[str, dict[str, bool]] = {
    "bme": {"pme": False, "msma": False},
    "bme+pme": {"pme": True, "msma": False},
    "bme+msma": {"pme": False, "msma": True},
    "full": {"pme": True, "msma": True},
    "dwconv": {"pme": True, "msma": True, "dwconv": True},
}




class DepthwiseSeparableConv3d(nn.Sequential):
    """Depthwise 3x3x3 conv (one filter per input channel) then a pointwise 1x1x1 conv:
    ``27*C_in + C_in*C_out`` weights instead of ``27*C_in*C_out``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            BasicConv3d(in_channels, in_channels, 3, padding=1, groups=in_channels),
            BasicConv3d(in_channels, out_channels, 1, padding=0))


class PME(nn.Module):
    """Part-level motion extractor: ``k`` strips, each its own conv3d (eq. 2), concatenated
    back along the height (eq. 3).  Each strip is zero-padded at its borders, so no strip's
    output sees another body part."""

    def __init__(self, in_channels: int, out_channels: int, k: int = 8, dwconv: bool = False):
        super().__init__()
        self.k = k
        self.convs = nn.ModuleList(
            DepthwiseSeparableConv3d(in_channels, out_channels) if dwconv
            else BasicConv3d(in_channels, out_channels) for _ in range(k))

    def forward(self, x: Tensor) -> Tensor:
        parts = split_strips(x, self.k, dim=3, what="PME")  # (n, c, d, h, w): h is dim 3
        return torch.cat([conv(s) for conv, s in zip(self.convs, parts, strict=True)], dim=3)


class FFSL(nn.Module):
    """Full-body and fine-grained sequence learning: ``LeakyReLU(BME) + LeakyReLU(PME)``
    (eqs. 1-4; activations per branch: choice 3).  ``pme=False`` leaves BME alone (Table 3)."""

    def __init__(self, in_channels: int, out_channels: int, pme: bool = True, k: int = 8,
                 dwconv: bool = False):
        super().__init__()
        self.bme = BasicConv3d(in_channels, out_channels)  # eq. 1
        self.pme = PME(in_channels, out_channels, k, dwconv) if pme else None

    def forward(self, x: Tensor) -> Tensor:
        out = F.leaky_relu(self.bme(x))
        if self.pme is not None:
            out = out + F.leaky_relu(self.pme(x))  # eq. 4
        return out


def _clip_max_mean(x: Tensor, clip: int = 3) -> tuple[Tensor, Tensor]:
    """Max and mean over clips of ``clip`` consecutive frames of ``(n, c, d, h, w)``:
    ``Max_{3x1x1}`` and ``Avg_{3x1x1}`` with stride 3.  The last clip may be shorter; it is
    pooled over the frames it has (choice 6), so any ``d >= 1`` gives ``ceil(d / 3)`` clips."""
    n, c, d, h, w = x.shape
    m = math.ceil(d / clip)
    pad = m * clip - d
    clips = F.pad(x, (0, 0, 0, 0, 0, pad), value=float("-inf")).reshape(n, c, m, clip, h, w)
    mx = clips.amax(dim=3)
    total = F.pad(x, (0, 0, 0, 0, 0, pad)).reshape(n, c, m, clip, h, w).sum(dim=3)
    count = torch.full((m,), float(clip), dtype=x.dtype, device=x.device)
    count[-1] = clip - pad
    return mx, total / count.view(1, 1, m, 1, 1)


class LMA(nn.Module):
    """Local motion aggregation, eq. 5: ``p1 * Max_{3x1x1}(F) + p2 * Avg_{3x1x1}(F)``.

    ``strips=1`` is the body-level LMA of the global branch; ``strips=l`` gives each of ``l``
    horizontal strips its own (p1, p2): the part branch's ``l`` separate LMAs (pooling itself
    has no parameters, so separate LMAs differ only in their weights).
    """

    def __init__(self, strips: int = 1, init: float = 0.5):
        super().__init__()
        self.strips = strips
        self.p1 = nn.Parameter(torch.full((strips,), init))
        self.p2 = nn.Parameter(torch.full((strips,), init))

    def _rows(self, p: Tensor, h: int) -> Tensor:
        """Per-strip weight ``(strips,)`` -> one weight per feature row, ``(1, 1, 1, h, 1)``."""
        return p.repeat_interleave(strip_height(h, self.strips, "LMA")).view(1, 1, 1, h, 1)

    def forward(self, x: Tensor) -> Tensor:
        mx, mean = _clip_max_mean(x)
        h = x.shape[3]
        return self._rows(self.p1, h) * mx + self._rows(self.p2, h) * mean


class MSMA(nn.Module):
    """Multi-scale motion aggregation: a global LMA and a part branch of ``l`` LMAs, summed
    (choice 5).  ``(n, c, d, h, w) -> (n, c, ceil(d/3), h, w)``."""

    def __init__(self, l: int = 8):  # noqa: E741 (the paper's name)
        super().__init__()
        self.global_branch = LMA(strips=1)
        self.part_branch = LMA(strips=l)

    def forward(self, x: Tensor) -> Tensor:
        return self.global_branch(x) + self.part_branch(x)


class GaitMM(nn.Module):
    """GaitMM.  Output: ``{"embedding": (n, c, parts)}``, plus ``"logits"``
    ``(n, num_classes, parts)`` in training mode.

    ``pme`` / ``msma`` select Table 3's rows (BME is always there), ``dwconv`` the
    depthwise-separable PME of Fig. 2, ``variant`` the CASIA-B (3 FFSLs) or OU-MVLP (6 FFSLs)
    model.  ``channels`` and ``parts`` override the variant's widths and GeM bins (small
    models for tests; ``parts`` must divide the final feature height).
    """

    @classmethod
    def cheap_options(cls, options: dict) -> dict:
        """The cheap profiles' build options: half the widths, half as many GeM bins
        (:func:`halved_options`)."""
        return halved_options(cls, options, strips="parts", variants=VARIANTS)

    def __init__(self, *, variant: str = "casia-b", num_classes: int | None = None,
                 pme: bool = True, msma: bool = True, dwconv: bool = False,
                 channels: Sequence[int] | None = None, parts: int | None = None,
                 k: int = 8, l: int = 8):  # noqa: E741
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown GaitMM variant {variant!r}; valid: {', '.join(VARIANTS)}")
        if dwconv and not pme:
            raise ValueError("dwconv=True replaces PME's convs, so it needs pme=True")
        cfg = VARIANTS[variant]
        ch = tuple(channels) if channels is not None else cfg["channels"]
        if len(ch) < 3:
            raise ValueError(f"GaitMM needs at least 3 channel widths, got {ch}")
        num_classes = cfg["num_classes"] if num_classes is None else num_classes
        parts = cfg["parts"] if parts is None else parts
        depth = cfg["depth"]
        self.options = {"variant": variant, "pme": pme, "msma": msma, "dwconv": dwconv}

        def stage(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(*[FFSL(c_in if i == 0 else c_out, c_out, pme, k, dwconv)
                                   for i in range(depth)])

        self.stem = nn.Sequential(  # choice 1
            BasicConv3d(1, ch[0]), nn.LeakyReLU(inplace=True),
            BasicConv3d(ch[0], ch[0]), nn.LeakyReLU(inplace=True))
        self.ffsl1 = stage(ch[0], ch[1])
        self.msma = MSMA(l) if msma else nn.Identity()  # choices 4, 7
        self.spatial_pool = (nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2)) if cfg["spatial_pool"]
                             else nn.Identity())  # choice 8
        self.ffsl2 = stage(ch[1], ch[2])
        self.ffsl3 = stage(ch[2], ch[-1])
        self.gem = GeMHPP((parts,))  # choice 9
        self.fc = SeparateFCs(parts, ch[-1], ch[-1])
        self.bnneck = BNNeck(parts, ch[-1], num_classes, parallel_bn=False)  # choice 10
        init_weights(self)

    def _trunk(self, x: Tensor) -> Tensor:
        """``(n, 1, d, h, w)`` of equal-length sequences -> TP output ``(n, c, h', w')``."""
        x = self.ffsl1(self.stem(x))
        x = self.spatial_pool(self.msma(x))
        x = self.ffsl3(self.ffsl2(x))  # F_FFSL3: (n, c, ceil(d/3), h', w')
        return x.amax(dim=2)  # TP

    def forward(self, sils: Tensor, lengths: Lengths = None) -> dict[str, Tensor]:
        x, lens = prepare_input(sils, lengths)
        # Packed sequences go through the trunk one by one: conv3d and MSMA mix frames.
        x = per_sequence(self._trunk, x, lens, dim=2)
        feat, logits = self.bnneck(self.fc(self.gem(x)))
        out = {"embedding": feat}
        if self.training:
            out["logits"] = logits
        return out


def gaitmm_parameter_counts(variant: str = "casia-b", num_classes: int | None = None,
                            baselines: bool = True) -> dict[str, int]:
    """Trainable parameters of every GaitMM model of Table 3 and Fig. 2 (keys
    ``gaitmm-<row>``, rows as in :data:`ABLATIONS`), plus the baselines' CASIA-B versions
    (``gaitset``, ``gaitpart``, ``gaitgl``) when ``baselines``: the x axis of Fig. 2.

    Counts include the classifier (``num_classes``, the variant's training classes by
    default), as the baselines' published counts do.
    """
    counts = {f"gaitmm-{row}": count_parameters(
        GaitMM(variant=variant, num_classes=num_classes, **opts))
        for row, opts in ABLATIONS.items()}
    if baselines:
        from . import build  # the package imports this module: import lazily

        counts.update({name: count_parameters(build(name))
                       for name in ("gaitset", "gaitpart", "gaitgl")})
    return counts
