"""Reliability, second part: nothing lost, nothing hangs, nothing scored wrong, no traceback for
bad input (book/reliability.md, "Second round"). Grouped by surface: importers, the store,
configs, subjects, evaluation, run directories and OS errors, the command line's options and
checkpoint import. bench/bad_input.py drives the command line through the full list of cases."""

from __future__ import annotations

import errno
import json
import math
import os
import pathlib
import pickle
import shutil
import threading

import numpy as np
import pytest
import torch

from gaitlib.cli import build_parser, main
from gaitlib.data.importers import import_dataset
from gaitlib.data.store import Store, StoreError, sha256_file
from gaitlib.evaluation import evaluate
from gaitlib.evaluation.distance import magnitude_scale, nearest_per_group
from gaitlib.training import ConfigError, TrainConfig, apply_overrides, recipe, train
from gaitlib.training.rundir import RunDirError, read_metrics
from gaitlib.training.trainer import resolve_subjects
from tests.conftest import make_store
from tests.test_reliability import CONDITIONS, TINY, opengait_reference, raw_frame, tiny_config


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """8 subjects (4 train, 4 test under the synthetic split), all conditions, 2 views."""
    return make_store(tmp_path_factory.mktemp("store") / "s",
                      subjects=[f"{i:03d}" for i in range(1, 9)],
                      conditions=CONDITIONS, views=("000", "090"), lengths=(6, 8))


def png_tree(root, sequences=(("001", "nm-01", "000"), ("002", "nm-01", "000"))):
    import cv2

    for s, c, v in sequences:
        folder = root / s / c / v
        folder.mkdir(parents=True)
        for i in range(1, 9):
            cv2.imwrite(str(folder / f"{s}-{c}-{v}-{i:03d}.png"), raw_frame(i))
    return root


def count_files(path) -> int:
    return sum(len(f) for _, _, f in os.walk(path))


# -- 1. importers: --out never destroys what is not a store ------------------------------------

@pytest.mark.parametrize("where", ["the source", "inside the source", "a parent of the source"])
def test_out_overlapping_the_source_is_refused_and_nothing_is_lost(tmp_path, where):
    src = png_tree(tmp_path / "data" / "png")
    out = {"the source": src, "inside the source": src / "001" / "store",
           "a parent of the source": tmp_path / "data"}[where]
    with pytest.raises(ValueError, match="source tree"):
        import_dataset("casia-b", src, out, workers=1, force=True, progress=False)
    assert count_files(src) == 16 and not (src / "001" / "store").exists()


