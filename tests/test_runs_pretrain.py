"""Training the book's runs before its notebooks: which runs are planned, that the pool trains them
into the cache the notebooks read (a run on two workers too: torchrun, gloo), that the
costliest start first, and that `gaitlib train` and the cache agree on a run's folder."""

from __future__ import annotations

from gaitlib.papers.artifacts import ARTIFACTS
from gaitlib.report import study
from gaitlib.runs.cache import RunSpec, ensure_run
from gaitlib.runs.pool import Worker
from gaitlib.runs.pretrain import planned_runs, pretrain, worker_plan


def _notebook_specs(artifact_id: str, data: str, seeds=()) -> set[RunSpec]:
    """What the notebook of ``artifact_id`` asks for: its rows, plus study.seed_runs' rows."""
    art = ARTIFACTS[artifact_id]
    specs = {study.spec_for(row, data, "cpu", 0) for row in art.rows}
    if art.kind == "ablation":
        specs |= {study.spec_for(row, data, "cpu", s) for row in (art.reference_row(), art.rows[-1])
                  for s in seeds}
    return specs


def test_planned_runs_are_what_the_notebooks_ask_for():
    chosen = ["cstl-t1", "cstl-t3", "cstl-t5", "cstl-f7", "scorecard", "synthetic-data"]
    planned = planned_runs(chosen, "cpu", "synthetic", extra_seeds=(1, 2))
    assert len(planned) == len(set(planned))  # shared rows (the full CSTL) are planned once
    wanted = set().union(*(_notebook_specs(a, "synthetic", (1, 2)) for a in chosen if a in ARTIFACTS))
    assert set(planned) == wanted
    # seeds only for the ablations' reference rows and full model: Baseline, max pooling, CSTL
    extra = {(s.option_dict.get("aggregation"), s.option_dict.get("mste")) for s in planned if s.seed}
    assert len([s for s in planned if s.seed]) == 2 * 3 and len(extra) == 3
    assert {s.seed for s in planned} == {0, 1, 2}


def test_planned_runs_leave_out_artifacts_the_data_cannot_serve():
    assert planned_runs(["cstl-t2"], "cpu", "casia-b") == []  # an OU-MVLP table
    on_synthetic = planned_runs(["cstl-t2"], "cpu", "synthetic")
    assert on_synthetic and all(s.data == "synthetic" for s in on_synthetic)
    assert {s.shape for s in on_synthetic} == {"oumvlp"}


def test_cpu_workers_take_the_most_work_first(tmp_path):
    specs = [RunSpec.of("gaitset"), RunSpec.of("cstl", resolution=128), RunSpec.of("cstl")]
    plan = worker_plan(specs, 2, tmp_path)
    order = [r.need.spec for r in plan.runs]
    assert order[0] == specs[1] and set(order) == set(specs)
    costs = [r.need.cost for r in plan.runs]
    assert costs == sorted(costs, reverse=True) and costs[-1] > 0
    assert all(r.gpus == 1 for r in plan.runs)


def test_pool_trains_into_the_cache_the_notebooks_read(tmp_path, capsys):
    from gaitlib.data.synthetic import generate

    generate(tmp_path / "data" / "synthetic-smoke", n_subjects=6, seed=1, workers=1, progress=False)
    specs = [RunSpec.of("gaitset", profile="smoke", seed=s) for s in (0, 1)]
    specs.append(RunSpec.of("gaitpart", profile="smoke"))
    workers = [Worker(f"w{i}", "cpu", {"OMP_NUM_THREADS": "1"}) for i in range(2)]
    done = pretrain(specs, workers, tmp_path / "runs", tmp_path / "data")
    assert sorted(d.status for d in done) == ["trained"] * 3, done
    out = capsys.readouterr().out
    assert "training 3 runs" in out and "[3/3]" in out
    for spec in specs:  # the notebook's ensure_run finds the run finished
        run = ensure_run(spec, tmp_path / "runs", tmp_path / "data", device="cpu", progress=False)
        assert run.reused and run.evaluation
    again = pretrain(specs, workers, tmp_path / "runs", tmp_path / "data")
    assert [d.status for d in again] == ["cached"] * 3


def test_training_summary_says_where_the_time_went():
    from gaitlib.runs.pretrain import Trained, training_summary

    spec = RunSpec.of("gaitset")
    done = [Trained(spec, "trained", 30.0), Trained(spec, "trained", 10.0), Trained(spec, "cached"),
            Trained(spec, "failed", 2.0, "boom")]
    line = training_summary(done, 21.0)
    assert "2 trained, 1 cached, 1 failed" in line and "42 s of runs in 21 s wall" in line
    assert "2.00 runs at a time" in line


def test_a_spec_survives_its_json_form():
    import json

    spec = RunSpec.of("local3d", data="casia-b", seed=3, paths=["head", "torso"], blocks=[2])
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.options_text() == "blocks=[2];paths=['head', 'torso']"


def test_a_wide_run_trains_with_ddp_into_the_same_cache_folder(tmp_path, capsys):
    """A run the plan gives two workers trains under torchrun (gloo on the CPU, P split over
    the ranks) into the folder a notebook's one-process ensure_run looks in."""
    from gaitlib.data.synthetic import generate
    from gaitlib.training.rundir import trained_devices

    generate(tmp_path / "data" / "synthetic-smoke", n_subjects=6, seed=1, workers=1, progress=False)
    spec = RunSpec.of("gaitset", profile="smoke")
    plan = worker_plan([spec], 2, tmp_path / "runs")
    plan.runs[0].gpus = 2
    workers = [Worker(f"w{i}", "cpu", {"OMP_NUM_THREADS": "1"}) for i in range(2)]
    done = pretrain(plan, workers, tmp_path / "runs", tmp_path / "data", interval=0.5)
    assert [d.status for d in done] == ["trained"], done
    run = ensure_run(spec, tmp_path / "runs", tmp_path / "data", device="cpu", progress=False)
    assert run.reused and run.evaluation
    assert trained_devices(run.run_dir) == ["cpu, 2 processes"]
    assert (tmp_path / "runs" / f"{run.run_dir.name}.log").is_file()
    out = capsys.readouterr().out
    assert "started gaitset[] seed 0 on w0+w1" in out and "[1/1]" in out and "\r" not in out


def test_gaitlib_train_and_the_cache_share_a_run(tmp_path, capsys):
    """A run `gaitlib train`-style settings left unfinished (device auto, the store by its
    absolute path) is resumed by the cache, not refused; `gaitlib train` then finds that same
    folder (finished: it refuses to replace it without --force)."""
    from gaitlib.cli import main
    from gaitlib.data.synthetic import generate
    from gaitlib.runs.cache import resolve, run_dir_of
    from gaitlib.training.trainer import train

    store = tmp_path / "data" / "synthetic-smoke"
    generate(store, n_subjects=6, seed=1, workers=1, progress=False)
    spec = RunSpec.of("gaitpart", profile="smoke")
    config = resolve(spec, tmp_path / "data", device="auto")
    config.data.store = str(store.resolve())
    first = train(config, run_dir_of(config, tmp_path / "runs"), stop_after=2, progress=False)
    assert not first.finished
    run = ensure_run(spec, tmp_path / "runs", tmp_path / "data", device="cpu", progress=False)
    assert not run.reused and run.run_dir == first.run_dir and run.evaluation
    assert main(["train", "--model", "gaitpart", "--data", str(store), "--profile", "smoke",
                 "--runs-dir", str(tmp_path / "runs"), "--no-progress", "device=cpu"]) == 2
    assert f"{run.run_dir} already holds a finished run" in capsys.readouterr().err
