"""Training engine: typed configs and overrides, recipes, checkpoints, bit-identical resume, the
run directory rules and the train/eval commands. Tiny stores and models keep it fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gaitlib.cli import main
from gaitlib.training import (
    CheckpointError,
    ConfigError,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_checkpoint,
    recipe,
    train,
)
from gaitlib.training.checkpoint import capture_rng, latest_checkpoint, restore_rng, save_checkpoint
from gaitlib.training.trainer import LossComposer, resolve_subjects
from tests.conftest import make_store

CONDITIONS = ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "bg-02", "cl-01",
              "cl-02")
TINY_GAITSET = ["model.options.channels=[2,4,4]", "model.options.hidden_dim=8",
                "model.options.bins=[2,1]"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """6 subjects (3 train, 3 test under the synthetic split), all conditions, 2 views."""
    return make_store(tmp_path_factory.mktemp("store") / "s",
                      subjects=[f"{i:03d}" for i in range(1, 7)],
                      conditions=CONDITIONS, views=("000", "090"), lengths=(6, 14))


def tiny_config(store, model="gaitset", extra=()) -> TrainConfig:
    config = recipe(model, "smoke", "synthetic")
    config.data.store = str(store.path)
    opts = TINY_GAITSET if model == "gaitset" else ["model.options.channels=[2,4,4]"]
    return apply_overrides(config, [*opts, "schedule.iterations=6", "schedule.milestones=[4]",
                                    "checkpoint_every=2", "eval.enabled=false",
                                    "eval.max_subjects=0",
                                    *extra])


# -- configuration ------------------------------------------------------------------------------

def test_overrides_convert_to_field_types():
    config = apply_overrides(TrainConfig(), [
        "optimizer.lr=3e-4", "sampling.p=4", "schedule.milestones=70000,75000", "precision=bf16",
        "sampling.window=(20,25)", "data.train_subjects=001-003", "schedule.iterations=1e3"])
    assert config.optimizer.lr == pytest.approx(3e-4) and isinstance(config.optimizer.lr, float)
    assert config.sampling.p == 4 and config.schedule.iterations == 1000
    assert config.schedule.milestones == [70000, 75000]
    assert config.precision == "bf16" and config.sampling.window == (20, 25)
    assert config.data.train_subjects == ["001-003"]


@pytest.mark.parametrize("item, message", [
    ("optimizer.lrr=1", "valid keys: profile, model.name"),
    ("nothing=1", "optimizer.lr"),
    ("sampling.p=four", "sampling.p='four'"),
    ("channels_last=maybe", "boolean"),
    ("sampling.p=2.5", "integer"),
    ("optimizer", "KEY=VALUE"),
    ("optimizer=1", "is a section"),
    ("profile=paper", "--profile"),
    ("schedule.milestones=abc", "expected comma-separated integers, e.g. 30,40 or [30, 40]"),
    ("sampling.window=30", "expected 2 comma-separated integers"),
    ("optimizer.lr=fast", "optimizer.lr='fast': expected a number"),
])
def test_bad_overrides_are_errors(item, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")) as err:
        apply_overrides(TrainConfig(), [item])
    key = item.split("=")[0]
    assert str(err.value).count(f"{key}=") <= 1  # the key=value prefix once, not once per level


def test_model_options_checked_against_the_model():
    config = apply_overrides(TrainConfig(), ["model.name=gaitset", "model.options.hidden_dim=64",
                                             "model.options.channels=[8,16,32]"])
    assert config.model.options == {"hidden_dim": 64, "channels": [8, 16, 32]}
    with pytest.raises(ConfigError, match="valid: channels, hidden_dim"):
        apply_overrides(TrainConfig(), ["model.name=gaitset", "model.options.width=3"])


def test_config_round_trips_and_rejects_unknown_keys():
    config = apply_overrides(recipe("gaitpart", "paper"), ["optimizer.lr=2e-4"])
    data = json.loads(json.dumps(config.to_dict()))
    assert from_dict(data) == config
    data["sampling"]["q"] = 3
    with pytest.raises(ConfigError, match="sampling.q"):
        from_dict(data)


def test_paper_recipes_follow_the_published_configs():
    gaitset, gaitpart, gaitgl = (recipe(m, "paper") for m in ("gaitset", "gaitpart", "gaitgl"))
    # GaitSet: its authors' code whole (the GaitSet numbers the papers quote come from it)
    assert (gaitset.schedule.iterations, gaitset.sampling.p, gaitset.sampling.k) == (80000, 8, 16)
    assert (gaitset.optimizer.name, gaitset.optimizer.lr, gaitset.data.split) == \
        ("adam", 1e-4, "casia-b-lt-73")
    assert gaitset.sampling.mode == "unordered" and gaitset.loss.ce_weight == 0
    assert (gaitpart.schedule.iterations, gaitpart.sampling.mode) == (120000, "ordered_window")
    assert (gaitgl.schedule.iterations, gaitgl.schedule.milestones) == (80000, [70000])
    assert (gaitgl.sampling.p, gaitgl.sampling.k, gaitgl.sampling.mode) == (8, 8, "ordered")
    assert gaitgl.loss.ce_weight > 0 and gaitgl.optimizer.lr == 1e-4
    for m in ("gaitset", "gaitpart", "gaitgl"):  # cheaper profiles keep the design
        for profile in ("smoke", "cpu"):
            cheap = recipe(m, profile)
            assert cheap.sampling.mode == recipe(m, "paper").sampling.mode
            assert (cheap.loss.ce_weight > 0) == (recipe(m, "paper").loss.ce_weight > 0)
            assert cheap.schedule.iterations < 1000


def test_cpu_long_trains_the_cpu_shapes_longer_and_curves_only_main_runs():
    for model, iterations in (("cstl", 1000), ("gaitgl", 1000), ("gaitmm", 120), ("local3d", 200)):
        cpu, long = recipe(model, "cpu"), recipe(model, "cpu-long")
        assert long.schedule.iterations == iterations >= 2 * cpu.schedule.iterations
        assert long.schedule.milestones == [iterations * 3 // 4]
        # the shapes and the test stay the cpu profile's
        assert (long.model.options, long.data.resolution, long.sampling) == \
            (cpu.model.options, cpu.data.resolution, cpu.sampling)
        assert (long.eval.max_subjects, long.eval.max_frames) == (0, cpu.eval.max_frames)
        assert long.eval.curve == [iterations // 4, iterations // 2, iterations * 3 // 4]
        assert cpu.eval.curve == []
    assert recipe("cstl", "cpu-long", options={"aggregation": "max"}).eval.curve == []


@pytest.mark.parametrize("points", ["[0]", "[6]", "[2,9]"])
def test_curve_points_must_lie_inside_the_run(store, points):
    with pytest.raises(ConfigError, match=r"eval.curve=.* out of range; valid: iterations between"):
        tiny_config(store, extra=[f"eval.curve={points}"])


def test_recipe_names_are_checked():
    with pytest.raises(ValueError, match="valid: smoke, cpu, cpu-long, paper"):
        recipe("gaitgl", "huge")
    with pytest.raises(ValueError, match="available: .*gaitgl.*gaitpart.*gaitset") as err:
        recipe("gaitxx", "cpu")
    assert "gaitxx" in str(err.value)


def test_subjects_from_split_or_explicit_ranges(store):
    config = tiny_config(store)
    assert resolve_subjects(config, store) == (["001", "002", "003"], ["004", "005", "006"])
    apply_overrides(config, ["data.train_subjects=001-002,005", "eval.max_subjects=2"])
    assert resolve_subjects(config, store) == (["001", "002", "005"], ["003", "004"])


# -- losses composed by the trainer -------------------------------------------------------------

def test_loss_composer_weights_and_needs_logits():
    from gaitlib.losses import batch_all_triplet, part_cross_entropy
    from gaitlib.training.config import LossConfig
    from gaitlib.training.distributed import DistInfo

    torch.manual_seed(0)
    emb, logits = torch.randn(8, 4, 3), torch.randn(8, 5, 3)
    labels = torch.arange(4).repeat_interleave(2)
    loss, logs = LossComposer(LossConfig(triplet_weight=0.5, ce_weight=2.0), DistInfo())(
        {"embedding": emb, "logits": logits}, labels)
    expected = 0.5 * batch_all_triplet(emb, labels).loss + 2.0 * part_cross_entropy(logits, labels)
    assert torch.allclose(loss, expected) and set(logs) >= {"triplet", "ce", "acc", "loss"}
    with pytest.raises(ValueError, match="no 'logits'"):
        LossComposer(LossConfig(ce_weight=1.0), DistInfo())({"embedding": emb}, labels)


# -- checkpoints --------------------------------------------------------------------------------

def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    path = save_checkpoint(tmp_path / "c.pt", {"iteration": 0, "model": {}, "optimizer": {},
                                               "scheduler": {}, "rng": capture_rng(), "config": {}})
    first = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    restore_rng(load_checkpoint(path)["rng"])  # load_checkpoint uses weights_only=True
    again = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    assert torch.equal(first[0], again[0]) and (first[1] == again[1]).all()
    assert first[2:] == again[2:]
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temporary file


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_corrupt_checkpoint_names_the_file(tmp_path, content):
    path = tmp_path / "ckpt-00000002.pt"
    if content is None:  # a real checkpoint cut short, as by a full disk
        save_checkpoint(path, {"iteration": 2, "model": {"w": torch.zeros(1000)}, "optimizer": {},
                               "scheduler": {}, "rng": capture_rng(), "config": {}})
        content = path.read_bytes()[:-300]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


# -- training, resume, run directory ------------------------------------------------------------

def final_state(run_dir: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run_dir / "checkpoints"))


@pytest.mark.parametrize("workers", [0, 2])
def test_interrupted_and_resumed_run_is_bit_identical(store, tmp_path, workers):
    config = tiny_config(store, extra=[f"workers={workers}", "log_every=1"])
    whole = train(config, tmp_path / "whole", progress=False)
    part = train(config, tmp_path / "part", stop_after=4, progress=False)
    assert (whole.finished, part.finished, part.iteration) == (True, False, 4)
    assert not (tmp_path / "part" / "results.json").exists()
    resumed = train(config, tmp_path / "part", progress=False)
    assert resumed.finished and resumed.iteration == 6
    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "part")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"] == 6
    assert a["scheduler"]["last_epoch"] == 6
    earlier = load_checkpoint(tmp_path / "whole" / "checkpoints" / "ckpt-00000004.pt")["model"]
    assert not all(torch.equal(earlier[k], a["model"][k]) for k in earlier)  # training moved it
    logs = [[{k: v for k, v in json.loads(line).items() if k != "it_per_s"}
             for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
            for d in ("whole", "part")]
    assert logs[0] == logs[1] and len(logs[0]) == 6


def test_run_directory_records_and_protects_a_finished_run(store, tmp_path):
    config = tiny_config(store, extra=["schedule.iterations=2", "eval.enabled=true",
                                       "eval.bootstrap=20"])
    run = tmp_path / "run"
    result = train(config, run, progress=False)
    assert result.evaluation is not None
    for name in ("config.json", "environment.json", "metrics.jsonl", "eval.csv", "eval.json",
                 "results.json"):
        assert (run / name).is_file(), name
    env = json.loads((run / "environment.json").read_text())
    assert env["torch"] == torch.__version__ and "numpy" in env["packages"]
    assert set(env["git"]) == {"commit", "dirty"}
    assert from_dict(json.loads((run / "config.json").read_text())) == config
    summary = json.loads((run / "eval.json").read_text())
    assert set(summary["table"]) == {"NM", "BG", "CL"}
    assert set(summary["ci95"]["NM"]) == {"low", "high"}
    with pytest.raises(FileExistsError, match="finished run; pass --force"):
        train(config, run, progress=False)
    stamp = (run / "results.json").stat().st_mtime_ns
    train(config, run, force=True, progress=False)
    assert (run / "results.json").stat().st_mtime_ns != stamp


def test_learning_curve_points_leave_the_training_unchanged(store, tmp_path):
    """A run scoring the test set at iterations 2 and 4 ends where one scoring only its end
    does, and logs each point; a resume from iteration 4 keeps the points up to it only."""
    scored = ["eval.enabled=true", "eval.bootstrap=20"]
    # GaitGL: batch norms, whose running statistics a test pass in training mode would move
    plain = train(tiny_config(store, "gaitgl", scored), tmp_path / "plain", progress=False)
    curved_config = tiny_config(store, "gaitgl", [*scored, "eval.curve=[2,4]"])
    curved = train(curved_config, tmp_path / "curved", progress=False)
    a, b = final_state(tmp_path / "plain"), final_state(tmp_path / "curved")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert curved.evaluation.table.equals(plain.evaluation.table)
    points = [json.loads(line) for line in (tmp_path / "curved" / "curve.jsonl").read_text().splitlines()]
    assert [p["iteration"] for p in points] == [2, 4]
    assert set(points[0]["rank1"]) == {"NM", "BG", "CL"}
    # interrupted after iteration 5 (past the last point): the resume drops nothing it needs
    part = tmp_path / "part"
    train(curved_config, part, stop_after=5, progress=False)
    with (part / "curve.jsonl").open("a") as log:  # a point past the checkpoint at 4
        log.write(json.dumps({"iteration": 5, "rank1": {"NM": 0.0}}) + "\n")
    train(curved_config, part, progress=False)
    again = [json.loads(line) for line in (part / "curve.jsonl").read_text().splitlines()]
    assert [p["iteration"] for p in again] == [2, 4]
    assert [p["rank1"] for p in again] == [p["rank1"] for p in points]


def test_interrupted_run_with_another_config_is_refused(store, tmp_path):
    train(tiny_config(store), tmp_path / "run", stop_after=2, progress=False)
    with pytest.raises(FileExistsError, match="optimizer.lr"):
        train(tiny_config(store, extra=["optimizer.lr=0.5"]), tmp_path / "run", progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a gaitlib run directory"):
        train(tiny_config(store), tmp_path / "other", force=True, progress=False)


def test_resume_from_a_corrupt_checkpoint_names_it(store, tmp_path):
    train(tiny_config(store), tmp_path / "run", stop_after=4, progress=False)
    latest = latest_checkpoint(tmp_path / "run" / "checkpoints")
    latest.write_bytes(latest.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=latest.name):
        train(tiny_config(store), tmp_path / "run", progress=False)


# -- command line -------------------------------------------------------------------------------

def test_cli_train_smoke_then_eval(store, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "gaitgl", "--data", str(store.path), "--profile", "smoke",
                 "--out", str(out), "--no-progress", "model.options.channels=[2,4,4]"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "rank-1 accuracy" in printed and "95% CI" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["name"] == "gaitgl" and config["loss"]["ce_weight"] > 0
    assert main(["eval", str(out), "--bootstrap", "10", "--no-progress"]) == 0
    again = capsys.readouterr().out
    assert "iteration 4" in again and "NM" in again
    assert main(["train", "--model", "gaitgl", "--data", str(store.path), "--profile", "smoke",
                 "--out", str(out), "--no-progress"]) == 2  # finished, no --force
    assert "--force" in capsys.readouterr().err


def test_cli_bad_names_list_the_valid_ones(store, tmp_path, capsys):
    base = ["train", "--model", "gaitgl", "--data-root", str(tmp_path), "--data"]
    assert main([*base, "mnist"]) == 2
    assert "valid: synthetic, casia-b, oumvlp" in capsys.readouterr().err
    assert main([*base, "casia-b"]) == 2
    assert "gaitlib data import casia-b" in capsys.readouterr().err
    for argv in (["--model", "nope", "--data", "x"], ["--model", "gaitgl", "--data", "x",
                                                      "--profile", "huge"]):
        with pytest.raises(SystemExit):
            main(["train", *argv])
        err = capsys.readouterr().err
        assert "gaitgl" in err or "smoke" in err
    assert main(["train", "--model", "gaitgl", "--data", str(store.path), "optimizer.lrr=1"]) == 2
    assert "valid keys" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 2
