"""`gaitlib reproduce`: name and data checks, the notebook pool, publishing, and the run-cache lock.

The notebooks here are tiny stand-ins written into a temp dir; no model is trained.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import nbformat
import pytest

from gaitlib.cli import main
from gaitlib.papers.artifacts import ARTIFACT_IDS
from gaitlib.publish import notebooks as nbs
from gaitlib.publish import reproduce as rep
from gaitlib.publish.reproduce import NotebookRun, Worker, format_runs, reproduce, skip_reason
from gaitlib.runs.cache import RunSpec, ensure_run
from tests.conftest import make_store

PARAMS = 'profile = "cpu"\ndata = "synthetic"\ndevice = "auto"\nruns_dir = "runs"\n'


def write_notebook(path: Path, parameters: str, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "gaitlib", "display_name": "Python (gaitlib)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    first = nbformat.v4.new_code_cell(parameters)
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first, *(nbformat.v4.new_code_cell(c) for c in cells)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def injected(published: Path) -> str:
    nb = nbformat.read(published, as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    return cells[0].source


def casia_root(tmp_path: Path) -> Path:
    """A data root whose casia-b store is a tiny store of dataset 'casia-b'."""
    make_store(tmp_path / "data" / "casia-b", dataset="casia-b")
    return tmp_path / "data"


# --- names and data --------------------------------------------------------------------------------

def test_notebook_order():
    order = list(rep.NOTEBOOKS)
    assert order[0] == "synthetic-data" and order[-1] == "scorecard"
    assert order[1:-1] == list(ARTIFACT_IDS)
    # --only keeps the running order whatever order it is given in
    given = ["scorecard", "cstl-t3", "synthetic-data"]
    assert rep.select(given) == ["synthetic-data", "cstl-t3", "scorecard"]


def test_unknown_names_list_valid_ones(tmp_path, capsys):
    listed = r"unknown artifact id\(s\) cstl-t9; valid: synthetic-data, .*scorecard"
    with pytest.raises(ValueError, match=listed):
        reproduce(only=["cstl-t3", "cstl-t9"], data_root=tmp_path, build=False)
    with pytest.raises(ValueError, match="valid: smoke, cpu, cpu-long, paper"):
        reproduce(profile="huge", data_root=tmp_path, build=False)
    with pytest.raises(ValueError, match="valid: synthetic, casia-b, oumvlp"):
        reproduce(data="kitti", data_root=tmp_path, build=False)
    with pytest.raises(SystemExit):
        main(["reproduce", "--data", "kitti"])
    assert "invalid choice: 'kitti'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "--gpus", "0,x"])
    assert "GPU ids such as 0,1,2,3" in capsys.readouterr().err
    assert not (tmp_path / "synthetic").exists()  # nothing generated before the names are checked


def test_missing_or_wrong_real_store_fails_before_running(tmp_path, capsys):
    root = tmp_path / "site"
    assert main(["reproduce", "--data", "casia-b", "--data-root", str(tmp_path / "d"), "--no-build"]) == 2
    err = capsys.readouterr().err
    assert f"expects a CASIA-B store at {tmp_path / 'd' / 'casia-b'}" in err
    assert f"gaitlib data import casia-b SRC --out {tmp_path / 'd' / 'casia-b'}" in err
    make_store(tmp_path / "d" / "oumvlp", dataset="casia-b")  # the wrong dataset under the name
    with pytest.raises(ValueError, match="holds a 'casia-b' store.*gaitlib data import oumvlp SRC"):
        reproduce(data="oumvlp", data_root=tmp_path / "d", root=root, build=False)
    assert not root.exists()  # no notebook ran, nothing published


def test_skip_reasons():
    assert "needs OU-MVLP data" in skip_reason("gaitmm-t2", "casia-b")
    assert "needs CASIA-B data" in skip_reason("cstl-t3", "oumvlp")
    assert skip_reason("gaitmm-t2", "oumvlp") == skip_reason("cstl-t3", "casia-b") == ""
    for nb in rep.NOTEBOOKS:  # synthetic data has both layouts
        assert skip_reason(nb, "synthetic") == ""
    assert skip_reason("synthetic-data", "casia-b") == skip_reason("scorecard", "oumvlp") == ""


def test_status_table_has_a_total():
    runs = [NotebookRun("a", "ok", 2.0), NotebookRun("bb", "failed", 3.0, "boom"),
            NotebookRun("c", "missing", 0.0, "no notebook")]
    lines = format_runs(runs, wall=4.5).splitlines()
    assert lines[2].split()[:3] == ["bb", "failed", "3.0"] and lines[2].endswith("boom")
    assert lines[-1].split()[:2] == ["total", "4.5"]
    assert lines[-1].endswith("3 notebooks: 1 ok, 1 failed, 1 missing")
    assert format_runs(runs).splitlines()[-1].split()[1] == "5.0"  # without a wall time: the sum


def test_cli_exit_code_counts_failures_only(monkeypatch):
    results = [NotebookRun("a", "ok", 1.0), NotebookRun("b", "skipped", 0.0),
               NotebookRun("c", "missing", 0.0)]
    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        return list(results)

    monkeypatch.setattr(rep, "reproduce", fake)
    assert main(["reproduce", "--no-build", "--gpus", "0,2", "--runs-dir", "/r"]) == 0
    assert seen["gpus"] == ("0", "2") and seen["runs_dir"] == Path("/r") and seen["build"] is False
    assert seen["extra_seeds"] == []
    assert main(["reproduce", "--no-build", "--extra-seeds", "1,2"]) == 0
    assert seen["extra_seeds"] == [1, 2]
    results.append(NotebookRun("d", "failed", 1.0, "boom"))
    assert main(["reproduce", "--no-build"]) == 1


def test_gpu_workers_see_one_gpu_each():
    workers = rep.gpu_workers(["0", 3])
    assert [w.env for w in workers] == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "3"}]
    assert {w.device for w in workers} == {"cuda"}
    with pytest.raises(ValueError, match="non-negative integers"):
        rep.gpu_workers(["-1"])


# --- running notebooks -----------------------------------------------------------------------------

# Each of the two artifact notebooks marks that it started, then waits for the other's mark: they
# only both finish when the pool runs them at the same time.
WAIT_FOR_OTHER = """
import os, pathlib, time
marks = pathlib.Path(runs_dir)
marks.mkdir(parents=True, exist_ok=True)
(marks / "{me}").write_text(os.environ.get("GAITLIB_TEST_WORKER", ""))
deadline = time.time() + 90
while not (marks / "{other}").exists():
    assert time.time() < deadline, "the other notebook never started: not run in parallel"
    time.sleep(0.2)
