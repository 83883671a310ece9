"""Cases of ``gaitlib train``: every kind of config value out of its domain, subject lists,
--out that is a file, full or read-only, and a run directory damaged between two sessions."""

from __future__ import annotations

import json
from pathlib import Path

from common import Work, case, judge, on_tmpfs, res

# -- training: overrides and faults ------------------------------------------------------------

def _refused(w: Work, *overrides: str, pattern: str):
    ran = w.train(*overrides)
    outcome = judge(ran, "error", pattern)
    if outcome == "error" and (w.dir / "run" / "checkpoints").is_dir() and any(
            (w.dir / "run" / "checkpoints").iterdir()):
        outcome = "unhelpful"  # refused only after training
    return res(outcome, ran)


BAD_VALUES = [
    ("loss.margin=-5", r"loss\.margin"),
    ("loss.margin=0", r"loss\.margin"),
    ("loss.margin=nan", r"loss\.margin"),
    ("loss.label_smoothing=1", r"loss\.label_smoothing"),
    ("loss.label_smoothing=-0.1", r"loss\.label_smoothing"),
    ("loss.ce_scale=0", r"loss\.ce_scale"),
    ("loss.triplet_weight=inf", r"loss\.triplet_weight"),
    ("optimizer.lr=0", r"optimizer\.lr"),
    ("optimizer.lr=-1", r"optimizer\.lr"),
    ("optimizer.lr=nan", r"optimizer\.lr"),
    ("optimizer.weight_decay=-1", r"optimizer\.weight_decay"),
    ("optimizer.momentum=-0.5", r"optimizer\.momentum"),
    ("schedule.gamma=0", r"schedule\.gamma"),
    ("schedule.milestones=[0]", r"schedule\.milestones"),
    ("schedule.iterations=0", r"schedule\.iterations"),
    ("sampling.frames=0", r"sampling\.frames"),
    ("sampling.mode=ordered_window sampling.window=[40,30]", r"sampling\.window"),
    ("sampling.min_frames=-1", r"sampling\.min_frames"),
    ("sampling.mode=bogus", r"sampling\.mode"),
    ("data.resolution=-1", r"data\.resolution"),
    ("data.resolution=7", r"data\.resolution"),
    ("data.resolution=128", r"data\.resolution"),
    ("data.split=bogus", r"data\.split"),
    ("data.split=oumvlp", r"data\.split"),
    ("eval.bootstrap=-1", r"eval\.bootstrap"),
    ("eval.sequences_per_batch=0", r"eval\.sequences_per_batch"),
    ("eval.max_frames=-1", r"eval\.max_frames"),
    ("eval.max_subjects=-1", r"eval\.max_subjects"),
    ("eval.metric=l1", r"eval\.metric"),
    ("eval.precision=fp8", r"eval\.precision"),
    ("keep_checkpoints=0", r"keep_checkpoints"),
    ("workers=-1", r"workers"),
    ("seed=-1", r"seed"),
    ("seed=100000000000000000000000", r"seed"),
    ("device=gpu", r"device"),
    ("device=cuda", r"device=cuda|GPU"),
    ("sync_bn=maybe", r"sync_bn"),
    ("compile=fast", r"compile"),
    ("model.options.bins=abc", r"model\.options\.bins"),
    ("model.options.hidden_dim=-1", r"hidden_dim"),
    ("model.options.channels=[a,b,c]", r"model\.options\.channels"),
    ("model.options.colour=1", r"colour"),
    ("optimizer.name=rmsprop", r"optimizer\.name"),
    ("lossmargin=1", r"lossmargin"),
    ("loss.margin", r"KEY=VALUE"),
]
for _value, _pattern in BAD_VALUES:
    case("training", _value)(lambda w, v=_value, p=_pattern: _refused(w, *v.split(), pattern=p))


@case("training", "schedule.milestones=[100] past iterations=4 (a recipe cut short)")
def _(w):
    ran = w.train("schedule.milestones=[100]")
    return res(judge(ran, "accepted", ok=lambda: (w.dir / "run" / "results.json").is_file()), ran)


SUBJECTS = [
    ("train and test subjects overlap (001-008 both)",
     ("data.train_subjects=001-008", "data.test_subjects=001-008"), "overlap"),
    ("a test subject in both lists (001-004 / 004-008)",
     ("data.train_subjects=001-004", "data.test_subjects=004-008"), "004"),
    ("an unknown subject in a range (001-003,999)", ("data.train_subjects=001-003,999",), "999"),
    ("data.test_subjects=999 only", ("data.train_subjects=001-004", "data.test_subjects=999"),
     "999"),
    ("a reversed range (008-005)", ("data.train_subjects=008-005",), "008-005"),
    ("a range of words (abc-def)", ("data.train_subjects=abc-def",), "abc-def"),
]
for _name, _overrides, _pattern in SUBJECTS:
    case("training", _name)(lambda w, o=_overrides, p=_pattern: _refused(w, *o, pattern=p))


