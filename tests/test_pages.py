"""What a reader of a page meets: parameters checked at once, the device runs really used, no
internal ids in headers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from gaitlib.publish.reproduce import NOTEBOOKS, REPO
from gaitlib.report import study
from gaitlib.report.parameters import ParameterError, check_parameters
from gaitlib.runs.cache import Run, RunSpec
from gaitlib.training.config import TrainConfig
from gaitlib.training.rundir import trained_devices, write_environment
from tests.conftest import make_store


@pytest.mark.parametrize("kwargs, message", [
    (dict(profile="huge"), "profile='huge' is not valid; valid: smoke, cpu, cpu-long, paper"),
    (dict(data="kitti"), "data='kitti' is not valid; valid: synthetic, casia-b, oumvlp"),
    (dict(device="gpu"), "device='gpu' is not valid; valid: auto, cpu, cuda"),
    (dict(seed="1"), "seed='1' is not valid; expected an integer"),
    (dict(runs_dir=3), "runs_dir=3 is not valid; expected a path"),
])
def test_bad_parameters_are_named_with_the_valid_values(kwargs, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        check_parameters(**kwargs)


def test_real_data_needs_its_imported_store(tmp_path):
    with pytest.raises(ParameterError, match="gaitlib data import casia-b SRC --out"):
        check_parameters(profile="cpu", data="casia-b", data_root=tmp_path)
    make_store(tmp_path / "casia-b", dataset="casia-b")
    check_parameters(profile="cpu", data="casia-b", data_root=tmp_path, device="auto", seed=0,
                     runs_dir="runs", results_dir=tmp_path)


def _cells(nb_id: str) -> list:
    return nbformat.read(REPO / "notebooks" / NOTEBOOKS[nb_id], as_version=4).cells


@pytest.mark.parametrize("nb_id", list(NOTEBOOKS))
def test_notebooks_check_their_parameters_first(nb_id):
    cells = _cells(nb_id)
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    first = next(c for c in cells[tagged[0] + 1:] if c.cell_type == "code")
    code = [line for line in first.source.splitlines() if line and not line.startswith("#")]
    assert code[0] == "from gaitlib.report.parameters import check_parameters"
    # every declared parameter the checker knows is checked (the scorecard has no ``data``)
    declared = {line.split(":")[0] for line in cells[tagged[0]].source.splitlines()
                if line and not line.startswith("#")}
    call = " ".join(code[1:3])
    assert code[1].startswith("check_parameters(profile=profile, ")
    for name in ("data", "data_root", "device", "seed", "runs_dir", "results_dir"):
        assert (f"{name}={name}" in call) == (name in declared), name


@pytest.mark.parametrize("nb_id", list(NOTEBOOKS))
def test_page_headers_carry_no_internal_ids(nb_id):
    assert not re.search(r"seed \d{3}", _cells(nb_id)[0].source)


def _run(run_dir: Path) -> Run:
    return Run(RunSpec.of("gaitset"), TrainConfig(), run_dir, True, 0.0)


def test_runs_report_the_device_they_trained_on(tmp_path):
    cpu, moved, old = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (cpu, moved, old):
        d.mkdir()
    write_environment(cpu, 1, None, "cpu")
    assert json.loads((cpu / "environment.json").read_text())["device"] == "cpu"
    # a run resumed elsewhere: both devices, in order
    (moved / "environment.json").write_text(json.dumps({"device": "cpu", "gpus": []}))
    (moved / "environment-resumed-00000040.json").write_text(json.dumps(
        {"device": "cuda:0", "device_name": "NVIDIA H200", "world_size": 2, "gpus": ["x"]}))
    assert trained_devices(moved) == ["cpu", "cuda:0 (NVIDIA H200), 2 processes"]
    # written before the device was recorded: no GPU visible means the CPU
    (old / "environment.json").write_text(json.dumps({"gpus": []}))
    assert trained_devices(old) == ["cpu"]
    (old / "environment.json").write_text(json.dumps({"gpus": ["NVIDIA H200"]}))
    assert trained_devices(old) == ["unknown (not recorded)"]
    one = study.trained_on({"A": _run(cpu)})
    assert one == "This page's numbers come from its run, trained on `cpu`."
    mixed = study.trained_on({"A": _run(cpu), "B": _run(moved), "C": _run(cpu)})
    assert mixed == ("This page's numbers come from its 3 runs, trained on `cpu` (3 of 3), "
                     "`cuda:0 (NVIDIA H200), 2 processes` (1 of 3).")


def test_published_outputs_do_not_make_the_commit_dirty(tmp_path):
    import subprocess

    from gaitlib.provenance import git_commit

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    (tmp_path / "book" / "results").mkdir(parents=True)
    for name in ("book/page.ipynb", "book/results/r.json", "book/intro.md", "code.py"):
        (tmp_path / name).write_text("0")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "x")
    clean = git_commit(tmp_path)
    assert len(clean) == 40
    (tmp_path / "book" / "page.ipynb").write_text("1")  # what a build publishes
    (tmp_path / "book" / "results" / "r.json").write_text("1")
    assert git_commit(tmp_path) == clean
    (tmp_path / "book" / "intro.md").write_text("1")  # a source of the book
    assert git_commit(tmp_path) == clean + "+dirty"
