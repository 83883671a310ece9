"""Evidence levels (verified / shown by the cheap runs / pending) and the figure-page checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from gaitlib import models
from gaitlib.report import evidence
from gaitlib.report.artifacts import ARTIFACT_IDS
from gaitlib.report.inspection import (
    PaddingCheck,
    fusion_markdown,
    ssfl_padding_check,
    temporal_padding,
)
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
    lines = evidence.verified_lines("/nonexistent", {"local3d"})
    assert any("4.26M published" in line for line in lines)
    assert any("no published count" in line for line in lines)


def _ablation(reproduced, half, reported) -> pd.DataFrame:
    rows = []
    for i, (m, h, r) in enumerate(zip(reproduced, half, reported, strict=True)):
        rows.append({"label": f"r{i}", "NM reproduced": m, "NM 95% CI": f"[{m - h:.1f}, {m + h:.1f}]",
                     "NM reported": r, "Mean reproduced": m, "Mean reported": r})
    return pd.DataFrame(rows).set_index("label")


def test_ordering_counts_resolved_pairs_and_their_agreement():
    # r0 < r1 < r2 in the paper; here r1 and r2 swap, and only r0-vs-others are resolved.
    table = _ablation([10.0, 40.0, 38.0], [2.0, 5.0, 5.0], [80.0, 85.0, 90.0])
    o = evidence.ordering(table)
    assert (o.rows, o.pairs, o.resolved, o.agree) == (3, 3, 2, 2)
    assert o.rho == pytest.approx(0.5)
    assert (o.best_paper, o.best_here) == ("r2", "r1")
    assert "2 of 3 pairwise comparisons resolved" in o.summary()
    # wide CIs: nothing resolved, and the summary says the ordering is within the noise
    wide = evidence.ordering(_ablation([10.0, 40.0, 38.0], [30.0, 30.0, 30.0], [80.0, 85.0, 90.0]))
    assert wide.resolved == 0 and "within the noise" in wide.summary()


def test_ordering_reads_main_tables_as_recorded():
    records = [
        {"method": "Ours", "setting": "", "condition": "NM", "reproduced": 50.0, "95% CI": "[45.0, 55.0]",
         "reported": 98.0},
        {"method": "GaitSet", "setting": "", "condition": "NM", "reproduced": 30.0,
         "95% CI": "[25.0, 35.0]", "reported": 95.0},
        {"method": "LagrangeGait", "setting": "", "condition": "NM", "reproduced": None, "95% CI": "",
         "reported": 97.5},
    ]
    o = evidence.ordering(pd.DataFrame(records))
    assert (o.rows, o.pairs, o.resolved, o.agree) == (2, 1, 1, 1)  # LagrangeGait is not reproduced
    assert math.isnan(o.rho)


def test_pending_without_and_with_a_dry_run(tmp_path):
    assert evidence.dry_run(tmp_path) is None
    p = evidence.pending("cstl-t5", None)
    assert (p.runs, p.measured) == (3, 0) and "not yet measured" in p.summary()
    lines = ["model,dataset,options,iterations,batch,step_seconds,peak_memory_mb,device,projected_hours",
             'cstl,casia-b,"{""aggregation"": ""max""}",100000,8x8,0.2,9000,H200,5.5',
             "cstl,casia-b,aggregation=avg,100000,8x8,0.2,9000,H200,5.5",
             "cstl,casia-b,,100000,8x8,0.3,9000,H200,8.0"]
    (tmp_path / evidence.DRY_RUN).write_text("\n".join(lines) + "\n")
    dry = evidence.dry_run(tmp_path)
    done = evidence.pending("cstl-t5", dry)  # max pooling (JSON options), average (k=v), ATA ({})
    assert (done.runs, done.measured, done.hours) == (3, 3, pytest.approx(19.0))
    assert "19 device-hours on H200" in done.summary()
    part = evidence.pending("cstl-t3", dry)  # GaitSet, GaitPart and four CSTL variants unmeasured
    assert part.measured == 2 and "not yet measured" in part.summary()
    whole = evidence.study_hours(dry)
    assert whole.runs == 37 and whole.measured == 3


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
    assert any("not yet measured" in line for line in evidence.verified_lines(results, {"cstl"}))
    (tmp_path / "book" / "fidelity.md").write_text("# Fidelity\n")
    assert "fidelity.md" in evidence.fidelity_link(results)


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