def _tested(w: Work) -> list[str]:
    return json.loads((w.dir / "run" / "eval.json").read_text())["subject_counts"]["subjects"]


@case("training", "data.test_subjects without data.train_subjects")
def _(w):
    ran = w.train("data.test_subjects=007-008", "eval.max_subjects=0")
    return res(judge(ran, "accepted", ok=lambda: _tested(w) == ["007", "008"]), ran)


@case("training", "explicit disjoint subjects (accepted)")
def _(w):
    ran = w.train("data.train_subjects=001-005", "data.test_subjects=006-008",
                  "eval.max_subjects=0")
    return res(judge(ran, "accepted", ok=lambda: _tested(w) == ["006", "007", "008"]), ran)


@case("training", "--out a regular file")
def _(w):
    (w.dir / "run").write_text("keep")
    ran = w.train()
    return res(judge(ran, "error", "run", lost=lambda: (w.dir / "run").read_text() != "keep"),
               ran)


@case("training", "--out a non-empty folder that is not a run --force")
def _(w):
    (w.dir / "run").mkdir()
    (w.dir / "run" / "thesis.tex").write_text("x")
    ran = w.train("--force")
    return res(judge(ran, "error", "not a gaitlib run",
                     lost=lambda: not (w.dir / "run" / "thesis.tex").exists()), ran)


@case("training", "--out on a full disk (tmpfs)")
def _(w):
    return on_tmpfs(w, "size=48k", lambda m: w.train(out="mnt/run"), r"mnt/run.*No space left")


@case("training", "--out on a read-only file system (tmpfs)")
def _(w):
    return on_tmpfs(w, "ro,size=64k", lambda m: w.train(out="mnt/run"), r"mnt/run.*read-only")


def _interrupted(w: Work) -> Path:
    ran = w.train("schedule.iterations=8", "schedule.milestones=[6]", "log_every=1",
                  "checkpoint_every=4", python=None)
    assert ran.rc == 0, ran.err
    run = w.dir / "run"
    (run / "results.json").unlink()  # as if stopped after the last log line
    for p in (run / "checkpoints").iterdir():
        if p.name != "ckpt-00000004.pt":
            p.unlink()
    return run


@case("training", "a torn last line in metrics.jsonl, then resume")
def _(w):
    run = _interrupted(w)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 9, "lr": 0.0')
    ran = w.train("schedule.iterations=8", "schedule.milestones=[6]", "log_every=1",
                  "checkpoint_every=4")
    ok = lambda: [json.loads(x)["iteration"] for x in  # noqa: E731
                  (run / "metrics.jsonl").read_text().splitlines()] == list(range(1, 9))
    return res(judge(ran, "warning", "torn", ok=ok), ran)


@case("training", "a torn line in the middle of metrics.jsonl, then resume")
def _(w):
    run = _interrupted(w)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[1] = lines[1][:20]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    ran = w.train("schedule.iterations=8", "schedule.milestones=[6]", "log_every=1",
                  "checkpoint_every=4")
    return res(judge(ran, "error", r"metrics.jsonl.*line 2"), ran)


@case("training", "config.json of an interrupted run not JSON, then resume")
def _(w):
    run = _interrupted(w)
    (run / "config.json").write_text("{")
    ran = w.train("schedule.iterations=8", "schedule.milestones=[6]", "log_every=1",
                  "checkpoint_every=4")
    return res(judge(ran, "error", "config.json"), ran)


@case("training", "a truncated last checkpoint, then resume")
def _(w):
    run = _interrupted(w)
    ck = run / "checkpoints" / "ckpt-00000004.pt"
    ck.write_bytes(ck.read_bytes()[:100])
    ran = w.train("schedule.iterations=8", "schedule.milestones=[6]", "log_every=1",
                  "checkpoint_every=4")
    return res(judge(ran, "error", "ckpt-00000004.pt"), ran)


@case("training", "--data a store name with no store")
def _(w):
    r = w.run("train", "--model", "gaitset", "--data", "casia-b", "--data-root", w.dir)
    return res(judge(r, "error", "no casia-b store"), r)