def test_force_replaces_only_a_store(tmp_path, capsys):
    src = png_tree(tmp_path / "png")
    folder, text = tmp_path / "thesis", tmp_path / "notes.txt"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep")
    text.write_text("keep")
    for out in (folder, text):
        assert main(["data", "import", "casia-b", str(src), "--out", str(out), "--force",
                     "--workers", "1"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"gaitlib: error: {out} is ") and err.count("\n") == 1
    assert (folder / "thesis.tex").read_text() == "keep" and text.read_text() == "keep"
    make_store(tmp_path / "old", subjects=("009",))
    import_dataset("casia-b", src, tmp_path / "old", workers=1, force=True, progress=False)
    assert Store(tmp_path / "old").dataset == "casia-b"  # a store is replaced


@pytest.mark.parametrize("kind", ["png", "pkl"])
def test_a_fifo_among_the_frames_is_skipped_not_opened(tmp_path, kind):
    src = png_tree(tmp_path / "src")
    folder = src / "001" / "nm-01" / "000"
    if kind == "pkl":  # a pkl tree whose first sequence's only pkl is a FIFO
        shutil.rmtree(src)
        (src / "002" / "nm-01" / "000").mkdir(parents=True)
        (src / "002" / "nm-01" / "000" / "000.pkl").write_bytes(
            pickle.dumps(np.full((6, 64, 64), 255, np.uint8)))
        folder.mkdir(parents=True)
    fifo = folder / ("000.pkl" if kind == "pkl" else "001-nm-01-000-009.png")
    os.mkfifo(fifo)
    # were the FIFO opened, this unblocks it after 20 s (then the skip reason would be wrong)
    unblock = threading.Timer(20, lambda: open(fifo, "wb").close())
    unblock.start()
    try:
        summary = import_dataset("casia-b", src, tmp_path / "out", workers=1, progress=False)
    finally:
        unblock.cancel()
    assert summary.skipped == {"not_regular": 1} and summary.imported == 1
    assert "FIFO" in summary.report() and str(fifo) in summary.report()


class FullFile:
    """A file on a full disk: ``write`` fails as it does there, naming no file."""

    def __init__(self, path, mode="r"):
        self.name = str(path)

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_a_full_disk_during_an_import_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    import gaitlib.data.store as store_module

    monkeypatch.setattr(store_module, "open", FullFile, raising=False)
    src = png_tree(tmp_path / "png")
    assert main(["data", "import", "casia-b", str(src), "--out", str(tmp_path / "out"),
                 "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "frames.u8: No space left on device" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["png"]  # no store, no temporary


# -- 2. the store's metadata ---------------------------------------------------------------------

def edited_meta(store: Store, tmp_path, **changes):
    copy = tmp_path / "copy"
    shutil.copytree(store.path, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta.update(changes)
    (copy / "meta.json").write_text(json.dumps(meta))
    return copy


@pytest.mark.parametrize("changes, message", [
    ({"checksums": "abc"}, "checksums must map"),
    ({"checksums": ["index.csv"]}, "checksums must map"),
    ({"checksums": {"frames.u8": 12}}, "not a SHA-256"),
    ({"dataset": "casia-c"}, "dataset 'casia-c' is not one gaitlib knows"),
    ({"n_frames": True}, "n_frames True is not a count"),
    ({"n_subjects": 99}, "n_subjects 99, but index.csv holds 8 subjects"),
])
def test_malformed_metadata_is_a_store_error(store, tmp_path, changes, message):
    with pytest.raises(StoreError, match=message):
        Store(edited_meta(store, tmp_path, **changes))


@pytest.mark.parametrize("name", ["../outside.txt", "ABSOLUTE"])
def test_a_checksum_entry_outside_the_store_is_refused_not_read(store, tmp_path, name):
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of the store")
    name = str(outside) if name == "ABSOLUTE" else name
    checksums = {**store.meta["checksums"], name: sha256_file(outside)}  # its true digest
    with pytest.raises(StoreError, match="checksums cover index.csv and frames.u8 only"):
        Store(edited_meta(store, tmp_path, checksums=checksums))


def test_an_overflowing_start_names_the_line(store, tmp_path):
    copy = edited_meta(store, tmp_path, checksums={})
    lines = (copy / "index.csv").read_text().splitlines()
    lines[1] = lines[1].replace(",0,", "," + "9" * 30 + ",", 1)
    (copy / "index.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(StoreError, match="line 2: start '9999.* is not a non-negative integer"):
        Store(copy)


def test_data_check_says_what_went_unverified_and_counts_the_index(store, tmp_path, capsys):
    copy = edited_meta(store, tmp_path, checksums={"frames.u8": store.meta["checksums"]["frames.u8"]})
    meta = json.loads((copy / "meta.json").read_text())
    del meta["n_subjects"]
    (copy / "meta.json").write_text(json.dumps(meta))
    assert main(["data", "check", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "8 subjects" in out and "frames.u8 verified; index.csv unverified" in out


# -- 3. configs: every value checked when the config is built ------------------------------------

@pytest.mark.parametrize("item, message", [
    ("loss.margin=-5", r"loss.margin=-5.0 is out of range; valid: a finite number > 0"),
    ("loss.margin=0", "loss.margin"),
    ("loss.label_smoothing=1", r"loss.label_smoothing=1.0 .* in \[0, 1\)"),
    ("loss.ce_scale=0", "loss.ce_scale"),
    ("optimizer.lr=nan", "optimizer.lr"),
    ("optimizer.weight_decay=-1", "optimizer.weight_decay"),
    ("schedule.gamma=0", "schedule.gamma"),
    ("schedule.milestones=[0]", r"schedule.milestones=\[0\] .* iterations >= 1"),
    ("sampling.mode=ordered_window sampling.window=[40,30]",
     r"sampling.window=\[40, 30\] is out of range; valid: .*sampling.frames \(8\)"),
    ("eval.bootstrap=-1", "eval.bootstrap=-1 is out of range; valid: an integer >= 0"),
    ("eval.sequences_per_batch=0", "eval.sequences_per_batch"),
    ("eval.max_subjects=-1", "eval.max_subjects"),
    ("keep_checkpoints=0", "keep_checkpoints"),
    ("seed=-1", "seed"),
    ("data.split=casia", "data.split='casia'; valid: '', casia-b-lt, casia-b-lt-73"),
    ("model.options.bins=abc", "model.options.bins='abc': expected comma-separated integers"),
    ("model.options.hidden_dim=-1", r"model.options \(.*hidden_dim=-1.*\) do not build"),
    ("data.train_subjects=008-005", "runs backwards"),
])
def test_a_bad_value_is_refused_when_the_config_is_built(item, message):
    config = recipe("gaitset", "smoke", "synthetic")
    config.data.store = "/nonexistent/store"  # nothing is read: the check needs no data
    with pytest.raises(ConfigError, match=message):
        apply_overrides(config, [*TINY, "sampling.frames=8", *item.split()])


def test_a_bad_value_in_a_saved_config_is_refused_naming_the_file(store, tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_config(store), out, stop_after=2, progress=False)
    saved = json.loads((out / "config.json").read_text())
    saved["eval"]["bootstrap"] = -5
    (out / "config.json").write_text(json.dumps(saved))
    assert main(["eval", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "config.json: eval.bootstrap=-5 is out of range" in err


def test_every_recipe_passes_its_checks():
    for model in ("cstl", "gaitgl", "gaitmm", "gaitpart", "gaitset", "local3d"):
        for profile in ("smoke", "cpu"):
            apply_overrides(recipe(model, profile, "synthetic"), [])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_line(store, tmp_path, capsys):
    assert main(["train", "--model", "gaitset", "--data", str(store.path), "--profile", "smoke",
                 "--out", str(tmp_path / "run"), "device=cuda"]) == 2
    assert capsys.readouterr().err == ("gaitlib: error: device=cuda, but torch sees no GPU; "
                                       "valid here: device=cpu or device=auto\n")


def test_a_resolution_the_store_cannot_give_is_refused_before_training(store, tmp_path):
    with pytest.raises(ConfigError, match="data.resolution=7 .* 64, 32, 16 for this store"):
        train(tiny_config(store, "data.resolution=7"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # nothing written: fix the value and run again


# -- 4. training and test subjects -------------------------------------------------------------

def test_overlapping_subjects_are_refused(store):
    with pytest.raises(ConfigError, match=r"8 subject\(s\) are both training and test"):
        tiny_config(store, "data.train_subjects=001-008", "data.test_subjects=001-008")
    config = tiny_config(store, "data.test_subjects=003-005")  # the split trains on 001-004
    with pytest.raises(ConfigError, match=r"2 subject\(s\) .* \(003, 004\)"):
        resolve_subjects(config, store)


def test_unknown_subjects_are_reported_not_dropped(store):
    config = tiny_config(store, "data.train_subjects=001-003,999")
    with pytest.raises(ConfigError, match=r"data.train_subjects: 1 subject\(s\) not in the store "
                                          r".*: 999 \(it holds 8: 001 .. 008\)"):
        resolve_subjects(config, store)


def test_a_test_list_alone_is_used_with_the_split_training_subjects(store):
    config = tiny_config(store, "data.test_subjects=007-008")
    assert resolve_subjects(config, store) == (["001", "002", "003", "004"], ["007", "008"])


# -- 5. evaluation: no overflow, no underflow ----------------------------------------------------

@pytest.mark.parametrize("metric", ["euc", "cos"])
@pytest.mark.parametrize("scale", [1e18, 1e19, 1e30, 1e-20, 1e-30])
def test_extreme_feature_magnitudes_score_as_ordinary_ones(metric, scale):
    rng = np.random.default_rng(1)
    views = ("000", "090", "180")
    rows = [(f"{i:03d}", c, w) for i in range(6) for c in CONDITIONS for w in views]
    s, c, v = (list(x) for x in zip(*rows, strict=True))
    feats = rng.normal(0, 1, (len(rows), 8)) + np.array([int(x) for x in s])[:, None]
    ordinary = evaluate(feats.astype(np.float32), s, c, v, "casia-b", metric=metric, bootstrap=0)
    scaled = evaluate((feats * scale).astype(np.float32), s, c, v, "casia-b", metric=metric,
                      bootstrap=0)
    np.testing.assert_array_equal(scaled.table.to_numpy(), ordinary.table.to_numpy())
    if metric == "euc":
        _, mean = opengait_reference(feats, s, c, v, ["nm-05", "nm-06"], views)
        assert ordinary.table.loc["NM", "Mean"] == pytest.approx(mean)


def test_ordinary_features_are_not_rescaled_and_float64_overflow_is_refused():
    x = torch.randn(20, 16, 4) * 100
    assert magnitude_scale(x) == 1.0  # the normal path is untouched: equal to OpenGait's
    for extreme in (x * 1e20, x * 1e-20):
        scale, top = magnitude_scale(extreme), float(extreme.abs().max())
        assert math.frexp(scale)[0] == 0.5 and 0.5 <= top * scale < 1  # a power of two
    big = np.full((4, 2), 1e40)
    with pytest.raises(ValueError, match="beyond float32's range"):
        nearest_per_group(big, big, np.zeros(4, np.int64), 1)


# -- 6. run directories and OS errors ----------------------------------------------------------

def interrupted_run(store, tmp_path):
    out = tmp_path / "run"
    config = tiny_config(store, "log_every=1")
    train(config, out, stop_after=2, progress=False)
    return config, out


def test_a_torn_last_metrics_line_is_dropped_and_the_run_resumes(store, tmp_path):
    config, out = interrupted_run(store, tmp_path)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 3, "lr": 0.0')  # a crash mid-append
    with pytest.warns(UserWarning, match=r"metrics.jsonl, line 3: dropped a torn last line"):
        assert train(config, out, progress=False).finished
    assert [r["iteration"] for r in read_metrics(out)] == [1, 2, 3, 4]


def test_a_torn_line_before_the_last_is_an_error_naming_file_and_line(store, tmp_path):
    config, out = interrupted_run(store, tmp_path)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text(lines[0][:15] + "\n" + lines[1] + "\n")
    with pytest.raises(RunDirError, match=r"metrics.jsonl, line 1: not a JSON record"):
        train(config, out, progress=False)


def cli_train(store, out, *extra):
    return main(["train", "--model", "gaitset", "--data", str(store.path), "--profile", "smoke",
                 "--out", str(out), "--no-progress", *TINY, "eval.max_subjects=0", *extra])


def test_out_a_regular_file_is_one_line_and_kept(store, tmp_path, capsys):
    (tmp_path / "run").write_text("keep")
    assert cli_train(store, tmp_path / "run") == 2
    assert capsys.readouterr().err == (f"gaitlib: error: {tmp_path / 'run'} is a file, not a "
                                       "run directory; choose another --out\n")
    assert (tmp_path / "run").read_text() == "keep"


def test_read_only_or_full_out_is_one_line_naming_the_path(store, tmp_path, monkeypatch, capsys):
    import gaitlib.training.checkpoint as checkpoint

    mkdir = pathlib.Path.mkdir

    def read_only(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return mkdir(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(pathlib.Path, "mkdir", read_only)
        assert cli_train(store, tmp_path / "ro") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gaitlib: error: {tmp_path / 'ro'}") and err.count("\n") == 1
    assert err.endswith(": Read-only file system\n")

    monkeypatch.setattr(checkpoint, "open", FullFile, raising=False)
    assert cli_train(store, tmp_path / "full") == 2
    err = capsys.readouterr().err
    assert err == (f"gaitlib: error: {tmp_path / 'full' / 'checkpoints' / 'ckpt-00000002.pt'}: "
                   "No space left on device\n")


def test_an_os_error_without_a_path_keeps_its_traceback(monkeypatch):
    import gaitlib.cli as cli

    def bug(args):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(cli, "_cmd_check", bug)
    with pytest.raises(OSError, match="I/O error"):
        main(["data", "check", "x"])


# -- 7. the command line's options and checkpoint import ---------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["reproduce", "--only", ","], "argument --only: expected comma-separated ids, got ','"),
    (["reproduce", "--extra-seeds", "a,b"], "argument --extra-seeds: expected an integer >= 0"),
    (["reproduce", "--jobs", "0"], "argument --jobs: expected an integer >= 1, got 0"),
    (["reproduce", "--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
    (["eval", "run", "--bootstrap", "-1"], "argument --bootstrap: expected an integer >= 0"),
    (["data", "import", "casia-b", "src", "--workers", "0"], "argument --workers"),
])
def test_command_line_options_name_what_is_wrong(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_checkpoint_import_refuses_code_without_advising_to_run_it(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    torch.save({"model": Evil()}, tmp_path / "evil.pt")
    os.mkfifo(tmp_path / "fifo.pt")
    base = ["checkpoint", "import", "--from", "opengait", "--model", "gaitset", "--out"]
    assert main([*base, str(tmp_path / "out"), str(tmp_path / "evil.pt")]) == 2
    err = capsys.readouterr().err
    assert "unpickling them could run code" in err and "posix.system" in err
    assert "weights_only" not in err and "can still be loaded" not in err
    assert not (tmp_path / "ran").exists() and not (tmp_path / "out").exists()
    assert main([*base, str(tmp_path / "out"), str(tmp_path / "fifo.pt")]) == 2  # not opened
    assert "fifo.pt is not a regular file" in capsys.readouterr().err
    (tmp_path / "file").write_text("keep")
    assert main([*base, str(tmp_path / "file"), str(tmp_path / "evil.pt")]) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err


def test_default_config_is_valid():
    apply_overrides(TrainConfig(), [])  # the dataclass defaults pass their own checks