"""


def test_parallel_pool_publishes_passing_notebooks_only(tmp_path):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "gaitmm-t1.ipynb", PARAMS, WAIT_FOR_OTHER.format(me="t1", other="t3"),
                   'print("device", device, "profile", profile)')
    write_notebook(nbs / "gaitmm-t3.ipynb", 'device = "auto"\nruns_dir = "runs"\n',
                   WAIT_FOR_OTHER.format(me="t3", other="t1"), 'raise RuntimeError("boom on " + device)')
    write_notebook(nbs / "gaitmm-t2.ipynb", PARAMS, "print('never runs on casia-b')")
    # The scorecard runs last: by then the passing artifact is published.
    write_notebook(nbs / "scorecard.ipynb", 'results_dir = ""\n',
                   "import pathlib\nbook = pathlib.Path(results_dir).parent\n"
                   "assert (book / 'gaitmm-t1.ipynb').is_file()")
    root = tmp_path / "site"
    (root / "book").mkdir(parents=True)
    (root / "book" / "gaitmm-t3.ipynb").write_text("old copy")  # a failing run must leave it alone
    workers = [Worker(f"w{i}", "cpu", {"GAITLIB_TEST_WORKER": f"w{i}"}) for i in range(2)]
    runs = reproduce(profile="smoke", data="casia-b", data_root=casia_root(tmp_path),
                     only=["gaitmm-t1", "gaitmm-t2", "gaitmm-t3", "cstl-t3", "scorecard"],
                     build=False, root=root, runs_dir=tmp_path / "runs", notebooks_dir=nbs,
                     workers=workers, train_first=False)
    status = {r.notebook: r for r in runs}
    assert [r.notebook for r in runs] == ["gaitmm-t1", "gaitmm-t2", "gaitmm-t3", "cstl-t3", "scorecard"]
    assert status["gaitmm-t1"].status == "ok", status["gaitmm-t1"]
    assert status["scorecard"].status == "ok", status["scorecard"]
    assert status["gaitmm-t3"].status == "failed"
    assert status["gaitmm-t3"].message.startswith("RuntimeError: boom on cpu")
    assert status["gaitmm-t2"].status == "skipped" and "OU-MVLP" in status["gaitmm-t2"].message
    assert status["cstl-t3"].status == "missing"
    # both workers were used, each in its own process environment
    assert {(tmp_path / "runs" / m).read_text() for m in ("t1", "t3")} == {"w0", "w1"}
    book = root / "book"
    assert (book / "gaitmm-t3.ipynb").read_text() == "old copy"
    assert not (book / "gaitmm-t2.ipynb").exists() and not (book / "cstl-t3.ipynb").exists()
    # only the declared parameters are injected, the device is the worker's
    source = injected(book / "gaitmm-t1.ipynb")
    assert 'device = "cpu"' in source and 'profile = "smoke"' in source and 'data = "casia-b"' in source
    assert "synthetic_store" not in source and "seed" not in source
    assert injected(book / "scorecard.ipynb").strip().splitlines()[-1].startswith("results_dir = ")
    outputs = nbformat.read(book / "gaitmm-t1.ipynb", as_version=4).cells[-1].outputs
    assert outputs[0]["text"].strip() == "device cpu profile smoke"


def test_sequential_run_in_process(tmp_path, capsys):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "cstl-t3.ipynb", PARAMS, "x = 1 / 0")
    write_notebook(nbs / "cstl-t5.ipynb", PARAMS + 'extra_seeds = ""\n', "print(device)")
    root = tmp_path / "site"
    runs = reproduce(profile="smoke", data="casia-b", data_root=casia_root(tmp_path),
                     only=["cstl-t5", "cstl-t3"], build=False, root=root, runs_dir=tmp_path / "runs",
                     notebooks_dir=nbs, jobs=1, extra_seeds=(3, 4))
    assert 'extra_seeds = "3,4"' in injected(root / "book" / "cstl-t5.ipynb")
    assert [(r.notebook, r.status) for r in runs] == [("cstl-t3", "failed"), ("cstl-t5", "ok")]
    assert runs[0].message.startswith("ZeroDivisionError")
    assert not (root / "book" / "cstl-t3.ipynb").exists()
    assert 'device = "auto"' in injected(root / "book" / "cstl-t5.ipynb")
    out = capsys.readouterr().out
    assert "2 notebooks: 1 ok, 1 failed" in out


# --- the run cache lock ----------------------------------------------------------------------------

def test_ensure_run_trains_a_shared_run_once(tmp_path, monkeypatch):
    import gaitlib.training.trainer as trainer

    make_store(tmp_path / "data" / "synthetic-smoke")
    calls = []

    def slow_train(config, run_dir, progress=True, **_):
        calls.append(run_dir)
        time.sleep(0.5)  # long enough for the other thread to reach the cache check meanwhile
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "eval.json").write_text(json.dumps({"mean": 1.0}))
        (run_dir / "results.json").write_text("{}")

    monkeypatch.setattr(trainer, "train", slow_train)
    spec = RunSpec.of("gaitset", profile="smoke")
    results = [None, None]

    def ask(i: int) -> None:
        results[i] = ensure_run(spec, tmp_path / "runs", tmp_path / "data", device="cpu", progress=False)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(r.reused for r in results) == [False, True]
    assert results[0].run_dir == results[1].run_dir == calls[0]
    assert results[0].evaluation == {"mean": 1.0}


def test_cpu_workers_share_the_cores(monkeypatch):
    from gaitlib.runs.pool import cpu_workers

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    two = cpu_workers()
    assert len(two) == 2 and all(w.env["OMP_NUM_THREADS"] == "1" and w.device == "cpu" for w in two)
    assert all(int(w.env["MALLOC_MMAP_THRESHOLD_"]) == 32 << 20 for w in two)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert len(cpu_workers()) == 8 and cpu_workers()[0].env["OMP_NUM_THREADS"] == "2"
    assert cpu_workers(4)[0].env["OMP_NUM_THREADS"] == "4"
    with pytest.raises(ValueError, match="jobs"):
        cpu_workers(0)


def test_a_cheaper_rebuild_keeps_a_more_faithful_page(tmp_path):
    import nbformat

    from gaitlib.publish.notebooks import more_faithful_published

    page = tmp_path / "cstl-t3.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": {"data": "casia-b", "profile": "paper"}}
    nbformat.write(nb, page)
    cheap = {"data": "synthetic", "profile": "cpu"}
    assert more_faithful_published(page, cheap, "cstl-t3") == "casia-b/paper"
    assert more_faithful_published(page, {"data": "casia-b", "profile": "paper"}, "cstl-t3") == ""
    assert more_faithful_published(page, cheap, "scorecard") == ""  # summaries always republish
    assert more_faithful_published(tmp_path / "absent.ipynb", cheap, "cstl-t3") == ""
    nb.metadata["papermill"]["parameters"] = {"data": "synthetic", "profile": "smoke"}
    nbformat.write(nb, page)
    assert more_faithful_published(page, cheap, "cstl-t3") == ""
    # a cpu-long page replaces a cpu page and is never replaced by one
    nb.metadata["papermill"]["parameters"] = {"data": "casia-b", "profile": "cpu"}
    nbformat.write(nb, page)
    assert more_faithful_published(page, {"data": "casia-b", "profile": "cpu-long"}, "cstl-t3") == ""
    nb.metadata["papermill"]["parameters"] = {"data": "casia-b", "profile": "cpu-long"}
    nbformat.write(nb, page)
    assert more_faithful_published(page, {"data": "casia-b", "profile": "cpu"}, "cstl-t3") == \
        "casia-b/cpu-long"


# --- GPUs that are not there -----------------------------------------------------------------------

def test_gpus_are_refused_without_cuda(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="--gpus 0: torch sees no CUDA GPU on this machine"):
        rep.check_gpus(["0"])
    assert main(["reproduce", "--gpus", "0", "--data-root", str(tmp_path), "--no-build"]) == 2
    assert "run without --gpus to use the CPU" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any data is generated


def test_gpu_ids_past_the_last_gpu_are_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    rep.check_gpus(["0", "1"])
    with pytest.raises(ValueError, match=r"no GPU 2, 5 here; torch sees 2 GPU\(s\), ids 0-1"):
        rep.check_gpus(["0", "2", "5"])


# --- publishing: stable output, only reproduce records -----------------------------------------------

VOLATILE_CELL = """
import pandas as pd
from gaitlib.publish.reproduce import REPO
from gaitlib.report.results import publishing
print("publishing", publishing())
print("store at", REPO / "data" / "x")
pd.DataFrame({"a": [1.0, 2.0]}).style.format("{:.1f}")
"""

RECORD_CELL = """
import json, pathlib
from gaitlib.report.results import write_record, publishing
if publishing():
    write_record(pathlib.Path(results_dir) / "t.json",
                 {"recorded": str(__import__("time").time()), "git_commit": "x", "table": [1, 2]})
