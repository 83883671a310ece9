"""The plan: artifact -> runs (one answer for every caller), and the budget of `gaitlib reproduce
--plan`: memory per GPU, world sizes, hours, the schedule, and refusals before anything trains."""

from __future__ import annotations

import csv
import io
import math

import pytest

from gaitlib.papers.artifacts import ARTIFACTS
from gaitlib.runs.budget import (
    CSV_COLUMNS,
    Placed,
    PlanError,
    RunNeed,
    make_plan,
    measured_rows,
    simulate,
)
from gaitlib.runs.cache import RunSpec
from gaitlib.runs.plan import artifact_runs, seeded_runs, skip_reason, study_plan


def test_the_plan_covers_every_run_of_the_study_once():
    plan = study_plan(every_setting=True)
    assert len(plan) == len({p.spec for p in plan}) == 37
    for aid in ARTIFACTS:
        wanted = set(artifact_runs(aid, "paper", "synthetic").values())
        assert {p.spec for p in study_plan([aid], data="synthetic")} == wanted
        on_real = {p.spec for p in plan if aid in p.artifacts}
        assert {(s.model, s.options, s.shape) for s in on_real} == \
            {(s.model, s.options, s.shape) for s in wanted}
    assert {p.spec.data for p in plan if p.spec.shape == "oumvlp"} == {"oumvlp"}


def test_every_caller_asks_the_plan():
    from gaitlib.analysis.hours import runs_needed
    from gaitlib.runs.dryrun import study_runs
    from gaitlib.runs.pretrain import planned_runs

    assert [(s, a) for s, a in study_runs(["cstl-t1", "local3d-t2"])] == \
        [(p.spec, list(p.artifacts)) for p in study_plan(["cstl-t1", "local3d-t2"],
                                                         every_setting=True)]
    assert list(runs_needed(["cstl-t2"])) == [("cstl", "oumvlp", 'variant="oumvlp"')]
    assert planned_runs(["cstl-t3"], "cpu", "synthetic", extra_seeds=(1,)) == \
        [p.spec for p in study_plan(["cstl-t3"], "cpu", "synthetic", extra_seeds=(1,))]
    seeded = seeded_runs("cstl-t3", (1, 2), "cpu", "synthetic")
    assert list(seeded) == ["Baseline", "CSTL"] and [s.seed for s in seeded["CSTL"]] == [1, 2]


def test_the_skip_rule():
    assert "needs OU-MVLP data" in skip_reason("gaitmm-t2", "casia-b")
    assert skip_reason("gaitmm-t2", "synthetic") == skip_reason("cstl-t3", "casia-b") == ""
    with pytest.raises(ValueError, match="needs CASIA-B data"):
        artifact_runs("cstl-t3", "paper", "oumvlp")
    assert study_plan(["cstl-t2"], data="casia-b") == []


def _need(name: str, hours: float, peak: float = 10.0, p: int = 8) -> RunNeed:
    return RunNeed(RunSpec.of(name), (), "fp32", p, peak, 0.5, 0.1, hours, "measured", "dry run",
                   hours)


def test_the_schedule_runs_longest_first_and_a_wide_run_waits_its_turn():
    runs = [Placed(_need("a", 10), 2), Placed(_need("b", 6), 1), Placed(_need("c", 6), 1),
            Placed(_need("d", 3), 1)]
    total = simulate(runs, 2)
    assert [(r.start, r.end) for r in runs] == [(0, 10 / 1.8), (10 / 1.8, 10 / 1.8 + 6),
                                                (10 / 1.8, 10 / 1.8 + 6),
                                                (10 / 1.8 + 6, 10 / 1.8 + 9)]
    assert math.isclose(total, 10 / 1.8 + 9)


def test_memory_per_gpu_falls_with_the_world_size():
    need = _need("a", 5, peak=50.0)
    one, two, four = (need.gib_per_gpu(n) for n in (1, 2, 4))
    assert one > two > four
    assert math.isclose(one - 1.5, 50.0) and math.isclose(two - 1.5, 0.5 + 49.5 / 2 + 0.1)
    assert need.widths(4) == [1, 2, 4] and _need("b", 1, p=6).widths(8) == [1, 2, 3, 6]


