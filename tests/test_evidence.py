"""Evidence levels (verified / shown by the cheap runs / pending) and the figure-page checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from gaitlib import models
from gaitlib.analysis import hours
from gaitlib.analysis.ordering import ordering
from gaitlib.papers.artifacts import ARTIFACT_IDS
from gaitlib.report import evidence
from gaitlib.report.inspection import (
    PaddingCheck,
    fusion_markdown,
    ssfl_padding_check,
    temporal_padding,
)
from gaitlib.report.results import DRY_RUN, read_dry_run
from tests.conftest import blob_silhouettes


def test_parameter_counts_equal_the_published_ones_as_printed():
    check = evidence.parameter_check()
    equal = set(check.index[check["equal as printed"]])
    assert {"GaitSet", "GaitPart", "GaitGL", "GaitGL (OU-MVLP)", "CSTL 64x44", "CSTL 128x88"} <= equal
    # the authors' 3D Local configuration: 4.25M against 4.26M printed, 0.2 % off
    row = check.loc["3D Local (authors' configuration)"]
    assert not row["equal as printed"] and abs(row["difference (%)"]) < 0.5
    shown = evidence.parameter_display()
    assert shown.loc["GaitSet", "published"] == "2.59M" and shown.loc["GaitSet", "equal as printed"] == "yes"
    assert shown.loc["3D Local (authors' configuration)", "gaitlib"] == "4.251M"  # with localization BN
    # "verified" only for what matched: the 3D Local count is listed as not verified
    assert not any("3D Local" in line for line in evidence.verified_lines("/nonexistent", {"local3d"}))
    lines = evidence.unverified_lines("/nonexistent", {"local3d"})
    assert any("4.251M against 4.26M published (-0.2 %), not equal as printed" in line for line in lines)
    assert any("no published count" in line for line in lines)
    assert evidence.unverified_lines("/nonexistent", {"gaitset"}) == [
        "- **Networks** (GaitSet): forward equivalence with the reference networks not yet "
        "measured in this edition."]


def _ablation(reproduced, half, reported) -> pd.DataFrame:
    rows = []
    for i, (m, h, r) in enumerate(zip(reproduced, half, reported, strict=True)):
        rows.append({"label": f"r{i}", "NM reproduced": m, "NM ci_low": m - h, "NM ci_high": m + h,
                     "NM reported": r, "Mean reproduced": m, "Mean reported": r})
    return pd.DataFrame(rows).set_index("label")


def test_ordering_is_kendalls_tau_with_its_permutation_p():
    # r0 < r1 < r2 in the paper; here r1 and r2 swap: 2 of 3 pairs concordant, tau = 1/3, and
    # 3 of the 6 orderings of three rows agree with the paper at least as well
    table = _ablation([10.0, 40.0, 38.0], [2.0, 5.0, 5.0], [80.0, 85.0, 90.0])
    o = ordering(table)
    assert o.rows == 3 and o.tau == pytest.approx(1 / 3) and o.p == pytest.approx(0.5)
    assert (o.best_paper, o.best_here) == ("r2", "r1")
    assert o.summary() == ("Kendall's tau between this edition's and the paper's row means: +0.33 "
                           "over 3 rows; a random ordering of the rows agrees with the paper's at "
                           "least as well with probability p = 0.5")
    assert o.cell() == "tau +0.33 over 3 rows (p = 0.5)"
    # the page's note prints the same statistic
    from gaitlib.report.display import ordering_note

    assert ordering_note(table).startswith(o.summary())


def test_ordering_reads_main_tables_as_recorded():
    records = [
        {"method": "Ours", "setting": "", "condition": "NM", "reproduced": 50.0, "ci_low": 45.0,
         "ci_high": 55.0, "reported": 98.0},
        {"method": "GaitSet", "setting": "", "condition": "NM", "reproduced": 30.0, "ci_low": 25.0,
         "ci_high": 35.0, "reported": 95.0},
        {"method": "LagrangeGait", "setting": "", "condition": "NM", "reproduced": None,
         "ci_low": None, "ci_high": None, "reported": 97.5},
    ]
    o = ordering(pd.DataFrame(records))
    assert o.rows == 2 and math.isnan(o.tau)  # LagrangeGait is not reproduced
    assert "too few to compare" in o.summary()


def test_device_hours_have_one_source(tmp_path):
    assert read_dry_run(tmp_path) is None
    p = hours.pending("cstl-t5", None)
    assert (p.runs, p.measured) == (3, 0) and "not yet measured" in p.summary()
    lines = ["model,dataset,options,iterations,batch,step_seconds,peak_memory_mb,device,"
             "projected_hours,status",
             'cstl,casia-b,"{""aggregation"": ""max""}",100000,8x8,0.2,9000,H200,5.5,ok',
             "cstl,casia-b,aggregation=avg,100000,8x8,0.2,9000,H200,5.5,ok",
             "cstl,casia-b,,100000,8x8,0.3,9000,H200,8.0,ok",
             # options as the dry run writes them: Python literals, 'k=v;k=v'
             "local3d,casia-b,\"feature_extraction=False;paths=['head', 'arm_l', 'arm_r']\","
             "120000,128,0.3,9000,H200,8.9,ok",
             "local3d,casia-b,resolution=128,120000,128,,,H200,nan,failed"]
    (tmp_path / DRY_RUN).write_text("\n".join(lines) + "\n")
    dry = read_dry_run(tmp_path)
    done = hours.pending("cstl-t5", dry)  # max pooling (JSON options), average (k=v), ATA ({})
    assert (done.runs, done.measured, done.hours) == (3, 3, pytest.approx(19.0))
    assert "about 19 device-hours on H200 (projected" in done.summary()
    part = hours.pending("cstl-t3", dry)  # GaitSet, GaitPart and four CSTL variants unmeasured
    assert part.measured == 2 and "not yet measured" in part.summary()
    assert hours.pending("local3d-t5", dry).measured == 1  # the Python-literal options match
    failed = hours.pending("local3d-t1", dry)
    assert failed.failed == ["local3d casia-b resolution=128"]
    assert "1 failed at the paper's scale (local3d casia-b resolution=128)" in failed.summary()
    whole = hours.study_hours(dry)
    assert whole.runs == 37 and whole.measured == 4 and len(whole.failed) == 1
    # the cost page's per-artifact sums are the scorecard's
    from gaitlib.publish import cost

    assert dict((a, len(r)) for a, r in cost._per_artifact(dry)) == {
        "local3d-t5": 1, "cstl-t1": 1, "cstl-t3": 2, "cstl-t4": 1, "cstl-t5": 3, "cstl-f6": 1,
        "cstl-f7": 1}
    assert {a: sum(float(x["projected_hours"]) for x in r) for a, r in cost._per_artifact(dry)}[
        "cstl-t5"] == pytest.approx(done.hours)


def test_pages_say_what_data_each_page_shows(tmp_path):
    for aid, data, extra in (("gaitmm-t1", "casia-b", {"binarized": True}), ("cstl-t5", "synthetic", {})):
        folder = tmp_path / aid
        folder.mkdir()
        entry = {"artifact": aid, "data": data, "profile": "cpu", "recorded": "2026-01-01T00:00:00",
                 "git_commit": "0123456789abcdef", "runs": {}, "table": [], **extra}
        (folder / f"{data}-cpu.json").write_text(json.dumps(entry))
    text = evidence.pages_markdown(tmp_path)
    assert "| gaitmm-t1 | real CASIA-B (binarized) | cpu | 2026-01-01 (0123456) |" in text
    assert "| cstl-t5 | synthetic | cpu |" in text
    assert f"{len(ARTIFACT_IDS) - 2} on not run yet" in text


def test_fidelity_link_only_when_the_page_exists(tmp_path):
    results = tmp_path / "book" / "results"
    results.mkdir(parents=True)
    assert evidence.fidelity_link(results) == ""
    assert any("not yet measured" in line for line in evidence.unverified_lines(results, {"cstl"}))
    assert not any("Networks" in line for line in evidence.verified_lines(results, {"cstl"}))
    (tmp_path / "book" / "fidelity.md").write_text("# Fidelity\n")
    assert "fidelity.md" in evidence.fidelity_link(results)
    assert any("fidelity.md" in line for line in evidence.verified_lines(results, {"cstl"}))


# --- figure-page checks ---------------------------------------------------------------------------

def _tiny_cstl():
    torch.manual_seed(0)
    return models.build("cstl", channels=(4, 8, 8, 8), num_classes=5).eval()


def test_replicate_padding_changes_only_the_clip_ends():
    model = _tiny_cstl()
    p = torch.randn(2, model.parts * 8, 12)
    zero = model.mste(p)
    with temporal_padding(model, "replicate") as reach:
        rep = model.mste(p)
    assert reach == 2  # two stacked k=3 convs
    short = model.mste.scales.index("short")
    assert torch.allclose(zero[short][..., reach:-reach], rep[short][..., reach:-reach])
    assert not torch.allclose(zero[short][..., :reach], rep[short][..., :reach])
    convs = [m for m in model.mste.short_term.modules() if isinstance(m, torch.nn.Conv1d)]
    assert all(c.padding_mode == "zeros" for c in convs)  # restored


def test_padding_check_collects_picks_for_every_clip():
    model = _tiny_cstl()
    clips = list(blob_silhouettes(3, 10, 64, 44, 0))
    check = ssfl_padding_check(model, clips)
    assert check.trained.shape == check.replicate.shape == (3, model.parts)
    assert check.frames == 10 and check.chance == pytest.approx(0.4)
    with pytest.raises(ValueError, match="one length"):
        ssfl_padding_check(model, [clips[0], clips[1][:8]])


def test_padding_verdicts():
    ends = np.array([[0, 29, 1, 28]] * 4)
    middle = np.array([[10, 15, 12, 20]] * 4)
    assert PaddingCheck(30, 2, ends, middle).verdict() == "padding"
    assert PaddingCheck(30, 2, ends, ends).verdict() == "not padding alone"
    assert PaddingCheck(30, 2, middle, middle).verdict() == "ends not favoured"
    assert "zero padding, not the gait" in PaddingCheck(30, 2, ends, middle).markdown()


def test_figure_texts_degrade_gracefully():
    text = fusion_markdown({"1": {"global": 0.4, "head": 0.1}})
    assert "smallest head at 25% of the largest" in text
