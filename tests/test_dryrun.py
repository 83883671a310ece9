"""`gaitlib reproduce --dry-run`: every distinct run of the study at its profile's scale, and
publishing only from a clean checkout."""

import csv
import subprocess
from types import SimpleNamespace

import pytest

from gaitlib.cli import main
from gaitlib.papers.artifacts import ARTIFACTS
from gaitlib.provenance import DirtyTreeError, git_commit, require_clean
from gaitlib.runs.dryrun import COLUMNS, OUMVLP_CLASSES, paper_classes, study_runs
from gaitlib.training import recipe


def test_study_runs_cover_every_row_once():
    runs = study_runs(profile="paper", data="casia-b")
    keys = [(s.model, s.options, s.shape) for s, _ in runs]
    assert len(keys) == len(set(keys)) == 37  # the 17 artifacts' rows, shared runs once
    covered = {(a, s.model, s.options, s.shape) for s, arts in runs for a in arts}
    for aid, art in ARTIFACTS.items():
        for row in art.rows:
            opts = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                for k, v in row.options.items()))
            assert (aid, row.model, opts, row.shape) in covered, (aid, row.label)
    full_gaitmm = dict(((s.model, s.options, s.shape), arts) for s, arts in runs)[("gaitmm", (), "casia-b")]
    assert full_gaitmm == ["gaitmm-t1", "gaitmm-t3", "gaitmm-f2"]
    oumvlp = [s for s, _ in runs if s.shape == "oumvlp"]
    assert sorted(s.model for s in oumvlp) == ["cstl", "gaitmm", "local3d"]
    assert all(s.data == "oumvlp" for s in oumvlp)  # an OU-MVLP-shaped store, whatever --data is
    assert len(study_runs(["cstl-t1", "gaitmm-t1"], "paper", "casia-b")) == 7


def test_classifier_has_the_papers_class_count():
    def store(dataset):
        return SimpleNamespace(dataset=dataset)

    assert paper_classes(recipe("cstl", "paper", "oumvlp"), store("synthetic-oumvlp")) == OUMVLP_CLASSES
    assert paper_classes(recipe("gaitset", "paper"), store("casia-b")) == 73  # authors' code: 005 out
    assert paper_classes(recipe("gaitgl", "paper"), store("casia-b")) == 74
    assert paper_classes(recipe("gaitgl", "paper"), store("synthetic")) is None