def test_measured_rows_are_read_with_their_options():
    rows = measured_rows()
    assert len(rows) == 35
    paths = RunSpec.of("local3d", data="casia-b", profile="paper", feature_extraction=False,
                       paths=["head"])
    assert math.isclose(rows[paths].peak_gib, 17477.3159 / 1024)
    assert rows[RunSpec.of("gaitgl", data="casia-b", profile="paper")].precision == "fp16"


def test_the_estimate_is_close_to_a_measured_peak():
    from gaitlib.runs.cache import resolve
    from gaitlib.runs.memory import estimate

    spec = RunSpec.of("gaitgl", data="casia-b", profile="paper")
    measured = measured_rows()[spec].peak_gib
    assert abs(estimate(resolve(spec)).peak_gib / measured - 1) < 0.15


def test_the_estimate_sees_what_the_recompute_switch_saves():
    """The peak comes from a step traced without the FLOP counter (under it, checkpointed
    regions keep their tensors through the backward pass); the FLOPs include the recomputation."""
    from gaitlib.runs.memory import estimate
    from gaitlib.training import recipe

    plain, lean = recipe("local3d", "cpu", "casia-b"), recipe("local3d", "cpu", "casia-b")
    lean.recompute = True
    full, checkpointed = estimate(plain), estimate(lean)
    assert checkpointed.peak_bytes < 0.6 * full.peak_bytes
    assert full.flops < checkpointed.flops < 1.6 * full.flops


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """One runs folder for the CLI tests: its estimate cache is computed once."""
    return tmp_path_factory.mktemp("plan-runs")


