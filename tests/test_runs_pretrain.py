"""Training the book's runs before its notebooks: which runs are planned, that the pool trains them
into the cache the notebooks read, and that the costliest start first."""

from __future__ import annotations

from gaitlib.report import study
from gaitlib.report.artifacts import ARTIFACTS
from gaitlib.runs.cache import RunSpec, ensure_run
from gaitlib.runs.pool import Worker
from gaitlib.runs.pretrain import planned_runs, pretrain, step_cost


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


def test_step_cost_orders_models_by_their_work():
    small = step_cost(RunSpec.of("gaitset"))
    large = step_cost(RunSpec.of("cstl", resolution=128))
    assert 0 < small < large
    assert small < step_cost(RunSpec.of("cstl")) < large


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
