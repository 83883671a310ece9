"""GaitMM: FFSL / PME / MSMA semantics, every length 1..61, every variant trains a step,
parameter counts of Table 3's rows and the DWConv model (Fig. 2)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gaitlib import models
from gaitlib.losses import batch_all_triplet, part_cross_entropy
from gaitlib.models.gaitmm import (
    ABLATIONS,
    FFSL,
    LMA,
    MSMA,
    PME,
    GaitMM,
    _clip_max_mean,
    gaitmm_parameter_counts,
)
from tests.conftest import blob_silhouettes

# Tiny models keep the file fast: 16x12 silhouettes (8 PME strips of 2 rows), narrow widths.
H, W = 16, 12
TINY = {"channels": (4, 8, 8), "parts": 16, "num_classes": 4}


def _sils(n: int, frames: int, seed: int = 0, h: int = H, w: int = W) -> torch.Tensor:
    return blob_silhouettes(n, frames, h, w, seed, coarse=(4, 3))


def _tiny(**opts) -> GaitMM:
    torch.manual_seed(0)
    return models.build("gaitmm", **{**TINY, **opts})


@pytest.fixture(scope="module")
def counts() -> dict[str, int]:
    return gaitmm_parameter_counts()  # full-size CASIA-B models, built once


# --------------------------------------------------------------------------- building blocks


def test_clips_of_three_with_a_shorter_last_clip():
    x = torch.tensor([1.0, 5.0, 2.0, 4.0]).reshape(1, 1, 4, 1, 1)
    mx, mean = _clip_max_mean(x)
    assert mx.flatten().tolist() == [5.0, 4.0]
    torch.testing.assert_close(mean.flatten(), torch.tensor([8.0 / 3, 4.0]))
    mx, mean = _clip_max_mean(torch.tensor([3.0, 1.0]).reshape(1, 1, 2, 1, 1))
    assert (mx.item(), mean.item()) == (3.0, 2.0)


def test_lma_is_eq5_and_equals_stride3_pooling_when_3_divides_d():
    x = torch.randn(2, 3, 30, 8, 5)
    lma = LMA(strips=1)
    assert lma.p1.item() == lma.p2.item() == 0.5  # the paper's init
    ref = 0.5 * F.max_pool3d(x, (3, 1, 1), (3, 1, 1)) + 0.5 * F.avg_pool3d(x, (3, 1, 1), (3, 1, 1))
    torch.testing.assert_close(lma(x), ref)


def test_part_lma_weights_each_strip_on_its_own():
    x = torch.rand(1, 2, 6, 8, 3) + 0.1
    lma = LMA(strips=4)
    before = lma(x)
    with torch.no_grad():
        lma.p1[2] = 3.0  # strip 2 = rows 4-5
    after = lma(x)
    changed = (after != before).any(dim=(0, 1, 2, 4))
    assert changed.tolist() == [False] * 4 + [True] * 2 + [False] * 2


def test_msma_sums_a_global_and_a_part_branch():
    x = torch.randn(1, 2, 9, 8, 3)
    msma = MSMA(l=8)
    assert msma.part_branch.p1.shape == (8,) and msma.global_branch.p1.shape == (1,)
    torch.testing.assert_close(msma(x), msma.global_branch(x) + msma.part_branch(x))
    assert msma(x).shape == (1, 2, 3, 8, 3)  # D -> D/3


def test_pme_strips_have_own_weights_and_never_see_other_strips():
    torch.manual_seed(0)
    pme = PME(2, 3, k=4)
    weights = [conv.weight for conv in pme.convs]
    assert len({w.data_ptr() for w in weights}) == 4  # eq. 2: non-shared convs
    assert not torch.allclose(weights[0], weights[1])
    x = torch.randn(1, 2, 4, 8, 5)
    y = x.clone()
    y[:, :, :, :2] += 1.0  # change strip 0 only
    diff = (pme(y) - pme(x)).abs().amax(dim=(0, 1, 2, 4))
    assert (diff[:2] > 0).all() and (diff[2:] == 0).all()
    # eq. 3: the strips are convolved separately and concatenated back along the height
    ref = torch.cat([F.conv3d(s, w, padding=1) for s, w in zip(x.split(2, 3), weights,
                                                                  strict=True)], dim=3)
    torch.testing.assert_close(pme(x), ref)


def test_ffsl_sums_bme_and_pme_and_bme_alone_without_pme():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 3, 8, 4)
    ffsl = FFSL(2, 3)
    torch.testing.assert_close(ffsl(x), F.leaky_relu(ffsl.bme(x)) + F.leaky_relu(ffsl.pme(x)))
    assert FFSL(2, 3, pme=False).pme is None


# --------------------------------------------------------------------------- the model


def test_full_size_contract():
    model = models.build("gaitmm").train()
    with torch.no_grad():
        out = model(_sils(2, 3, h=64, w=44))
    assert out["embedding"].shape == (2, 128, 64)
    assert out["logits"].shape == (2, 74, 64)
    assert torch.isfinite(out["embedding"]).all()


def test_variant_depths_and_invalid_options():
    def n_ffsl(m):
        return sum(isinstance(mod, FFSL) for mod in m.modules())

    assert n_ffsl(_tiny()) == 3
    oumvlp = _tiny(variant="oumvlp", parts=8)
    assert n_ffsl(oumvlp) == 6
    out = oumvlp.train()(_sils(2, 4))
    assert out["embedding"].shape == (2, 8, 8)  # spatial pool halves 16 rows -> 8 bins
    with pytest.raises(ValueError, match="pme"):
        _tiny(pme=False, dwconv=True)
    with pytest.raises(ValueError, match="oumvlp"):
        _tiny(variant="grew")


def _run_counting_msma_frames(model: GaitMM, x: torch.Tensor, **kw) -> tuple[dict, list[int]]:
    """Forward without gradients; also return the frame count FFSL2 received per call."""
    seen: list[int] = []
    hook = model.ffsl2.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[2]))
    with torch.no_grad():
        out = model(x, **kw)
    hook.remove()
    return out, seen


def test_every_length_1_to_61_packed_equals_one_by_one():
    model = _tiny().eval()
    lengths = list(range(1, 62))
    seqs = [_sils(1, t, seed=t) for t in lengths]
    packed = torch.cat(seqs, dim=1)
    out, frames = _run_counting_msma_frames(model, packed, lengths=lengths)
    together = out["embedding"]
    assert together.shape == (61, 8, 16)
    assert torch.isfinite(together).all()
    assert frames == [math.ceil(t / 3) for t in lengths]  # MSMA: D -> ceil(D/3)
    with torch.no_grad():
        for t in (1, 2, 3, 4, 5, 31, 61):
            alone = model(seqs[t - 1])["embedding"]
            torch.testing.assert_close(together[t - 1:t], alone, rtol=1e-4, atol=1e-5)


def test_without_msma_no_frame_is_compressed():
    assert _run_counting_msma_frames(_tiny(msma=False).eval(), _sils(1, 7))[1] == [7]


def _loss(out: dict, labels: torch.Tensor) -> torch.Tensor:
    return (batch_all_triplet(out["embedding"], labels, margin=0.2).loss
            + part_cross_entropy(out["logits"], labels))


@pytest.mark.parametrize("row", [*ABLATIONS, "oumvlp"])
def test_every_variant_trains_a_step(row):
    opts = {"variant": "oumvlp", "parts": 8} if row == "oumvlp" else ABLATIONS[row]
    model = _tiny(**opts).train()
    labels = torch.tensor([0, 0, 1, 1])
    x = _sils(len(labels), 5, seed=3)  # 5 frames: a full and a short MSMA clip
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = _loss(model(x), labels)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    if model.options["msma"]:  # p1 and p2 of both branches are learnt
        for name in ("global_branch", "part_branch"):
            lma = getattr(model.msma, name)
            assert (lma.p1.grad.abs() > 0).all() and (lma.p2.grad.abs() > 0).all()
            assert not torch.allclose(lma.p1.detach(), torch.full_like(lma.p1, 0.5))


# --------------------------------------------------------------------------- parameter counts


def _pme_params(widths, dwconv: bool, k: int = 8) -> int:
    pairs = list(zip(widths[:-1], widths[1:], strict=True))
    per = (lambda a, b: 27 * a + a * b) if dwconv else (lambda a, b: 27 * a * b)
    return k * sum(per(a, b) for a, b in pairs)


def test_parameter_counts_follow_the_architecture(counts):
    widths = (32, 64, 128, 128)  # stem, FFSL1..3 outputs
    # PME adds 8 separate 3x3x3 convs per FFSL; DWConv replaces each by depthwise + pointwise.
    assert counts["gaitmm-bme+pme"] - counts["gaitmm-bme"] == _pme_params(widths, False)
    assert counts["gaitmm-dwconv"] - counts["gaitmm-bme+msma"] == _pme_params(widths, True)
    # MSMA is (p1, p2) for the global LMA and for each of the l=8 part LMAs.
    assert counts["gaitmm-bme+msma"] - counts["gaitmm-bme"] == 2 * (1 + 8)
    assert counts["gaitmm-full"] - counts["gaitmm-bme+pme"] == 2 * (1 + 8)
    assert counts["gaitmm-dwconv"] < counts["gaitmm-full"] / 2
    assert counts["gaitmm-full"] == models.count_parameters(models.build("gaitmm"))
    assert {"gaitset", "gaitpart", "gaitgl"} <= set(counts)


def test_the_ablation_table_is_the_artifacts_rows():
    """ABLATIONS (the model's own Table 3 and Fig. 2 rows) and the rows gaitmm-t3 and gaitmm-f2
    train are the same builds."""
    from gaitlib.papers.artifacts import artifact

    defaults = {"pme": True, "msma": True, "dwconv": False}
    names = {"BME": "bme", "BME+PME": "bme+pme", "BME+MSMA": "bme+msma", "BME+PME+MSMA": "full",
             "Ours (DWConv)": "dwconv"}
    rows = [r for aid in ("gaitmm-t3", "gaitmm-f2") for r in artifact(aid).rows
            if r.model == "gaitmm" and r.label in names]
    assert {names[r.label] for r in rows} == set(ABLATIONS)
    for r in rows:
        assert {**defaults, **r.options} == {**defaults, **ABLATIONS[names[r.label]]}, r.label
