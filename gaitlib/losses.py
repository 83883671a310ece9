"""Losses on part features.

Pure functions plus thin ``nn.Module`` wrappers, so a trainer can compose them from a config
(``{"triplet": 1.0, "ce": 1.0}`` -> weighted sum).  Models never import this module.

* :func:`batch_all_triplet` - batch-all (BA+) triplet loss per horizontal part, as in
  GaitSet and its successors: every valid (anchor, positive, negative) of the batch
  contributes ``relu(d(a,p) - d(a,n) + margin)``; each part averages over its *non-zero*
  terms (so easy triplets do not dilute the gradient as training progresses), then the
  parts are averaged.
* :func:`part_cross_entropy` - softmax cross-entropy applied to every part's logits with the
  sequence's label, averaged over parts (optional label smoothing and logit scale).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TripletResult(NamedTuple):
    """What :func:`batch_all_triplet` returns; ``loss`` is the term to optimise."""

    loss: Tensor  # scalar: mean over parts of the per-part non-zero mean
    per_part: Tensor  # (p,)
    nonzero_fraction: Tensor  # scalar: share of valid triplets with a non-zero hinge (logging)
    mean_dist: Tensor  # scalar: mean pairwise distance (logging: collapse shows up here)


def part_distances(embeddings: Tensor) -> Tensor:
    """Euclidean distances between all samples, per part: ``(n, c, p) -> (p, n, n)``.

    Computed as ``sqrt(|x|^2 + |y|^2 - 2 x.y)`` (memory O(p n^2), not O(p n^2 c)); the
    squared distance is clamped at 1e-12 so the gradient stays finite for coincident points.
    """
    x = embeddings.permute(2, 0, 1)  # (p, n, c)
    if x.dtype in (torch.float16, torch.bfloat16):  # AMP: distances need float32 range
        x = x.float()
    sq = x.pow(2).sum(-1)
    d2 = sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * torch.bmm(x, x.transpose(1, 2))
    return d2.clamp_min(1e-12).sqrt()


def _gather_columns(dist: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """For each anchor row, the distances at the columns where ``mask`` is True, left-packed
    and padded to the widest row: returns ``(p, n, k)`` distances and an ``(n, k)`` validity
    mask.  With PK batches every row has the same count and nothing is padded."""
    width = int(mask.sum(1).max().item()) if mask.numel() else 0
    # Stable sort puts the True columns first, in their original order.
    order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices[:, :width]
    valid = torch.gather(mask, 1, order)
    vals = torch.gather(dist, 2, order.unsqueeze(0).expand(dist.shape[0], -1, -1))
    return vals, valid


def batch_all_triplet(embeddings: Tensor, labels: Tensor, margin: float = 0.2,
                      self_pairs: bool = False) -> TripletResult:
    """Batch-all triplet loss on part features ``(n, c, p)`` with integer ``labels`` ``(n,)``.

    ``self_pairs=False`` (default) uses the valid triplets of Hermans et al. (anchor !=
    positive).  ``self_pairs=True`` reproduces OpenGait's code, which also counts each anchor
    as its own positive (distance 0), adding ``relu(margin - d(a,n))`` terms.
    """
    if embeddings.dim() != 3 or labels.shape != embeddings.shape[:1]:
        raise ValueError(f"need embeddings (n, c, p) and labels (n,), got "
                         f"{tuple(embeddings.shape)} and {tuple(labels.shape)}")
    dist = part_distances(embeddings)  # (p, n, n)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    pos_mask = same if self_pairs else same & ~torch.eye(len(labels), dtype=torch.bool,
                                                          device=labels.device)
    ap, ap_valid = _gather_columns(dist, pos_mask)  # (p, n, kp)
    an, an_valid = _gather_columns(dist, ~same)  # (p, n, kn)
    valid = ap_valid.unsqueeze(2) & an_valid.unsqueeze(1)  # (n, kp, kn)
    hinge = F.relu(ap.unsqueeze(3) - an.unsqueeze(2) + margin) * valid  # (p, n, kp, kn)

    hinge = hinge.flatten(1)
    nonzero = (hinge > 0).sum(1)  # (p,)
    per_part = hinge.sum(1) / nonzero.clamp_min(1)  # parts with no active triplet -> 0
    total = valid.sum() * hinge.shape[0]
    frac = nonzero.sum() / total if total > 0 else hinge.new_zeros(())
    return TripletResult(per_part.mean(), per_part, frac.float(), dist.mean().detach())


def part_cross_entropy(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0,
                       scale: float = 1.0) -> Tensor:
    """Cross-entropy of every part's logits ``(n, classes, p)`` against ``labels`` ``(n,)``,
    averaged over samples and parts.  ``scale`` multiplies the logits first (needed with
    cosine classifiers, e.g. OpenGait's scale 16)."""
    if logits.dim() != 3 or labels.shape != logits.shape[:1]:
        raise ValueError(f"need logits (n, classes, p) and labels (n,), got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    target = labels.unsqueeze(1).expand(-1, logits.shape[2])  # (n, p)
    return F.cross_entropy(logits.float() * scale, target, label_smoothing=label_smoothing)


def part_accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Share of (sample, part) pairs whose arg-max class is the label (for logging)."""
    return (logits.argmax(1) == labels.unsqueeze(1)).float().mean()


class TripletLoss(nn.Module):
    """Module form of :func:`batch_all_triplet`; returns the full :class:`TripletResult`."""

    def __init__(self, margin: float = 0.2, self_pairs: bool = False):
        super().__init__()
        self.margin = margin
        self.self_pairs = self_pairs

    def forward(self, embeddings: Tensor, labels: Tensor) -> TripletResult:
        return batch_all_triplet(embeddings, labels, self.margin, self.self_pairs)


class PartCrossEntropy(nn.Module):
    """Module form of :func:`part_cross_entropy`."""

    def __init__(self, label_smoothing: float = 0.0, scale: float = 1.0):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.scale = scale

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return part_cross_entropy(logits, labels, self.label_smoothing, self.scale)
