"""Progress a person can read: the pool's board (one line per active run and an overall ETA) and
the trainer's lines, in a log file without carriage returns; checkpoints by time; resuming on
fewer visible GPUs."""

from __future__ import annotations

import io
import json

import torch

from gaitlib.runs.budget import Placed, RunNeed
from gaitlib.runs.cache import RunSpec
from gaitlib.runs.progress import Active, Board
from gaitlib.training.progress import Progress, duration_text, progress_text


def test_progress_text_and_durations():
    line = progress_text("gaitgl", 2000, 80000, 4.0, 0.41234)
    assert line == "gaitgl: 2000/80000 (2.5%), 4.00 it/s, loss 0.4123, ETA 5h25m"
    assert duration_text(42) == "42s" and duration_text(600) == "10m" and duration_text(-1) == "?"


def test_the_board_shows_each_run_and_the_time_left(tmp_path):
    run_dir = tmp_path / "gaitgl-abc"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(
        json.dumps({"iteration": 100, "it_per_s": 2.0, "loss": 0.5}) + "\n"
        + json.dumps({"iteration": 7300, "it_per_s": 2.0, "loss": 0.25}) + "\n")
    need = RunNeed(RunSpec.of("cstl"), (), "fp32", 8, 5.0, 0.1, 0.01, 2.0, "measured", "dry run",
                   2.0)
    queued = Placed(need, 1)
    stream = io.StringIO()
    board = Board(3, 2, [queued], interval=3600, stream=stream)
    board.started("a", Active("gaitgl seed 0", run_dir, 14500, 1, 3.0, 0.0, "gpu3"))
    lines = board.lines()
    assert lines[0].strip() == "gaitgl seed 0: 7300/14500 (50.3%), 2.00 it/s, loss 0.2500, ETA 1h00m"
    # the queued 2-hour run starts on the free GPU at once: 2 h left overall
    assert lines[-1].strip() == "overall: 0/3 runs done, 1 running, 1 queued; ETA 2h00m"
    board.draw()
    board.finished("a", "gaitgl seed 0: trained (2h)")
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text  # a log file gets plain lines
    assert "started gaitgl seed 0 on gpu3" in text and "[1/3] gaitgl seed 0: trained" in text


def test_the_trainer_prints_lines_into_a_log_file():
    stream = io.StringIO()
    bar = Progress("train gaitgl", 100, 0, enabled=True, every=3600, stream=stream)
    for iteration in range(1, 101):
        bar.update()
        if iteration % 10 == 0:
            bar.log(iteration, 5.0, 1.0 / iteration, 1e-4)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()  # the first log step and the last
    assert lines[0].startswith("train gaitgl: 10/100 (10.0%), 5.00 it/s")
    assert lines[1].startswith("train gaitgl: 100/100 (100.0%)")


def test_checkpoints_by_time(tiny_store, tmp_path):
    """checkpoint_every far away, checkpoint_minutes tiny: every log step saves."""
    from gaitlib.training import apply_overrides, recipe
    from gaitlib.training.checkpoint import list_checkpoints
    from gaitlib.training.trainer import train

    config = recipe("gaitset", "smoke")
    config.data.store = str(tiny_store.path)
    apply_overrides(config, ["data.split=", "sampling.p=2", "schedule.iterations=4",
                             "checkpoint_every=1000", "checkpoint_minutes=1e-9", "log_every=2",
                             "keep_checkpoints=5", "eval.enabled=false", "device=cpu",
                             "data.train_subjects=001,002"])
    train(config, tmp_path / "run", progress=False)
    assert [i for i, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [2, 4]


def test_a_checkpoint_from_more_gpus_restores_onto_fewer(monkeypatch):
    """The CUDA states of GPUs that are not visible now are left out, not an IndexError."""
    from gaitlib.training import checkpoint as ckpt

    state = ckpt.capture_rng()
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8) + i for i in range(4)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, d: restored.append((int(s[0]), d)))
    ckpt.restore_rng(state)
    assert restored == [(0, 0), (1, 1)]