def _plan_cli(runs_dir, capsys, *args):
    from gaitlib.cli import main

    code = main(["reproduce", "--plan", "--profile", "paper", "--data", "casia-b",
                 "--runs-dir", str(runs_dir), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plan_for_four_40_gib_cards_on_a_machine_without_them(runs_dir, capsys):
    """Every CASIA-B run fits under 40 GiB per card on four: the 128x88 3D Local run with the
    model's recompute switch, over several GPUs; on one such card it is refused, with what
    would make it fit."""
    code, out, err = _plan_cli(runs_dir, capsys, "--gpus", "0,1,2,3", "--gpu-memory", "40",
                               "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 34 and all(float(r["gib_per_gpu"]) <= 40 for r in rows)
    (wide,) = [r for r in rows if r["model"] == "local3d" and "resolution=128" in r["options"]]
    assert "recompute" in wide["memory"] and int(wide["gpus"]) > 1
    code, out, err = _plan_cli(runs_dir, capsys, "--gpus", "0", "--gpu-memory", "40",
                               "--only", "local3d-t1")
    assert code == 2 and out == ""
    assert "cannot train on 1 GPU of 40 GiB" in err and "resolution=128" in err
    assert "2 GPUs of this size" in err and "cards of >=" in err
    code, out, err = _plan_cli(runs_dir, capsys, "--gpus", "0,1,2,3", "--gpu-memory", "40",
                               "--format", "csv", "--only", "local3d-t3,local3d-t4,cstl-t1")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert all(float(r["gib_per_gpu"]) <= 40 for r in rows)
    assert {r["gpus"] for r in rows if r["model"] == "local3d" and "sampler" in r["options"]} \
        == {"2"}
    hours = [float(r["hours"]) for r in rows]
    assert hours[0] == max(hours) and max(float(r["end_hour"]) for r in rows) > 0


def test_one_16_gib_card_refuses_the_runs_that_cannot_fit(runs_dir, capsys):
    code, out, err = _plan_cli(runs_dir, capsys, "--gpus", "0", "--gpu-memory", "16")
    assert code == 2
    refused = [line for line in err.splitlines() if line.startswith("  ")]
    assert len(refused) >= 10 and all("local3d" in r or "gaitmm" in r or "cstl" in r
                                      for r in refused)
    assert any("gaitmm casia-b msma=False" in r for r in refused)
    assert "nothing was started" in err


def test_memory_scale_plans_a_model_at_a_fraction_of_its_memory(runs_dir):
    """The what-if of bench/plan_totals.py: 3D Local's runs planned at a fifth of their peak."""
    from gaitlib.runs.budget import ESTIMATES_FILE, Estimates

    estimates = Estimates(runs_dir / ESTIMATES_FILE)
    runs = study_plan(["local3d-t3"], "paper", "casia-b")
    today = make_plan(runs, 4, 40.0, estimates=estimates)
    lean = make_plan(runs, 4, 40.0, estimates=estimates, memory_scale={"local3d": 0.2})
    assert all(r.gib_per_gpu <= 40 for r in today.runs + lean.runs)
    assert max(r.need.peak_gib for r in lean.runs) < 0.25 * max(r.need.peak_gib for r in today.runs)


def test_precision_is_a_choice_for_the_paper_runs_only(monkeypatch):
    from types import SimpleNamespace

    from gaitlib.report.study import trained_on
    from gaitlib.runs.cache import PRECISION_ENV, resolve

    spec = RunSpec.of("cstl", data="casia-b", profile="paper")
    assert resolve(spec).precision == "fp32"  # the recipe's, no silent change
    assert resolve(RunSpec.of("cstl", data="casia-b", profile="paper", precision="bf16")) \
        .precision == "bf16"
    monkeypatch.setenv(PRECISION_ENV, "bf16")  # what reproduce --precision hands its notebooks
    config = resolve(spec)
    assert config.precision == "bf16"
    with pytest.raises(ValueError, match="applies to the paper profile"):
        resolve(RunSpec.of("cstl", profile="cpu"))
    run = SimpleNamespace(spec=spec, config=config, devices=lambda: ["cuda:0 (H100)"])
    assert "1 in bf16 (recipe: fp32)" in trained_on({"CSTL": run})
    monkeypatch.delenv(PRECISION_ENV)
    run.config = resolve(spec)
    assert "precision" not in trained_on({"CSTL": run})


class _Switchable:
    """Estimates of a run that needs 100 GiB, or 10 GiB with the model's recompute switch."""

    def __call__(self, spec, precision, recompute=False):
        return {"peak_gib": 10.0 if recompute else 100.0, "tflop": 5.0 if recompute else 4.0}


def test_a_run_no_card_holds_trains_with_the_models_recompute_switch(tmp_path):
    from gaitlib.runs.budget import make_plan, offers_recompute

    local = [p for p in study_plan(["local3d-t1"], every_setting=True)
             if p.spec.model == "local3d"][:1]
    gaitset = [p for p in study_plan(["local3d-t1"], every_setting=True)
               if p.spec.model == "gaitset"][:1]
    assert offers_recompute("local3d") and not offers_recompute("gaitset")
    plan = make_plan(local, 1, 40.0, dry_run_csv=tmp_path / "none.csv", estimates=_Switchable())
    need = plan.runs[0].need
    assert need.recompute and need.peak_gib == 10.0 and "recompute" in need.memory_from
    with pytest.raises(PlanError):  # no switch to turn: refused
        make_plan(gaitset, 1, 40.0, dry_run_csv=tmp_path / "none.csv", estimates=_Switchable())


def test_the_recompute_switch_reaches_the_model_and_not_the_run_key():
    from gaitlib.runs.cache import resolve
    from gaitlib.training.rundir import result_fields
    from gaitlib.training.trainer import build_model

    config = resolve(RunSpec.of("local3d", data="synthetic", profile="smoke"))
    plain = result_fields(config.to_dict())
    assert build_model(config, num_classes=4).recompute is False
    config.recompute = True
    assert result_fields(config.to_dict()) == plain  # the same run, so the same cache folder
    assert build_model(config, num_classes=4).recompute is True
