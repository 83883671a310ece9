"""Reliability: bad input gives a clear error, a recorded warning or a recorded skip, never a
wrong number (issue 16). One test per case of book/reliability.md, grouped as there:
non-finite values, store consistency, degenerate configs and checkpoints, concurrent runs,
evaluation gaps, importers. Tiny stores and models keep the whole file to a few seconds."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from gaitlib.cli import main
from gaitlib.data.importers import import_dataset
from gaitlib.data.store import Store, StoreError
from gaitlib.evaluation import evaluate
from gaitlib.evaluation.protocols import NonFiniteFeaturesError
from gaitlib.training import (
    CheckpointError,
    ConfigError,
    NonFiniteLossError,
    RunLockedError,
    UnfinishedRunError,
    apply_overrides,
    evaluate_run,
    recipe,
    train,
)
from gaitlib.training.checkpoint import checkpoint_path, latest_checkpoint
from gaitlib.training.config import validate
from gaitlib.training.rundir import read_evaluation, run_lock, write_evaluation
from tests.conftest import REPO, make_store

CONDITIONS = ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "bg-02", "cl-01",
              "cl-02")
TINY = ["model.options.channels=[2,4,4]", "model.options.hidden_dim=8", "model.options.bins=[2,1]",
        "schedule.iterations=4", "schedule.milestones=[3]", "checkpoint_every=2",
        "eval.max_subjects=0", "eval.bootstrap=0"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """6 subjects (3 train, 3 test under the synthetic split), all conditions, 2 views."""
    return make_store(tmp_path_factory.mktemp("store") / "s",
                      subjects=[f"{i:03d}" for i in range(1, 7)],
                      conditions=CONDITIONS, views=("000", "090"), lengths=(6, 10))


def tiny_config(store, *extra: str, model: str = "gaitset"):
    config = recipe(model, "smoke", "synthetic")
    config.data.store = str(store.path)
    opts = TINY if model == "gaitset" else ["model.options.channels=[2,4,4]", *TINY[3:]]
    return apply_overrides(config, [*opts, *extra])


def cli_train(store, out: Path, *extra: str) -> int:
    return main(["train", "--model", "gaitset", "--data", str(store.path), "--profile", "smoke",
                 "--out", str(out), "--no-progress", *TINY, *extra])


# -- 1. non-finite features and losses ---------------------------------------------------------

def grid(subjects=("A", "B", "C"), views=("000", "090", "180"), conditions=("nm-01", "nm-05"),
         seed=0):
    """Features that identify their subject (a subject offset plus small noise) at every view."""
    rng = np.random.default_rng(seed)
    rows = [(s, c, v) for s in subjects for c in conditions for v in views]
    feats = np.array([[10.0 * subjects.index(s), 0.0] for s, _, _ in rows], np.float32)
    feats += rng.normal(0, 0.1, feats.shape).astype(np.float32)
    s, c, v = (list(x) for x in zip(*rows, strict=True))
    return feats, s, c, v


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_feature_is_refused_naming_the_sequences(bad):
    feats, s, c, v = grid()
    assert evaluate(feats, s, c, v, "casia-b", bootstrap=0).table.loc["NM", "Mean"] == 100
    feats[1, 0] = bad  # one gallery feature: NaN distances used to win the argmin
    feats[7, 1] = bad
    with pytest.raises(NonFiniteFeaturesError, match=r"2 of 18 sequences .*A/nm-01/090, B/nm-01/090"):
        evaluate(feats, s, c, v, "casia-b", bootstrap=0)


def test_diverged_run_stops_with_a_clear_error_and_publishes_nothing(store, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"iteration \d+ \(.*triplet.*lower optimizer.lr"):
        train(tiny_config(store, "optimizer.lr=1e30"), out, progress=False)
    assert not (out / "results.json").exists() and not (out / "eval.json").exists()
    # the command line: one line on stderr, exit 2, no traceback
    assert cli_train(store, tmp_path / "cli", "optimizer.lr=1e30") == 2
    err = capsys.readouterr().err
    assert err.startswith("gaitlib: error:") and "diverged" in err and "Traceback" not in err
    # `eval --write` never writes into an unfinished run; plain `eval` warns
    assert main(["eval", str(out), "--write", "--no-progress"]) == 2
    assert "unfinished run" in capsys.readouterr().err
    assert not (out / "eval.json").exists()
    with pytest.raises(UnfinishedRunError):
        evaluate_run(out, write=True, progress=False)


def test_evaluating_an_unfinished_run_warns(store, tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_config(store), out, stop_after=2, progress=False)
    assert main(["eval", str(out), "--no-progress", "--bootstrap", "0"]) == 0
    err = capsys.readouterr().err
    assert "gaitlib: warning:" in err and "iteration 2 of 4" in err
    assert not (out / "eval.json").exists()


# -- 2. the store -------------------------------------------------------------------------------

def edited(store: Store, tmp_path: Path, *, index=None, meta=None) -> Path:
    """A copy of ``store`` with its index (a DataFrame -> DataFrame function) or meta edited;
    the index checksum is dropped so the structural checks, not the checksum, must catch it."""
    copy = tmp_path / "copy"
    shutil.copytree(store.path, copy)
    m = json.loads((copy / "meta.json").read_text())
    if index is not None:
        df = index(pd.read_csv(copy / "index.csv", dtype=str))
        df.to_csv(copy / "index.csv", index=False)
        m.pop("checksums")
    if meta is not None:
        meta(m)
    (copy / "meta.json").write_text(json.dumps(m))
    return copy


def _set(df, row, column, value):
    df.loc[row, column] = value
    return df


@pytest.mark.parametrize("index, message", [
    (lambda df: _set(df, 3, "start", str(int(df.loc[3, "start"]) + 1)), "line 5: start"),  # shifted
    (lambda df: _set(df, 4, "start", df.loc[3, "start"]), "line 6: start"),  # overlapping
    (lambda df: _set(df, len(df) - 1, "length", "100000"), "cover"),  # past the end
    (lambda df: _set(df, 2, "length", "0"), "line 4: length 0"),
    (lambda df: _set(df, 5, "start", "abc"), "line 7: start 'abc'"),
    (lambda df: df.drop(columns="length"), "missing column"),
    (lambda df: _set(df, 1, "view", df.loc[0, "view"]), "share their"),  # duplicate row
    (lambda df: _set(df, 1, "subject", ""), "line 3: empty subject"),
])
def test_inconsistent_index_is_a_store_error_naming_file_and_row(store, tmp_path, index, message):
    with pytest.raises(StoreError, match=message) as err:
        Store(edited(store, tmp_path, index=index))
    assert "index.csv" in str(err.value)


def test_swapped_labels_fail_the_index_checksum(store, tmp_path):
    # labels of two sequences swapped: structurally sound, caught by the recorded checksum
    copy = tmp_path / "copy"
    shutil.copytree(store.path, copy)
    df = pd.read_csv(copy / "index.csv", dtype=str)
    df.loc[0, "subject"], df.loc[20, "subject"] = df.loc[20, "subject"], df.loc[0, "subject"]
    df.to_csv(copy / "index.csv", index=False)
    with pytest.raises(StoreError, match="checksum"):
        Store(copy)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(frame_shape=[32, 128]), r"frame_shape \[32, 128\]"),  # same byte count
    (lambda m: m.update(frame_shape="64x64"), "frame_shape"),
    (lambda m: m.pop("n_frames"), "missing n_frames"),
])
def test_inconsistent_meta_is_a_store_error_naming_the_file(store, tmp_path, edit, message):
    with pytest.raises(StoreError, match=message) as err:
        Store(edited(store, tmp_path, meta=edit))
    assert "meta.json" in str(err.value)


def test_unreadable_meta_names_the_file(store, tmp_path, capsys):
    copy = edited(store, tmp_path)
    (copy / "meta.json").write_text('{"format": "gaitlib-store", ')
    with pytest.raises(StoreError, match=f"{copy / 'meta.json'}: unreadable"):
        Store(copy)
    assert main(["train", "--model", "gaitset", "--data", str(copy)]) == 2
    assert "meta.json: unreadable" in capsys.readouterr().err


def test_data_check_verifies_the_frames_checksum(store, tmp_path, capsys):
    assert main(["data", "check", str(store.path)]) == 0
    assert "checksums of index.csv, frames.u8 verified" in capsys.readouterr().out
    copy = edited(store, tmp_path)
    with open(copy / "frames.u8", "r+b") as f:  # one flipped byte: same size, opens fine
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    Store(copy)
    assert main(["data", "check", str(copy)]) == 2
    assert "frames.u8 does not match its checksum" in capsys.readouterr().err


# -- 3. degenerate configs and foreign checkpoints ---------------------------------------------

def test_triplet_loss_with_one_sequence_per_subject_is_refused(store):
    with pytest.raises(ConfigError, match="sampling.k >= 2"):
        validate(tiny_config(store, "sampling.k=1"))
    with pytest.raises(ConfigError, match="sampling.p >= 2"):
        validate(tiny_config(store, "sampling.p=1"))
    with pytest.raises(ConfigError, match="no loss"):
        validate(tiny_config(store, "loss.triplet_weight=0"))
    with pytest.raises(ConfigError, match=">= 0"):
        validate(tiny_config(store, "loss.triplet_weight=-1"))
    # k=1 is fine for a cross-entropy-only run (GaitGL's logits)
    validate(tiny_config(store, "sampling.k=1", "loss.triplet_weight=0", "loss.ce_weight=1",
                         model="gaitgl"))


def test_checkpoint_of_another_model_names_it(store, tmp_path):
    other, run = tmp_path / "other", tmp_path / "run"
    train(tiny_config(store, "model.options.hidden_dim=16"), other, stop_after=2, progress=False)
    train(tiny_config(store), run, stop_after=2, progress=False)
    shutil.copy(latest_checkpoint(other / "checkpoints"), checkpoint_path(run / "checkpoints", 3))
    with pytest.raises(CheckpointError, match=r"'gaitset' model with options hidden_dim=16 "
                                              r"\(run: 8\)"):
        evaluate_run(run, progress=False)
    with pytest.raises(CheckpointError, match="another run"):
        train(tiny_config(store), run, progress=False)  # resuming from it


# -- 4. concurrent runs -------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from gaitlib.training.rundir import run_lock
    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def hold_lock(run_dir: Path, seconds: float) -> subprocess.Popen:
    """A second process holding the run directory's lock for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_on_a_run_directory_exits_or_waits(store, tmp_path, capsys):
    out = tmp_path / "run"
    holder = hold_lock(out, 60)
    try:
        assert cli_train(store, out) == 2
        err = capsys.readouterr().err
        assert "in use by another gaitlib process (pid" in err and "--wait" in err
        assert not out.exists()  # nothing was written
        with pytest.raises(RunLockedError):
            train(tiny_config(store), out, progress=False)
    finally:
        holder.kill()
        holder.wait()
    holder = hold_lock(out, 1.5)  # --wait queues behind the holder
    began = time.perf_counter()
    try:
        assert cli_train(store, out, "--wait") == 0
    finally:
        holder.wait()
    assert time.perf_counter() - began > 1.0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["iteration"] for x in lines] == sorted({json.loads(x)["iteration"]
                                                                  for x in lines})
    capsys.readouterr()
    holder = hold_lock(out, 60)
    try:
        assert main(["eval", str(out), "--write", "--no-progress"]) == 2
        assert "in use by another gaitlib process" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert main(["eval", str(out), "--write", "--no-progress", "--bootstrap", "0"]) == 0


