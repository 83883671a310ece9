"""Losses: hand-computed triplet values, a brute-force reference, CE against the formula."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from gaitlib.losses import (
    PartCrossEntropy,
    TripletLoss,
    batch_all_triplet,
    part_accuracy,
    part_cross_entropy,
)


def _embed(*parts: list[float]) -> torch.Tensor:
    """1-D embeddings, one list per part: -> (n, c=1, p)."""
    return torch.tensor(parts, dtype=torch.float64).T.unsqueeze(1)


def test_triplet_hand_computed_two_subjects():
    # Subject 0 at 0.0 and 0.1, subject 1 at 0.25 and 1.0 (part 0); part 1 well separated.
    emb = _embed([0.0, 0.1, 0.25, 1.0], [0.0, 0.0, 5.0, 5.0])
    labels = torch.tensor([0, 0, 1, 1])
    m = 0.2
    # Part 0, anchor -> (d(a,p), d(a,n1), d(a,n2)); hinge = relu(d_ap - d_an + m).
    terms = [
        max(0.0, 0.1 - 0.25 + m), max(0.0, 0.1 - 1.0 + m),  # anchor 0.0: 0.05, 0
        max(0.0, 0.1 - 0.15 + m), max(0.0, 0.1 - 0.9 + m),  # anchor 0.1: 0.15, 0
        max(0.0, 0.75 - 0.25 + m), max(0.0, 0.75 - 0.15 + m),  # anchor 0.25: 0.7, 0.8
        max(0.0, 0.75 - 1.0 + m), max(0.0, 0.75 - 0.9 + m),  # anchor 1.0: 0, 0.05
    ]
    nonzero = [t for t in terms if t > 0]
    part0 = sum(nonzero) / len(nonzero)  # 1.75 / 5
    out = batch_all_triplet(emb, labels, margin=m)
    assert out.per_part[0].item() == pytest.approx(part0, abs=1e-6)
    assert out.per_part[1].item() == 0.0  # no active triplet: contributes 0, not NaN
    assert out.loss.item() == pytest.approx(part0 / 2, abs=1e-6)  # mean over both parts
    assert out.nonzero_fraction.item() == pytest.approx(len(nonzero) / (2 * len(terms)))


def test_triplet_self_pairs_adds_anchor_as_positive():
    emb = _embed([0.0, 0.1, 0.25, 1.0])
    labels = torch.tensor([0, 0, 1, 1])
    base = [0.05, 0.15, 0.7, 0.8, 0.05]  # the valid terms of the test above
    # Extra (a, a, n) terms relu(0 - d(a,n) + 0.2): only d=0.15 (0.1<->0.25) is inside.
    extra = [0.2 - 0.15, 0.2 - 0.15]
    out = batch_all_triplet(emb, labels, self_pairs=True)
    assert out.loss.item() == pytest.approx(sum(base + extra) / 7, abs=1e-6)


def _brute_force(emb: torch.Tensor, labels: torch.Tensor, margin: float, self_pairs: bool):
    n, _, p = emb.shape
    per_part, active, total = [], 0, 0
    for k in range(p):
        x = emb[:, :, k]
        terms = []
        for a, pos, neg in itertools.product(range(n), repeat=3):
            if labels[a] != labels[pos] or labels[a] == labels[neg]:
                continue
            if a == pos and not self_pairs:
                continue
            d_ap = (x[a] - x[pos]).norm()
            d_an = (x[a] - x[neg]).norm()
            terms.append(max(0.0, (d_ap - d_an + margin).item()))
        nz = [t for t in terms if t > 0]
        per_part.append(sum(nz) / len(nz) if nz else 0.0)
        active, total = active + len(nz), total + len(terms)
    return sum(per_part) / p, active / total


@pytest.mark.parametrize("self_pairs", [False, True])
def test_triplet_matches_brute_force_on_unbalanced_batch(self_pairs):
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([3, 3, 3, 7, 7, 1, 1, 1, 1])  # unequal class sizes: padding path
    emb = torch.randn(len(labels), 4, 3, generator=gen, dtype=torch.float64) * 0.3
    loss, frac = _brute_force(emb, labels, 0.2, self_pairs)
    out = batch_all_triplet(emb, labels, margin=0.2, self_pairs=self_pairs)
    assert out.loss.item() == pytest.approx(loss, rel=1e-6)
    assert out.nonzero_fraction.item() == pytest.approx(frac, rel=1e-6)
    assert 0 < frac < 1  # the example exercises both active and inactive triplets


def test_triplet_gradient_finite_with_coincident_points():
    emb = torch.zeros(4, 8, 2, requires_grad=True)  # all points identical: every hinge = margin
    out = TripletLoss(margin=0.2, self_pairs=True)(emb, torch.tensor([0, 0, 1, 1]))
    out.loss.backward()
    assert out.loss.item() == pytest.approx(0.2, abs=1e-5)
    assert torch.isfinite(emb.grad).all()


def test_cross_entropy_label_smoothing_equals_formula():
    gen = torch.Generator().manual_seed(1)
    n, classes, p, eps = 5, 7, 3, 0.1
    logits = torch.randn(n, classes, p, generator=gen)
    labels = torch.tensor([0, 6, 2, 2, 4])
    logp = F.log_softmax(logits, dim=1)  # (n, classes, p)
    nll = -logp[torch.arange(n), labels, :]  # (n, p)
    smooth = -logp.mean(dim=1)  # uniform target over classes
    expected = ((1 - eps) * nll + eps * smooth).mean()
    assert part_cross_entropy(logits, labels, label_smoothing=eps).item() == pytest.approx(
        expected.item(), rel=1e-6)
    assert PartCrossEntropy()(logits, labels).item() == pytest.approx(nll.mean().item(),
                                                                      rel=1e-6)


def test_cross_entropy_scale_multiplies_logits():
    logits = torch.tensor([[[1.0], [0.0]]])  # n=1, 2 classes, 1 part
    labels = torch.tensor([0])
    # -log softmax of the scaled logits (3, 0): log(1 + exp(-3))
    expected = torch.log1p(torch.exp(torch.tensor(-3.0))).item()
    assert part_cross_entropy(logits, labels, scale=3).item() == pytest.approx(expected,
                                                                                rel=1e-5)


def test_part_accuracy_counts_parts():
    logits = torch.tensor([[[2.0, 0.0], [1.0, 3.0]]])  # part 0 -> class 0, part 1 -> class 1
    assert part_accuracy(logits, torch.tensor([0])).item() == 0.5


def test_shape_errors():
    with pytest.raises(ValueError):
        batch_all_triplet(torch.zeros(4, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError):
        part_cross_entropy(torch.zeros(4, 3, 2), torch.zeros(3, dtype=torch.long))
