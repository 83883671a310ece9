"""3D Local CNN: Huang, Xue, Shen, Tian, Li, Huang, Hua, "3D Local Convolutional Neural Networks
for Gait Recognition", ICCV 2021 (seed 002; the local block is in ``local_block.py``).

Network (Sec. 3.3, Fig. 3): three backbone blocks of two convs, "the same as GaitPart" (focal
convs 32/32, 64/64, 128/128, 5x5 first kernel, 4 and 8 strips in blocks 2-3, LeakyReLU, 2x2
max-pool between blocks), a 3D local block after each block (the block's two convs are its
global path, the block input is what the local paths sample), then GaitPart's spatial pooling
(HP, 16 strips) and temporal pooling (MCM), GLN's linear modules (separate FC per strip to 256)
and GLN's compact block (BN, ReLU, dropout, FC to 256, BN) with a linear classifier.  OU-MVLP
doubles every width (Sec. 4.2).

The head (``head='gln'``, the default).  Sec. 4.2: "To make a fair comparison with GLN [11], we
adopt the same compact block and the cross-entropy loss.  The details can be found in [11]."  GLN's
reference implementation (OpenGait's GLN, its CASIA-B config) uses them so: the triplet loss is
on the part features (the output of the linear modules, ``(n, 256, 16)``), the compact block
(BatchNorm with frozen bias, dropout 0.9, ReLU, bias-free FC to 256, BatchNorm with frozen bias)
and a bias-free classifier feed only the cross-entropy (weight 0.1, logits scaled by 16, label
smoothing 0.1: the recipe's loss), and retrieval uses the part features.  So the model outputs
``{"embedding": (n, 256, 16)}`` (triplet and retrieval) plus ``"logits"`` ``(n, classes, 1)``
in training.  ``head='compact'`` is this module's earlier reading: triplet and retrieval on the
compact block's output ``(n, 256, 1)`` (BN biases learnt), CE on the same branch (its recipe:
weight 1, scale 1).  ``inspect(sils)`` returns the Fig. 4 material (sampled volumes and centres
per path and block, mean fusion weights per branch) without changing the forward computation.

Choices the paper leaves open, and why:

* Global path convs are GaitPart's *2D* focal convs applied per frame (the paper: "the backbone
  path in each of the three blocks is the same as GaitPart"); the only 3D convs are in the local
  paths and the localization nets.  The released code uses plain (GaitSet-style) 2D convs;
  ``authors_code=True`` builds that.  Focal and plain convs have the same parameter count.
* The compact block's dropout is 0.9 (the authors' ``CompactBlock`` and GLN's reference config);
  its FC has no bias since a BatchNorm follows.  When a training batch holds
  one sequence the compact block's BatchNorms use their running statistics, so any batch size
  runs (batch statistics of one sample are undefined).
* Focal convs cut blocks 2 and 3 into 4 and 8 strips (``halving=(0, 2, 3)``, 2**h strips).  The
  cheap profiles halve the resolution and the pooling strips, and pass ``halving=(0, 1, 2)`` so
  each focal strip still covers the same body rows (not 1-row strips in block 3).
* 128x88 input (``resolution=128``) uses the same network; every map is twice as large and the
  part priors are fractions of the map, so they carry over.
* ``authors_code=True`` is the released configuration (4.26M parameters): one local block after
  the last block only, plain 2D convs, feature extraction of two 3x3x3 convs, triplet loss only
  (no compact block, no classifier; the embedding is the 16 x 256 part features, as in the
  default head).  It differs
  from the paper in three places: one block not three, two FE convs not one, no compact block.
  ``part_shape='aspect'`` is its sampler's part shape (see ``local_sampling.py``).
* The max-pool between blocks runs over chunks of the batch when large (OU-MVLP's paper batch
  would exceed the 2^31 elements its CUDA kernel can index).  ``recompute=True`` (activation
  checkpointing, see ``Local3DCNN.recompute``) changes memory and time, not results.

Packed batches (``lengths``) run sequence by sequence: temporal convs and sampling must not mix
sequences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import (
    HorizontalPyramidPooling,
    Lengths,
    SeparateFCs,
    SetBlock,
    halved_options,
    init_weights,
    per_sequence,
    prepare_input,
)
from .gaitpart import FocalConv2d, TemporalFeatureAggregator
from .local_block import LocalBlock3D, over_batch, recomputed
from .local_sampling import PART_SHAPES, PARTS, SAMPLERS, path_centres

VARIANTS: dict[str, dict] = {
    "casia-b": {"channels": (32, 64, 128), "num_classes": 74},
    "oumvlp": {"channels": (64, 128, 256), "num_classes": 5153},
}
HALVING = (0, 2, 3)  # GaitPart's focal strips per block (1, 4, 8)
HEADS = ("gln", "compact")
PART_DIM, COMPACT_DIM = 256, 256


class CompactBlock(nn.Module):
    """GLN's compact block: ``(n, d_in) -> (n, d_out)`` by BN, ReLU, dropout, FC, BN.
    ``frozen_bias``: the BatchNorms' shifts stay 0 (GLN's reference)."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.9,
                 frozen_bias: bool = False):
        super().__init__()
        self.bn_in = nn.BatchNorm1d(in_features)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, out_features, bias=False)
        self.bn_out = nn.BatchNorm1d(out_features)
        if frozen_bias:
            self.bn_in.bias.requires_grad_(False)
            self.bn_out.bias.requires_grad_(False)

    @staticmethod
    def _bn(bn: nn.BatchNorm1d, x: Tensor) -> Tensor:
        if bn.training and x.shape[0] == 1:  # one sample: no batch statistics, use running ones
            return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                False, 0.0, bn.eps)
        return bn(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dropout(F.relu(self._bn(self.bn_in, x)))
        return self._bn(self.bn_out, self.fc(x))


class Local3DCNN(nn.Module):
    """3D Local CNN.  Options make every ablation row of Tables 3-5 one build call:

    * ``blocks``: the blocks (subset of 1, 2, 3) followed by a local block (Table 3);
    * ``sampler``: ``'gaussian'``, ``'trilinear'`` or ``'mixture'`` (Table 4);
    * ``paths``: subset of head, torso, arm_l, arm_r, leg_l, leg_r (Table 5);
    * ``feature_extraction``: FE conv in each local path (Table 5 f); without it the sampled
      volume itself is fused;
    * ``head``: ``'gln'`` (GLN's reference: triplet and retrieval on the part features, the
      compact block for the CE only) or ``'compact'`` (all on the compact block's output);
    * ``resolution``: 64 (64x44) or 128 (128x88) input (32: 32x22, the cpu profile's half
      resolution); ``variant``: widths and classes; ``channels``, ``strips`` override the
      variant's widths and the 16 horizontal strips, ``halving`` the focal convs' strips per
      block (2**h; the cpu profile halves all three);
    * ``part_shape``: ``'stretch'`` (each part sampled on the full map-sized grid) or ``'aspect'``
      (the released code's: the part's aspect ratio kept, zero rows padded);
    * ``recompute``: activation checkpointing in training (``Local3DCNN.recompute``).

    Empty ``blocks`` or ``paths`` is the backbone without local blocks (row a of Tables 3, 5).
    """

    @classmethod
    def cheap_options(cls, options: dict) -> dict:
        """The cheap profiles' build options: half the widths, half as many horizontal strips,
        and half as many strips in each focal conv (``halving`` one less: 2**h strips)."""
        out = halved_options(cls, options, strips="strips", variants=VARIANTS)
        halving = options.get("halving") or ((0, 0, 0) if options.get("authors_code") else HALVING)
        out["halving"] = tuple(max(0, int(h) - 1) for h in halving)
        return out

    def __init__(self, *, variant: str = "casia-b", num_classes: int | None = None,
                 blocks: Sequence[int] | None = None, sampler: str = "mixture",
                 paths: Sequence[str] | None = None, feature_extraction: bool = True,
                 resolution: int = 64, authors_code: bool = False,
                 channels: Sequence[int] | None = None, dropout: float = 0.9, strips: int = 16,
                 head: str = "gln", halving: Sequence[int] | None = None,
                 part_shape: str = "stretch", recompute: bool = False):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
        if resolution not in (32, 64, 128):
            raise ValueError(f"resolution must be 64 (64x44), 128 (128x88) or 32 (32x22, the cpu "
                             f"profile), got {resolution}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
        if part_shape not in PART_SHAPES:
            raise ValueError(f"unknown part_shape {part_shape!r}; valid: {', '.join(PART_SHAPES)}")
        cfg = VARIANTS[variant]
        ch = tuple(channels) if channels is not None else cfg["channels"]
        if len(ch) != 3:
            raise ValueError(f"3D Local CNN has three blocks; got channels {ch}")
        blocks = ((3,) if authors_code else (1, 2, 3)) if blocks is None else tuple(blocks)
        if authors_code and blocks != (3,):
            raise ValueError("authors_code builds the released model: one block after block 3")
        if not set(blocks) <= {1, 2, 3}:
            raise ValueError(f"blocks must be a subset of (1, 2, 3), got {blocks}")
        paths = tuple(PARTS) if paths is None else tuple(paths)
        unknown = sorted(set(paths) - set(PARTS))
        if unknown:
            raise ValueError(f"unknown path(s) {unknown}; valid: {', '.join(PARTS)}")
        if halving is None:
            halving = (0, 0, 0) if authors_code else HALVING
        halving = tuple(int(h) for h in halving)
        if len(halving) != 3 or min(halving) < 0:
            raise ValueError(f"halving needs three non-negative values, got {halving}")
        self.resolution, self.authors_code, self.head = resolution, authors_code, head
        self.blocks = tuple(sorted(set(blocks))) if paths else ()
        self.paths = paths

        stages, c_in = [], 1
        for b, (c, h) in enumerate(zip(ch, halving, strict=True)):
            k = 5 if b == 0 else 3
            stages.append(SetBlock(nn.Sequential(
                FocalConv2d(c_in, c, k, halving=h), nn.LeakyReLU(inplace=True),
                FocalConv2d(c, c, 3, halving=h), nn.LeakyReLU(inplace=True))))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2))
        self.local = nn.ModuleDict({
            str(b): LocalBlock3D(1 if b == 1 else ch[b - 2], ch[b - 1], paths, sampler,
                                 feature_extraction, fe_convs=2 if authors_code else 1,
                                 part_shape=part_shape)
            for b in self.blocks})
        self._recompute = False
        self.recompute = recompute

        self.hp = HorizontalPyramidPooling((strips,))  # GaitPart's spatial pooling
        self.tfa = TemporalFeatureAggregator(ch[-1], strips)  # GaitPart's temporal pooling (MCM)
        self.fc = SeparateFCs(strips, ch[-1], PART_DIM)  # GLN's linear modules
        if authors_code:
            self.compact, self.classifier = None, None
        else:
            num_classes = cfg["num_classes"] if num_classes is None else num_classes
            self.compact = CompactBlock(strips * PART_DIM, COMPACT_DIM, dropout,
                                        frozen_bias=head == "gln")
            self.classifier = SeparateFCs(1, COMPACT_DIM, num_classes)
        init_weights(self)
        for block in self.local.values():
            block.reset_localization()

    @property
    def recompute(self) -> bool:
        """Activation checkpointing in training: each backbone stage (with the max-pool before
        it) and each local block (``LocalBlock3D``) keep only their inputs for the backward pass
        and run again there.  Less memory, more time, the same outputs and gradients."""
        return self._recompute

    @recompute.setter
    def recompute(self, value: bool) -> None:
        self._recompute = bool(value)
        for block in self.local.values():
            block.recompute = self._recompute

    def _stage(self, b: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """Block ``b``'s input (max-pooled from ``b = 2``) and its global path's output."""
        if b > 1:  # per sequence, over chunks of the batch (an int32-indexed CUDA kernel)
            x = over_batch(self.pool, x, per_row=math.prod(x.shape[1:]))
        return x, self.stages[b - 1](x)

    def _trunk(self, x: Tensor) -> Tensor:
        """``(n, 1, T, H, W)`` equal-length sequences -> part features ``(n, c, 16)``."""
        checkpointed = self.recompute and self.training and torch.is_grad_enabled()
        for b in range(1, len(self.stages) + 1):
            x, g = recomputed(partial(self._stage, b), x) if checkpointed else self._stage(b, x)
            x = self.local[str(b)](x, g) if str(b) in self.local else g
        return self.tfa(self.hp(x))  # (n, c, T, 16) -> (n, c, 16)

    def forward(self, sils: Tensor, lengths: Lengths = None) -> dict[str, Tensor]:
        h, w = sils.shape[-2:]
        if (h, w) != (self.resolution, self.resolution * 11 // 16):
            raise ValueError(f"expected {self.resolution}x{self.resolution * 11 // 16} "
                             f"silhouettes (resolution={self.resolution}), got {h}x{w}")
        x, lens = prepare_input(sils, lengths)
        feat = self.fc(per_sequence(self._trunk, x, lens, dim=2))  # (n, 256, 16)
        if self.compact is None:
            return {"embedding": feat}
        if self.head == "gln":  # compact block for the CE only; triplet and retrieval on parts
            out = {"embedding": feat}
            if self.training:
                out["logits"] = self.classifier(self.compact(feat.flatten(1)).unsqueeze(-1))
            return out
        emb = self.compact(feat.flatten(1)).unsqueeze(-1)  # (n, 256, 1)
        out = {"embedding": emb}
        if self.training:
            out["logits"] = self.classifier(emb)
        return out

    @torch.no_grad()
    def inspect(self, sils: Tensor) -> dict[str, dict]:
        """Fig. 4 material for one unpacked batch ``(n, T, h, w)``, in eval mode.

        Returns ``{"volumes": {block: {path: {"volume": (n, C, T, H, W), "mu_x", "mu_y",
        "mu_t", "sigma2", "gamma", "centre_x", "centre_y", "on_map"}}}, "fusion_weights":
        {block: {branch: mean |w|}}, "on_map": {block: {path: fraction of (sequence, frame)
        centres on the map}}, "embedding": ...}`` (centres per sequence and frame, see
        ``path_centres``).  Recording only copies tensors; the forward is the usual one.
        """
        was_training = self.training
        self.eval()
        for block in self.local.values():
            block.record, block.recorded = True, {}
        try:
            emb = self(sils)["embedding"]
            volumes = {b: dict(block.recorded) for b, block in self.local.items()}
            on_map: dict[str, dict[str, float]] = {}
            for b, records in volumes.items():
                on_map[b] = {}
                for name, rec in records.items():
                    c = path_centres(rec["mu_x"], rec["mu_y"], rec["volume"].shape[-2:])
                    rec.update(centre_x=c["x"], centre_y=c["y"], on_map=c["on_map"])
                    on_map[b][name] = c["on_map"].float().mean().item()
        finally:
            for block in self.local.values():
                block.record, block.recorded = False, {}
            self.train(was_training)
        return {"volumes": volumes, "embedding": emb, "on_map": on_map,
                "fusion_weights": {b: blk.fusion_weights() for b, blk in self.local.items()}}