"""


def test_strip_volatile_normalises_what_changes_between_runs(tmp_path):
    from gaitlib.publish.reproduce import REPO

    def executed(path: Path, uuid: str, seconds: float) -> None:
        nb = nbformat.v4.new_notebook()
        nb.metadata["language_info"] = {"name": "python", "version": f"3.11.{int(seconds)}"}
        nb.metadata["papermill"] = {"duration": seconds, "start_time": str(seconds), "parameters": {"a": 1}}
        nb.metadata["widgets"] = {"state": {uuid: {}}}
        params = nbformat.v4.new_code_cell('a = 0', metadata={"tags": ["parameters", "hide-cell"]})
        injected_cell = nbformat.v4.new_code_cell('a = 1', metadata={"tags": ["injected-parameters"]})
        injected_cell.id = uuid + "ff"
        table = nbformat.v4.new_code_cell("t")
        table.metadata["papermill"] = {"duration": seconds, "status": "completed"}
        table.metadata["execution"] = {"iopub.execute_input": str(seconds)}
        html = (f'<style>#T_{uuid}_row0_col0 {{color: red}}</style><table id="T_{uuid}">'
                f'<td id="T_{uuid}_row0_col0">1.0</td></table>')
        table.outputs = [
            nbformat.v4.new_output("display_data", {"text/html": html,
                                                    "text/plain": f"<Styler at 0x7f{uuid}>"}),
            nbformat.v4.new_output("display_data", {"application/vnd.jupyter.widget-view+json":
                                                    {"model_id": uuid}}),
            nbformat.v4.new_output("stream", name="stdout", text=f"wrote {REPO}/runs/x\n"),
        ]
        params.id, table.id = "params", "table"  # fixed in the source notebook
        nb.cells = [params, injected_cell, table]
        nbformat.write(nb, path)

    a, b = tmp_path / "a.ipynb", tmp_path / "b.ipynb"
    executed(a, "1b531", 12.5)
    executed(b, "9f0e2", 30.25)
    for path in (a, b):
        nbs.strip_volatile(path)
    assert a.read_text() == b.read_text()
    nb = nbformat.read(a, as_version=4)
    assert all("remove-cell" in c.metadata["tags"] for c in nb.cells[:2])  # no parameters on pages
    assert nb.cells[1].id == "injected-parameters"
    outputs = nb.cells[2].outputs
    assert len(outputs) == 2  # the widget (a live progress bar) is gone
    assert 'id="T_00000"' in outputs[0]["data"]["text/html"]
    assert outputs[0]["data"]["text/plain"] == "<Styler at 0x0>"
    assert outputs[1]["text"] == "wrote runs/x\n"
    assert nb.metadata.papermill == {"parameters": {"a": 1}}
    nbs.strip_volatile(a)  # idempotent
    assert a.read_text() == b.read_text()


def test_rebuild_leaves_published_files_unchanged(tmp_path):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "cstl-t5.ipynb", PARAMS + 'results_dir = "r"\n', VOLATILE_CELL, RECORD_CELL)
    root = tmp_path / "site"
    data_root = casia_root(tmp_path)

    def build() -> dict[str, bytes]:
        runs = reproduce(profile="smoke", data="casia-b", data_root=data_root, only=["cstl-t5"],
                         build=False, root=root, runs_dir=tmp_path / "runs", notebooks_dir=nbs, jobs=1)
        assert runs[0].status == "ok", runs[0]
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    first = build()
    assert set(first) == {"book/cstl-t5.ipynb", "book/results/t.json"}
    published = nbformat.read(root / "book" / "cstl-t5.ipynb", as_version=4)
    text = "".join(o.get("text", "") for o in published.cells[-2].outputs)
    assert "publishing True" in text and f"store at {rep.REPO}" not in text
    assert build() == first  # byte for byte: timings, Styler ids, paths, the record's date


def test_only_reproduce_records(tmp_path, monkeypatch):
    from gaitlib.report.results import publishing, write_record

    monkeypatch.delenv("GAITLIB_PUBLISH", raising=False)
    assert not publishing()
    nb = tmp_path / "n.ipynb"
    write_notebook(nb, 'results_dir = "r"\n', RECORD_CELL)
    # The notebook run by hand (any kernel outside reproduce) computes but records nothing.
    import papermill

    papermill.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), kernel_name=nbs.KERNEL,
                               cwd=str(tmp_path), progress_bar=False)
    assert not (tmp_path / "r").exists()
    path = tmp_path / "rec.json"
    assert write_record(path, {"recorded": "monday", "git_commit": "a", "table": [1]})
    before = path.read_bytes()
    assert not write_record(path, {"recorded": "tuesday", "git_commit": "b", "table": [1]})
    assert path.read_bytes() == before  # same result: the file keeps its date and commit
    assert write_record(path, {"recorded": "tuesday", "git_commit": "b+dirty", "table": [2]})
    assert json.loads(path.read_text())["recorded"] == "tuesday"
    # the same result from a clean commit replaces one made from uncommitted changes, not back
    assert write_record(path, {"recorded": "wednesday", "git_commit": "c", "table": [2]})
    assert not write_record(path, {"recorded": "thursday", "git_commit": "d+dirty", "table": [2]})
    assert json.loads(path.read_text())["git_commit"] == "c"


def test_the_scorecard_is_the_same_page_whatever_the_data():
    # it summarises every dataset's records, so rebuilding either edition must not rewrite it
    from gaitlib.publish.notebooks import NOTEBOOKS, REPO, declared_parameters

    assert "data" not in declared_parameters(REPO / "notebooks" / NOTEBOOKS["scorecard"])
