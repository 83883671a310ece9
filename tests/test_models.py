"""Model zoo: registry errors, parameter counts, forward contract, packing, one training step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gaitlib import models
from gaitlib.losses import batch_all_triplet, part_cross_entropy
from gaitlib.models.blocks import GeMHPP, HorizontalPyramidPooling, SeparateFCs, set_max
from gaitlib.models.gaitgl import GLConv
from gaitlib.models.gaitpart import FocalConv2d, PartConv1d
from tests.conftest import blob_silhouettes

H, W = 64, 44

# name -> (embedding channels, parts, classes or None)
CONTRACT = {"gaitset": (256, 62, None), "gaitpart": (128, 16, None), "gaitgl": (128, 64, 74)}


def _sils(n: int, frames: int, seed: int = 0) -> torch.Tensor:
    return blob_silhouettes(n, frames, H, W, seed)


def _build(name: str, **opts) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build(name, **opts)


# --------------------------------------------------------------------------- registry


def test_available_lists_the_baselines():
    assert {"gaitset", "gaitpart", "gaitgl"} <= set(models.available())
    assert models.available() == sorted(models.available())


def test_your_own_model_joins_the_registry(monkeypatch):
    from gaitlib.models import registry

    monkeypatch.setattr(registry, "BUILDERS", dict(registry.BUILDERS))
    models.register("tiny-gaitset", lambda channels=(8, 8, 16): models.build("gaitset", channels=channels))
    assert "tiny-gaitset" in models.available()
    assert models.options("tiny-gaitset") == {"channels": (8, 8, 16)}
    out = models.build("tiny-gaitset")(torch.rand(2, 5, 64, 44))
    assert out["embedding"].shape[0] == 2
    models.register("by-path", "gaitlib.models.gaitpart:GaitPart")  # imported on first use
    assert isinstance(registry.BUILDERS["by-path"], str)
    assert type(models.build("by-path")).__name__ == "GaitPart"
    with pytest.raises(ValueError, match="already registered"):
        models.register("by-path", "gaitlib.models.gaitpart:GaitPart")
    with pytest.raises(ValueError, match="package.module:Name"):
        models.register("bad", "gaitlib.models.gaitpart.GaitPart")


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError) as err:
        models.build("gaitzet")
    for name in models.available():
        assert name in str(err.value)


def test_unknown_option_names_it_and_lists_valid_ones():
    with pytest.raises(TypeError) as err:
        models.build("gaitgl", num_clases=10)
    msg = str(err.value)
    assert "num_clases" in msg
    for opt in ("variant", "num_classes", "channels"):
        assert opt in msg
    assert "num_classes" in models.options("gaitgl")


def test_invalid_variant_lists_valid_ones():
    with pytest.raises(ValueError, match="oumvlp"):
        models.build("gaitgl", variant="grew")


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("name,opts,target", [
    ("gaitset", {}, 2.59e6),
    ("gaitpart", {}, 1.20e6),
    ("gaitgl", {}, 3.10e6),
    ("gaitgl", {"variant": "oumvlp"}, 95.6e6),
])
def test_parameter_counts_match_published(name, opts, target):
    n = models.count_parameters(_build(name, **opts))
    assert abs(n - target) / target < 0.01, f"{name} {opts}: {n} parameters vs {target:.3g}"


def test_options_change_the_architecture():
    base = models.count_parameters(_build("gaitgl"))
    # Only the classifier depends on the class count: 64 parts x 128 channels per class.
    assert models.count_parameters(_build("gaitgl", num_classes=10)) == base - 64 * 128 * 64
    narrow = _build("gaitset", channels=(16, 32, 64), hidden_dim=128)
    assert narrow(_sils(1, 3))["embedding"].shape == (1, 128, 62)


# --------------------------------------------------------------------------- forward contract


@pytest.mark.parametrize("name", list(CONTRACT))
def test_forward_shapes_train_and_eval(name):
    c, p, classes = CONTRACT[name]
    model = _build(name)
    n = 2
    x = _sils(n, 30)
    with torch.no_grad():  # gradients are covered by the training-step test
        out = model.train()(x)
        assert out["embedding"].shape == (n, c, p)
        if classes is not None:
            assert out["logits"].shape == (n, classes, p)
        out = model.eval()(x)
    assert out["embedding"].shape == (n, c, p)
    assert torch.isfinite(out["embedding"]).all()
    assert not torch.allclose(out["embedding"][0], out["embedding"][1])


@pytest.mark.parametrize("name", list(CONTRACT))
def test_packed_batch_equals_one_by_one(name):
    # GaitGL: 2 frames exercise its repeat rule, 7 the frame LTA's stride 3 leaves over.
    lengths = [2, 7, 4] if name == "gaitgl" else [3, 5, 2]
    model = _build(name).eval()
    seqs = [_sils(1, t, seed=i) for i, t in enumerate(lengths)]
    packed = torch.cat(seqs, dim=1)
    with torch.no_grad():
        together = model(packed, lengths=torch.tensor(lengths))["embedding"]
        alone = torch.cat([model(s)["embedding"] for s in seqs])
        unpacked = model(packed)["embedding"]  # all frames as one sequence
    assert together.shape[0] == len(lengths)
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(unpacked, alone[:1], atol=1e-4)  # lengths really matter


def test_packed_batch_is_validated():
    model = _build("gaitset").eval()
    with pytest.raises(ValueError, match="sum"):
        model(_sils(1, 10), lengths=[4, 5])
    with pytest.raises(ValueError):
        model(_sils(1, 10)[0])  # missing batch axis


# --------------------------------------------------------------------------- training


def _loss(name: str, out: dict, labels: torch.Tensor) -> torch.Tensor:
    loss = batch_all_triplet(out["embedding"], labels, margin=0.2).loss
    if "logits" in out:
        loss = loss + part_cross_entropy(out["logits"], labels, label_smoothing=0.1)
    return loss


@pytest.mark.parametrize("name", list(CONTRACT))
def test_one_step_reduces_loss_and_grads_are_finite(name):
    model = _build(name, num_classes=4) if name == "gaitgl" else _build(name)
    model.train()
    labels = torch.tensor([0, 0, 1, 1])  # P=2 subjects x K=2 sequences
    x = _sils(len(labels), 3, seed=7)  # 3 frames: one LTA step for GaitGL
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)  # the papers' optimiser and rate

    loss0 = _loss(name, model(x), labels)
    opt.zero_grad()
    loss0.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{pname} has a non-finite gradient"
    assert sum(bool(p.grad.abs().sum() > 0) for p in model.parameters()) == len(
        list(model.parameters()))
    opt.step()
    loss1 = _loss(name, model(x), labels)
    assert loss1.item() < loss0.item() * 0.999  # a real decrease, far above float noise


# --------------------------------------------------------------------------- blocks


def test_hpp_is_mean_plus_max_per_strip():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)  # rows 0-3, values 0..15
    out = HorizontalPyramidPooling((2, 1))(x)
    # Strip 0 = rows 0-1 (values 0..7): mean 3.5 + max 7; strip 1: 11.5 + 15; whole: 7.5 + 15.
    torch.testing.assert_close(out, torch.tensor([[[10.5, 26.5, 22.5]]]))


def test_gem_is_a_generalised_mean_per_strip():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 1, 4)
    gem = GeMHPP((1,))
    assert gem.p.item() == pytest.approx(6.5)
    p = 6.5
    expected = (sum(v**p for v in (1.0, 2.0, 3.0, 4.0)) / 4) ** (1 / p)
    assert gem(x).item() == pytest.approx(expected, rel=1e-5)
    gem.p.data.fill_(1.0)
    assert gem(x).item() == pytest.approx(2.5)  # p = 1: average pooling


def test_separate_fcs_use_one_matrix_per_part():
    fc = SeparateFCs(parts=3, in_channels=2, out_channels=5)
    x = torch.randn(4, 2, 3)
    out = fc(x)
    for k in range(3):
        torch.testing.assert_close(out[:, :, k], x[:, :, k] @ fc.weight[k])


def test_set_max_respects_lengths():
    x = torch.tensor([1.0, 5.0, 2.0, 3.0, 0.0]).reshape(1, 1, 5)
    torch.testing.assert_close(set_max(x, [2, 3]), torch.tensor([[5.0], [3.0]]))


def test_glconv_local_branch_sees_one_strip_at_a_time():
    torch.manual_seed(0)
    conv = GLConv(2, 3, halving=2)
    x = torch.randn(2, 2, 4, 8, 5)  # 4 strips of 2 rows
    w_g, w_l = conv.global_conv.weight, conv.local_conv.weight
    local = torch.cat([F.conv3d(z, w_l, padding=1) for z in x.split(2, dim=3)], dim=3)
    expected = F.leaky_relu(F.conv3d(x, w_g, padding=1)) + F.leaky_relu(local)
    torch.testing.assert_close(conv(x), expected)
    conv.concat = True  # type B: global and local stacked along the height
    assert conv(x).shape == (2, 3, 4, 16, 5)


def test_part_conv_is_one_independent_conv_per_part():
    torch.manual_seed(0)
    parts, c_in, c_out = 3, 4, 2
    conv = PartConv1d(parts, c_in, c_out, kernel_size=3)
    x = torch.randn(2, parts * c_in, 7)
    out = conv(x)
    for k in range(parts):
        w = conv.weight[k * c_out:(k + 1) * c_out]
        ref = F.conv1d(x[:, k * c_in:(k + 1) * c_in], w, padding=1)
        torch.testing.assert_close(out[:, k * c_out:(k + 1) * c_out], ref)


def test_focal_conv_pads_at_strip_borders():
    conv = FocalConv2d(1, 1, 3, halving=1)
    torch.nn.init.ones_(conv.weight)
    out = conv(torch.ones(1, 1, 4, 3))  # 2 strips of 2 rows: no row has 3 rows of support
    assert out[0, 0, :, 1].tolist() == [6.0, 6.0, 6.0, 6.0]


def test_focal_conv_refuses_a_height_its_strips_do_not_divide():
    conv = FocalConv2d(1, 1, 3, halving=2)
    assert conv(torch.ones(1, 1, 8, 3)).shape == (1, 1, 8, 3)
    with pytest.raises(ValueError, match="height 6 is not divisible into 4"):
        conv(torch.ones(1, 1, 6, 3))  # split(1) would give six strips, not four
