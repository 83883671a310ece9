"""Checkpoint import from the reference implementations (gaitlib.models.convert, the CLI).

The reference state dicts are synthesised from ``tests/fixtures/reference_state_dicts.json``:
the tensor names and shapes of OpenGait's GaitSet/GaitPart/GaitGL (CASIA-B and OU-MVLP
configurations) and of the CSTL authors' network, as their code registers them (written by
``bench/equivalence.py --fixtures`` from the reference code).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gaitlib.models import build
from gaitlib.models.convert import SOURCES, ConversionError, convert_state, read_state_dict, unwrap
from tests.conftest import make_store

FIXTURE = Path(__file__).parent / "fixtures" / "reference_state_dicts.json"
REFERENCE = json.loads(FIXTURE.read_text())
CASES = {key: (key.split("/")[0], key.split("/")[1]) for key in REFERENCE}
SMALL = [k for k in REFERENCE if k != "opengait/gaitgl/oumvlp"]  # 95.6M parameters: meta only


def reference_state(key: str, device: str = "cpu", seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with the reference names and shapes, in the reference order; each tensor
    distinct, so a wrong mapping cannot go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in REFERENCE[key]:
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7, dtype=torch.long, device=device)
        elif device == "meta":
            state[name] = torch.empty(shape, device="meta")
        else:
            state[name] = torch.randn(shape, generator=g)
    return state


def test_fixture_covers_every_source_and_model():
    assert {(s, m) for s, m in CASES.values()} == {(s, m) for s, ms in SOURCES.items()
                                                   for m in ms}
    assert {k.split("/")[2] for k in REFERENCE if k.startswith("opengait")} == {"casia-b",
                                                                                "oumvlp"}


@pytest.mark.parametrize("key", list(REFERENCE))
def test_mapping_is_a_bijection_onto_gaitlib_shapes(key):
    source, model = CASES[key]
    state = reference_state(key, device="meta")
    conv = convert_state(source, model, state)
    used = [k for keys, _ in conv.mapping for k in keys]
    assert sorted(used) == sorted(state), "every reference tensor used exactly once"
    with torch.device("meta"):
        ours = build(model, **conv.options).state_dict()
    assert [dest for _, dest in conv.mapping] and sorted(d for _, d in conv.mapping) == \
        sorted(ours), "every gaitlib tensor made exactly once"
    assert {k: tuple(v.shape) for k, v in conv.state.items()} == \
        {k: tuple(v.shape) for k, v in ours.items()}
    # many-to-one only where the facts say so: GaitPart's TFA and CSTL's SSFL BatchNorm
    merged = {dest for keys, dest in conv.mapping if len(keys) > 1}
    expected = {"gaitpart": {f"tfa.mtb{i}.{j}.weight" for i in (1, 2) for j in (0, 1)},
                "cstl": {f"ssfl.bn.{n}" for n in ("weight", "bias", "running_mean",
                                                  "running_var", "num_batches_tracked")}}
    assert merged == expected.get(model, set())


@pytest.mark.parametrize("key", SMALL)
def test_converted_weights_load_into_gaitlib(key):
    source, model = CASES[key]
    state = reference_state(key)
    conv = convert_state(source, model, state)
    net = conv.build()
    loaded = net.state_dict()
    for keys, dest in conv.mapping:
        if len(keys) == 1:
            assert torch.equal(loaded[dest], state[keys[0]])


def test_known_tensors_land_where_they_belong():
    gs = reference_state("opengait/gaitset/casia-b")
    conv = convert_state("opengait", "gaitset", gs)
    assert torch.equal(conv.state["global_stages.1.2.weight"], gs["gl_block3.2.conv.weight"])
    assert torch.equal(conv.state["frame_stages.2.module.2.weight"],
                       gs["set_block3.forward_block.2.conv.weight"])
    assert torch.equal(conv.state["head.weight"], gs["Head.fc_bin"])

    gp = reference_state("opengait/gaitpart/casia-b")
    conv = convert_state("opengait", "gaitpart", gp)
    hidden, c = 32, 128
    for part in (0, 5, 15):
        assert torch.equal(conv.state["tfa.mtb2.1.weight"][part * c:(part + 1) * c],
                           gp[f"TFA.pooling_func.conv1d3x3.{part}.2.conv.weight"])
        assert torch.equal(conv.state["tfa.mtb1.0.weight"][part * hidden:(part + 1) * hidden],
                           gp[f"TFA.pooling_func.conv1d3x1.{part}.0.conv.weight"])

    gl = reference_state("opengait/gaitgl/casia-b")
    conv = convert_state("opengait", "gaitgl", gl)
    assert conv.options == {"variant": "casia-b", "num_classes": 74}
    assert torch.equal(conv.state["bnneck.bn.running_var"], gl["Bn.running_var"])
    assert torch.equal(conv.state["gem.p"], gl["HPP.p"])

    cs = reference_state("cstl-official/cstl/64")
    conv = convert_state("cstl-official", "cstl", cs)
    assert conv.options == {"resolution": 64, "num_classes": 73}
    assert torch.equal(conv.state["ssfl.bn.running_var"][7 * c:8 * c],
                       cs["salient_learning.bn.7.running_var"])
    assert torch.equal(conv.state["mste.long_term.3.weight"], cs["multi_scale.score.3.weight"])
    assert torch.equal(conv.state["ata.relation.2.weight"],
                       cs["adaptive_aggregation.out_conv.weight"])


def test_oumvlp_configurations_are_recognised():
    for model, options in (("gaitset", {"channels": (64, 128, 256), "hidden_dim": 256}),
                           ("gaitgl", {"variant": "oumvlp", "num_classes": 5153}),
                           ("gaitpart", {"channels": (32, 64, 128, 256), "halving": (0, 0, 3, 3),
                                         "pools": (1, 2), "out_channels": 256})):
        conv = convert_state("opengait", model, reference_state(f"opengait/{model}/oumvlp",
                                                                device="meta"))
        assert conv.variant == "oumvlp" and conv.options == options


def test_wrong_model_or_shape_names_the_first_misfit():
    part = reference_state("opengait/gaitpart/casia-b", device="meta")
    with pytest.raises(ConversionError, match="'Head.fc_bin'"):
        convert_state("opengait", "gaitset", part)  # backbone lines up, then the head does not
    gl = reference_state("opengait/gaitgl/casia-b", device="meta")
    gl["GLConvA1.local_conv3d.conv3d.weight"] = torch.empty(128, 64, 3, 3, 1, device="meta")
    with pytest.raises(ConversionError, match="'GLConvA1.local_conv3d.conv3d.weight'"):
        convert_state("opengait", "gaitgl", gl)
    with pytest.raises(ConversionError, match="'Head1.fc_bin'"):
        convert_state("opengait", "gaitgl", reference_state("opengait/gaitset/casia-b",
                                                            device="meta"))
    cs = reference_state("cstl-official/cstl/64", device="meta")
    del cs["salient_learning.bn.12.bias"]
    with pytest.raises(ConversionError, match="'salient_learning.bn.12.bias'"):
        convert_state("cstl-official", "cstl", cs)
    cs = reference_state("cstl-official/cstl/64", device="meta")
    cs["extra.weight"] = torch.empty(3, device="meta")
    with pytest.raises(ConversionError, match="'extra.weight'"):
        convert_state("cstl-official", "cstl", cs)
    with pytest.raises(ConversionError, match="not 'cstl'"):
        convert_state("opengait", "cstl", cs)


def test_read_state_dict_unwraps_and_refuses_code(tmp_path):
    state = {"module.Head.fc_bin": torch.ones(2, 3, 4)}
    torch.save({"model": state, "optimizer": {}, "iteration": 4000}, tmp_path / "og.pt")
    got, iteration = read_state_dict(tmp_path / "og.pt")
    assert list(got) == ["Head.fc_bin"] and iteration == 4000
    torch.save(state, tmp_path / "bare.ptm")
    bare, iteration = read_state_dict(tmp_path / "bare.ptm")
    assert list(bare) == ["Head.fc_bin"] and iteration == 0

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model": state, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ConversionError, match="weights-only"):
        read_state_dict(tmp_path / "evil.pt")
    with pytest.raises(ConversionError, match="no model state dict"):
        unwrap({"model": {"a": 1}})


def test_cli_import_then_eval(tmp_path, capsys):
    from gaitlib.cli import CHECKPOINT_SOURCES, main
    from gaitlib.training.checkpoint import latest_checkpoint, load_checkpoint

    assert CHECKPOINT_SOURCES == SOURCES  # the CLI's copy (no torch import at start-up)
    store = make_store(tmp_path / "store", subjects=[f"{i:03d}" for i in range(1, 5)],
                       conditions=("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "bg-01",
                                   "cl-01"), views=("000", "090"), lengths=(4, 8))
    state = reference_state("opengait/gaitpart/casia-b")
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "iteration": 120000},
               tmp_path / "GaitPart-120000.pt")
    out = tmp_path / "run"
    argv = ["checkpoint", "import", "--from", "opengait", str(tmp_path / "GaitPart-120000.pt"),
            "--model", "gaitpart", "--out", str(out), "--data", str(store.path)]
    assert main(argv) == 0
    saved = load_checkpoint(latest_checkpoint(out / "checkpoints"))
    assert saved["iteration"] == 120000
    assert torch.equal(saved["model"]["head.weight"], state["Head.fc_bin"])
    record = json.loads((out / "imported.json").read_text())
    assert record["source"] == "opengait" and len(record["sha256"]) == 64
    capsys.readouterr()
    assert main(["eval", str(out), "--bootstrap", "10", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "iteration 120000" in printed and "NM" in printed
    assert main(argv) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert main(["checkpoint", "import", "--from", "opengait",
                 str(tmp_path / "GaitPart-120000.pt"), "--model", "gaitset",
                 "--out", str(tmp_path / "r2")]) == 2
    assert "'Head.fc_bin'" in capsys.readouterr().err