def test_lock_is_reentrant_within_a_thread(tmp_path):
    with run_lock(tmp_path / "r", wait=False), run_lock(tmp_path / "r", wait=False):
        pass  # the run cache locks a run, then trains it (which locks it again)


# -- 5. evaluation gaps -------------------------------------------------------------------------

def opengait_reference(feats, s, c, v, probe_conds, views):
    """Independent reference of OpenGait's CASIA-B numbers on complete data: per probe view the
    mean over the other gallery views of the % of probes whose nearest gallery sequence (at that
    view, Euclidean) has the same subject; then the mean over probe views."""
    s, c, v = np.array(s), np.array(c), np.array(v)
    gal = np.isin(c, ["nm-01", "nm-02", "nm-03", "nm-04"])
    per_view = []
    for pv in views:
        accs = []
        for gv in views:
            if gv == pv:
                continue
            p = np.flatnonzero(np.isin(c, probe_conds) & (v == pv))
            g = np.flatnonzero(gal & (v == gv))
            d = np.linalg.norm(feats[p][:, None] - feats[g][None], axis=2)
            accs.append(100.0 * np.mean(s[g][d.argmin(1)] == s[p]))
        per_view.append(np.mean(accs))
    return per_view, np.mean(per_view)


def test_complete_data_scores_as_opengait():
    rng = np.random.default_rng(3)
    views = ("000", "090", "180")
    rows = [(f"{i:03d}", c, w) for i in range(8) for c in CONDITIONS for w in views]
    s, c, v = (list(x) for x in zip(*rows, strict=True))
    feats = rng.normal(0, 1, (len(rows), 4)).astype(np.float32)
    feats += 0.8 * np.array([int(x) for x in s], np.float32)[:, None]  # partly identifiable
    res = evaluate(feats, s, c, v, "casia-b", bootstrap=0)
    assert res.undefined == []
    for row, conds in (("NM", ["nm-05", "nm-06"]), ("CL", ["cl-01", "cl-02"])):
        per_view, mean = opengait_reference(feats, s, c, v, conds, views)
        np.testing.assert_allclose(res.table.loc[row, list(views)], per_view, atol=1e-9)
        assert res.table.loc[row, "Mean"] == pytest.approx(mean)
        assert 0 < mean < 100