def test_smoke_dry_run_through_the_cli(tmp_path, capsys):
    out = tmp_path / "dry.csv"
    code = main(["reproduce", "--profile", "smoke", "--data", "synthetic", "--dry-run",
                 "--only", "cstl-t1,cstl-t2", "--data-root", str(tmp_path / "data"),
                 "--runs-dir", str(tmp_path / "runs"), "--steps", "2", "--dry-run-csv", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    rows = list(csv.DictReader(out.open()))
    assert tuple(rows[0]) == COLUMNS
    assert [(r["model"], r["dataset"], r["options"]) for r in rows] == [
        ("cstl", "casia-b", ""), ("cstl", "casia-b", "resolution=128"), ("gaitset", "casia-b", ""),
        ("gaitpart", "casia-b", ""), ("cstl", "oumvlp", "variant=oumvlp")]
    for r in rows:
        assert r["status"] == "ok", r
        step, iters = float(r["step_seconds"]), int(r["iterations"])
        assert step > 0 and float(r["peak_memory_mb"]) > 0
        assert float(r["projected_hours"]) == pytest.approx(iters * step / 3600, rel=1e-3, abs=1e-4)
        assert int(r["extract_sequences"]) > 0 and int(r["extract_frames"]) >= int(r["extract_sequences"])
    assert rows[-1]["store"] == "synthetic, OU-MVLP-shaped"
    assert int(rows[1]["resolution"]) == 2 * int(rows[0]["resolution"])  # 128x88 row at half scale
    assert "5 runs (5 ok)" in printed


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_publishing_refuses_a_dirty_source_tree(tmp_path):
    repo = tmp_path / "repo"
    (repo / "book").mkdir(parents=True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "book" / "page.ipynb").write_text("{}\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    head = _git(repo, "rev-parse", "HEAD").strip()
    assert require_clean(repo) == head == git_commit(repo)
    (repo / "book" / "page.ipynb").write_text("{ }\n")  # published output: not a source change
    assert require_clean(repo) == head
    (repo / "code.py").write_text("x = 2\n")
    with pytest.raises(DirtyTreeError, match=r"uncommitted changes \(code.py\).*--allow-dirty"):
        require_clean(repo)
    assert require_clean(repo, allow_dirty=True) == head + "+dirty" == git_commit(repo)


def test_cost_page_totals_and_the_gpu_measurement_hook(tmp_path):
    import json

    from gaitlib.publish.cost import GPU_EFFECTIVE_TFLOPS, render, write_page
    from gaitlib.runs.dryrun import DryRunRow, write_csv

    rows = [DryRunRow("gaitmm", "casia-b", "", "gaitmm-t1 gaitmm-t3", 1000, 64, 30, 64, 74,
                      step_tflop=2.0, step_seconds=36.0, peak_memory_mb=900.0, device="cpu (1 threads)",
                      projected_hours=10.0, git_commit="abc"),
            DryRunRow("gaitmm", "casia-b", "pme=False", "gaitmm-t3", 1000, 64, 30, 64, 74,
                      step_tflop=1.0, step_seconds=72.0, peak_memory_mb=1900.0, device="cpu (1 threads)",
                      projected_hours=20.0, git_commit="abc")]
    csv_path = write_csv(rows, tmp_path / "dry.csv")
    page = write_page(csv_path, tmp_path / "cost.md", tmp_path / "none.json").read_text()
    # per artifact as the scorecard counts it (gaitlib.analysis.hours): runs that ran of those needed
    assert "| gaitmm-t1 | 1 of 5 | 10.0 |" in page and "| gaitmm-t3 | 2 of 4 | 30.0 |" in page
    assert "| **all (shared runs once)** | 2 of 37 | **30.0**" in page
    gpu_first = 1000 * 2.0 / GPU_EFFECTIVE_TFLOPS / 3600
    assert "**projected**" in page and f"{gpu_first:.1f} (projected)" in page
    assert "longest run is gaitmm on casia-b (pme=False)" in page
    assert "largest is gaitmm on casia-b (pme=False) at 1,900 MB" in page
    check = {"device": "NVIDIA H200", "runs": [
        {"model": "gaitmm", "dataset": "casia-b", "options": "", "step_seconds": 0.36}]}
    (tmp_path / "device_check.json").write_text(json.dumps(check))
    mixed = write_page(csv_path, tmp_path / "cost.md", tmp_path / "device_check.json").read_text()
    assert "0.1 (measured)" in mixed and "measured where marked" in mixed
    assert "has not been published yet" in write_page(tmp_path / "absent.csv", tmp_path / "c.md",
                                                      tmp_path / "none.json").read_text()
    assert render([], None).startswith("(cost)=")


def test_a_128_run_on_a_64_store_gets_an_upsampled_copy(tmp_path):
    import numpy as np

    from gaitlib.data.store import Store
    from gaitlib.runs.dryrun import _enlarged_store
    from tests.conftest import make_store

    store = make_store(tmp_path / "casia", subjects=("001", "002", "003", "075", "076"),
                       conditions=("nm-01", "nm-05", "bg-01", "cl-01"), dataset="casia-b")
    config = recipe("cstl", "paper", options={"resolution": 128})
    assert config.data.resolution == 128
    config.sampling.p, config.sampling.k = 2, 2
    path = _enlarged_store(store, config, ["001", "002", "003"], ["075", "076"], tmp_path)
    big = Store(path)
    assert big.dataset == "casia-b" and big.meta["frame_shape"] == [128, 128]
    assert sorted(set(big.subjects.tolist())) == ["001", "002", "075", "076"]
    assert (big.subjects == "001").sum() == 4  # 2 x K sequences of each of P subjects
    first = store.select(subjects=["001"])[0]
    np.testing.assert_array_equal(big.frames_of(0)[:, ::2, ::2], store.frames_of(int(first)))


def test_reproduce_into_the_repositorys_book_refuses_a_dirty_tree(tmp_path, monkeypatch):
    import gaitlib.publish.reproduce as rep

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (repo / "code.py").write_text("x = 2\n")
    monkeypatch.setattr(rep, "REPO", repo)
    with pytest.raises(DirtyTreeError, match="--allow-dirty"):
        rep.reproduce(profile="smoke", data_root=tmp_path / "data", root=repo, build=False,
                      only=["cstl-t3"])
    assert not (tmp_path / "data").exists()  # refused before generating or running anything


def test_cost_page_of_a_dry_run_measured_on_a_gpu(tmp_path):
    from gaitlib.publish.cost import cpu_throughput, render
    from gaitlib.runs.dryrun import DryRunRow, write_csv

    rows = [DryRunRow("cstl", "casia-b", "", "cstl-t1 cstl-t3", 1000, 64, 30, 64, 74,
                      step_tflop=3.0, step_seconds=0.36, peak_memory_mb=7000.0, device="NVIDIA H200",
                      projected_hours=0.1, git_commit="abc"),
            DryRunRow("local3d", "oumvlp", "variant=oumvlp", "local3d-t2", 2000, 512, 30, 64, 5153,
                      status="failed", message="RuntimeError: Output tensor is too large.")]
    from gaitlib.publish.cost import load_rows

    loaded = load_rows(write_csv(rows, tmp_path / "dry.csv"))
    cpu_steps = [{"model": "gaitset", "step_tflop": "2.0", "step_seconds": "100"},
                 {"model": "cstl", "step_tflop": "3.0", "step_seconds": "50"}]
    rate = cpu_throughput(cpu_steps)
    assert rate == pytest.approx((0.02 + 0.06) / 2)
    check = {"sections": {"env": {"gpu": "NVIDIA H200", "torch": "2.x", "cuda": "13"},
                          "gaitgl_casia": {"ok": True, "iterations": 100, "paper_iterations": 80000,
                                           "train_budget_s": 5.0, "setting": "s",
                                           "rank1_mean": {"NM": 50.0, "BG": 40.0, "CL": 30.0}},
                          "steps": {"note": "n", "rows": [{"model": "cstl", "variant": "bf16",
                                                           "step_ms": 51.4, "tflops": 61.1,
                                                           "peak_gib": 4.8}]}}}
    page = render(loaded, check, cpu_steps=cpu_steps)
    # hours are projections from measured step times, never "measured" themselves
    assert "**GPU hours are projected from measured step times**" in page
    assert "**CPU hours are projected**" in page and "hours are measured" not in page
    cpu_hours = 1000 * 3.0 / rate / 3600
    assert f"| cstl-t1 | 1 of 4 | 0.1 | {cpu_hours:.1f} |" in page
    assert "| **all (shared runs once)** | 1 of 37 | **0.1**" in page  # the failed run: not counted
    assert "local3d oumvlp variant=oumvlp: RuntimeError: Output tensor is too large." in page
    # An older check counted its own FLOPs forward + backward with flop_counter (which counts a
    # grouped conv's weight gradient once per group): the page puts its step time over the dry
    # run's 3 x forward count instead (3.0 TFLOP / 51.4 ms); a newer check's count is used as is.
    assert "rank-1 NM 50.0, BG 40.0, CL 30.0" in page and "| cstl | bf16 | 51.4 | 58.4 | 4.8 |" in page
    check["sections"]["steps"]["flops"] = "3x forward"
    assert "| cstl | bf16 | 51.4 | 61.1 | 4.8 |" in render(loaded, check, cpu_steps=cpu_steps)
