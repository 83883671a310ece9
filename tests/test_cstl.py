"""CSTL (issue 4): parameter counts, shapes for every sequence length, every ablation variant
trains a step, gradients reach MSTE/ATA/SSFL, SSFL's selection, no mixing of sequences."""

from __future__ import annotations

import pytest
import torch

from gaitlib import models
from gaitlib.losses import batch_all_triplet, part_cross_entropy
from gaitlib.models.cstl import CSTL
from tests.conftest import blob_silhouettes


def _sils(n: int, frames: int, h: int = 64, w: int = 44, seed: int = 0) -> torch.Tensor:
    return blob_silhouettes(n, frames, h, w, seed)


def _build(**opts) -> CSTL:
    torch.manual_seed(0)
    return models.build("cstl", **opts)


def _loss(out: dict, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 11: separate BA+ triplet on the embedding + the SSFL cross-entropy."""
    tri = batch_all_triplet(out["embedding"], labels, 0.2)
    assert tri.loss.item() > 0, "degenerate batch: no active triplet"
    loss = tri.loss
    if "logits" in out:
        loss = loss + part_cross_entropy(out["logits"], labels)
    return loss


# Table 3 rows, Table 4's seven scale subsets, Table 5's aggregations, and the other builds.
TABLE3 = {
    "baseline": dict(mste=False, ssfl=False, aggregation="max"),
    "+mste": dict(ssfl=False, aggregation="max"),
    "+mste+ata": dict(ssfl=False),
    "+mste+ssfl": dict(aggregation="max"),
    "cstl": dict(),
}
TABLE4 = [("frame",), ("short",), ("long",), ("frame", "short"), ("frame", "long"),
          ("short", "long"), ("frame", "short", "long")]
VARIANTS = (
    [pytest.param(o, id=f"t3-{k}") for k, o in TABLE3.items()]
    + [pytest.param(dict(scales=s), id="t4-" + "+".join(s)) for s in TABLE4]
    + [pytest.param(dict(aggregation=a), id=f"t5-{a}") for a in ("max", "avg", "ata")]
    + [pytest.param(dict(reading="paper"), id="paper"),
       pytest.param(dict(reading="paper", ssfl=False, aggregation="avg"), id="paper-nossfl"),
       pytest.param(dict(resolution=128), id="128x88"),
       pytest.param(dict(variant="oumvlp"), id="oumvlp")])


# --------------------------------------------------------------------------- sizes


@pytest.fixture(scope="module")
def full_size() -> dict[int, CSTL]:
    return {r: _build(resolution=r) for r in (64, 128)}


@pytest.mark.parametrize("resolution,target", [(64, 9.09e6), (128, 17.93e6)])
def test_parameter_count_matches_the_authors_code(full_size, resolution, target):
    n = models.count_parameters(full_size[resolution])
    assert abs(n - target) / target < 0.02, n


def test_parts_are_feature_rows(full_size):
    for r, model in full_size.items():
        assert model.parts == r // 2
        assert model.fc.weight.shape == (r // 2, 3 * 128, 256)  # concat(T, W, S) -> 256


def test_registered_and_options_checked():
    assert "cstl" in models.available()
    assert {"scales", "aggregation", "ssfl", "mste", "resolution", "variant",
            "num_classes", "reading"} <= set(models.options("cstl"))
    for bad in (dict(scales=()), dict(scales=("frame", "medium")), dict(aggregation="sum"),
                dict(resolution=96), dict(variant="x"), dict(reading="x")):
        with pytest.raises(ValueError):
            CSTL(**bad)
    with pytest.raises(ValueError, match="64 high"):
        CSTL(num_classes=3).eval()(_sils(1, 2, h=128, w=88))


def test_mste_off_is_frame_level_only():
    a, b = CSTL(mste=False, num_classes=3), CSTL(scales=("frame",), num_classes=3)
    assert models.count_parameters(a) == models.count_parameters(b)
    assert a.scales == ("frame",) and not hasattr(a.mste, "short_term")
    with pytest.raises(ValueError, match="mste=False keeps the frame-level features only"):
        CSTL(mste=False, scales=("short", "long"), num_classes=3)


# --------------------------------------------------------------------------- shapes


@pytest.fixture(scope="module")
def small() -> CSTL:
    return _build(num_classes=5).eval()


def test_every_length_1_to_60_packed(small):
    """One packed batch with sequences of 1..60 frames (narrow frames keep it fast: the part
    features pool over the width, so any width works)."""
    lengths = list(range(1, 61))
    with torch.no_grad():
        out = small(_sils(1, sum(lengths), w=4), lengths=lengths)
    assert out["embedding"].shape == (60, 256, 32)
    assert torch.isfinite(out["embedding"]).all()
    assert out["ssfl_index"].shape == (60, 32)
    assert out["ssfl_scores"].shape == (1, sum(lengths), 32)
    assert "logits" not in out
    # eq. 9 picks a frame of its own sequence; eq. 6 normalises each sequence's scores.
    idx, lens = out["ssfl_index"], torch.tensor(lengths)
    assert (idx >= 0).all() and (idx < lens[:, None]).all()
    for i, scores in enumerate(out["ssfl_scores"][0].split(lengths)):
        assert torch.allclose(scores.sum(0), torch.ones(32), atol=1e-5)
        assert torch.equal(scores.argmax(0), idx[i])


@pytest.mark.parametrize("frames", [1, 2, 5, 29])
def test_training_clips_shorter_than_30(frames):
    model = _build(num_classes=3).train()
    out = model(_sils(2, frames))
    assert out["embedding"].shape == (2, 256, 32)
    assert out["logits"].shape == (2, 3, 32)
    assert out["ssfl_scores"].shape == (2, frames, 32)
    assert ((out["ssfl_index"] >= 0) & (out["ssfl_index"] < frames)).all()


def test_packed_equals_one_at_a_time_and_sequences_never_mix(small):
    lengths = [3, 1, 7]
    x = _sils(1, sum(lengths), seed=1)
    with torch.no_grad():
        packed = small(x, lengths=lengths)
        alone = [small(chunk) for chunk in x.split(lengths, dim=1)]
        # Changing the middle sequence must not change the others.
        y = x.clone()
        y[:, 3] = 1 - y[:, 3]
        changed = small(y, lengths=lengths)
    for i, a in enumerate(alone):
        assert torch.allclose(packed["embedding"][i], a["embedding"][0], atol=1e-4)
        assert torch.equal(packed["ssfl_index"][i], a["ssfl_index"][0])
    assert torch.allclose(changed["embedding"][[0, 2]], packed["embedding"][[0, 2]], atol=1e-5)
    assert not torch.allclose(changed["embedding"][1], packed["embedding"][1])


def test_selected_part_is_the_top_frame_of_p(small):
    """Eq. 10: S holds, for each part, P at the frame of eq. 9 (checked via the modules)."""
    p = torch.randn(2, 32 * 128, 6)
    feats = small.mste(p)
    with torch.no_grad():
        s = small.ssfl(p, feats)
    parts = p.reshape(2, 32, 128, 6)
    for b in range(2):
        for k in range(32):
            assert torch.equal(s["selected"][b, :, k], parts[b, k, :, s["index"][b, k]])


# --------------------------------------------------------------------------- MSTE and ATA


def test_mste_short_term_field_is_5_and_long_term_is_constant(small):
    p = torch.randn(1, 32 * 128, 12)
    q = p.clone()
    q[..., 6] += 1.0
    with torch.no_grad():
        _, short_p, long_p = small.mste(p)
        _, short_q, _ = small.mste(q)
    changed = (short_p - short_q).abs().amax(1)[0] > 1e-6
    assert changed.nonzero().flatten().tolist() == [4, 5, 6, 7, 8]  # two k=3 convs in series
    assert torch.allclose(long_p, long_p[..., :1].expand_as(long_p))  # eq. 1 is broadcast


def test_ata_with_constant_weights_is_average_pooling():
    """Eq. 5 divides by the weight sum, so equal weights give the plain mean (Table 5's avg)."""
    model = _build(num_classes=3, reading="paper")
    with torch.no_grad():
        model.ata.relation[-1].weight.zero_()
        model.ata.relation[-1].bias.zero_()
        cumulative = torch.randn(2, 32, 3, 128, 5)
        t = model.ata(cumulative)
    assert torch.allclose(t, cumulative.mean(dim=(2, 4)).transpose(1, 2), atol=1e-5)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("opts", VARIANTS)
def test_every_variant_trains_a_step(opts):
    h, w = (128, 88) if opts.get("resolution") == 128 else (64, 44)
    model = _build(num_classes=2, **opts).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    labels = torch.tensor([0, 0, 1, 1])
    out = model(_sils(4, 3, h, w, seed=2), None)
    assert ("logits" in out) == opts.get("ssfl", True)
    loss = _loss(out, labels)
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("backbone") for k in moved) and any(k.startswith("fc") for k in moved)


@pytest.mark.parametrize("reading", ["code", "paper"])
def test_gradients_reach_mste_ata_ssfl(reading):
    model = _build(num_classes=2, reading=reading).train()
    out = model(_sils(4, 5, seed=3))
    _loss(out, torch.tensor([0, 0, 1, 1])).backward()
    for name in ("mste", "ata", "ssfl"):
        params = list(getattr(model, name).named_parameters())
        assert params
        for pname, prm in params:
            assert prm.grad is not None and prm.grad.abs().sum() > 0, f"{name}.{pname}"