def test_probe_view_without_gallery_view_is_undefined_not_averaged():
    feats, s, c, v = grid()
    keep = [i for i in range(len(s)) if not (c[i] == "nm-01" and v[i] != "000")]  # gallery: 000
    with pytest.warns(UserWarning, match="evaluation gaps"):
        res = evaluate(feats[keep], *([x[i] for i in keep] for x in (s, c, v)), "casia-b",
                       bootstrap=0)
    # probe view 000 has no other gallery view left, 090 and 180 lack one of their two: no
    # per-view number is a mean over the other views, so none is given
    assert res.table.loc["NM"].isna().all()  # the Mean used to read 100, over 2 of 3 views
    assert res.view_accuracy["NM"].loc["090", "000"] == 100  # the defined cells stay
    assert "NM probe view 000: gallery views 090, 180 undefined (no gallery sequence)" in \
        res.undefined
    assert "NM probe view 090: gallery views 180 undefined (no gallery sequence)" in res.undefined
    assert "undefined" in res.to_string()


def test_missing_condition_leaves_the_mean_over_conditions_undefined(tmp_path):
    feats, s, c, v = grid(conditions=("nm-01", "nm-05", "bg-01"))
    with pytest.warns(UserWarning, match="CL: no probe sequence"):
        res = evaluate(feats, s, c, v, "casia-b", bootstrap=0)
    assert res.table.loc["NM", "Mean"] == 100 and res.table.loc["BG", "Mean"] == 100
    assert np.isnan(res.table.loc["CL", "Mean"])
    assert np.isnan(res.mean_over_rows())  # not 100 over NM and BG alone
    write_evaluation(tmp_path, res)
    assert json.loads((tmp_path / "eval.json").read_text())["undefined"] == res.undefined
    assert read_evaluation(tmp_path).undefined == res.undefined


# -- 6. importers -------------------------------------------------------------------------------

def raw_frame(i: int) -> np.ndarray:
    img = np.zeros((120, 160), np.uint8)
    img[20:110, 60 : 66 + 2 * i] = 255
    return img


def test_png_copies_are_imported_once(tmp_path):
    folder = tmp_path / "src" / "001" / "nm-01" / "000"
    folder.mkdir(parents=True)
    for i in range(1, 9):
        cv2.imwrite(str(folder / f"001-nm-01-000-{i:03d}.png"), raw_frame(i))
    shutil.copy(folder / "001-nm-01-000-003.png", folder / "001-nm-01-000-003 (copy).png")
    shutil.copy(folder / "001-nm-01-000-005.png", folder / "001-nm-01-000-005 (2).png")
    summary = import_dataset("casia-b", tmp_path / "src", tmp_path / "out", workers=1,
                             progress=False)
    assert summary.notes["duplicate_frames"] == 1 and "left out 2" in summary.report()
    assert len(Store(tmp_path / "out").frames_of(0)) == 8


def write_pkl(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(arr))


def test_empty_and_binary_pkl_sequences(tmp_path, caplog):
    rng = np.random.default_rng(0)
    good = rng.integers(0, 256, (6, 64, 64), dtype=np.uint8)
    mask = (rng.random((6, 64, 64)) > 0.5).astype(np.uint8)  # 0/1
    write_pkl(tmp_path / "src" / "001" / "nm-01" / "000" / "000.pkl", good)
    write_pkl(tmp_path / "src" / "001" / "nm-01" / "090" / "090.pkl", mask)
    write_pkl(tmp_path / "src" / "001" / "nm-02" / "000" / "000.pkl",
              np.zeros((6, 64, 64), np.uint8))
    summary = import_dataset("casia-b", tmp_path / "src", tmp_path / "out", workers=1,
                             progress=False)
    assert summary.skipped == {"no_foreground": 1} and summary.notes == {"rescaled_01": 1}
    assert "all zero" in caplog.text and "rescaled to 0/255" in caplog.text
    store = Store(tmp_path / "out")
    assert len(store) == 2 and store.meta["notes"] == {"rescaled_01": 1}
    i = int(store.select(views=["090"])[0])
    np.testing.assert_array_equal(store.frames_of(i), mask * 255)


def test_stale_temporary_directories_are_removed_on_the_next_import(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [tmp_path / f".out.tmp-{dead.pid}-abcd1234", tmp_path / ".out.tmp-k2j3l_x9",
             tmp_path / f".out.old-{dead.pid}"]
    live = tmp_path / f".out.tmp-{os.getpid()}-abcd1234"  # a write in progress: kept
    other = tmp_path / f".other.tmp-{dead.pid}-abcd1234"  # another store's: kept
    for d in [*stale, live, other]:
        d.mkdir()
        (d / "frames.u8").write_bytes(b"\0" * 10)
    write_pkl(tmp_path / "src" / "001" / "nm-01" / "000" / "000.pkl",
              np.full((6, 64, 64), 255, np.uint8))
    summary = import_dataset("casia-b", tmp_path / "src", tmp_path / "out", workers=1,
                             progress=False)
    assert not any(d.exists() for d in stale) and live.exists() and other.exists()
    assert sorted(summary.cleaned) == sorted(str(d) for d in stale)
    assert "removed 3 temporary directories" in summary.report()
