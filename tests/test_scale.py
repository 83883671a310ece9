"""A page states the scale its numbers were made at, from the runs themselves, and its tables
carry the chance and GEI floor on the same test set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gaitlib.report import display, scale
from gaitlib.runs.cache import Run, RunSpec, resolve
from tests.conftest import make_store

SUBJECTS = tuple(f"{i:03d}" for i in range(1, 9))
CONDITIONS = ("nm-01", "nm-02", "nm-05", "bg-01", "cl-01")


def _run(data_root: Path, model: str = "gaitgl", profile: str = "cpu", **options) -> Run:
    spec = RunSpec.of(model, data="synthetic", profile=profile, **options)
    config = resolve(spec, data_root)
    return Run(spec, config, data_root / "run", True, 0.0, {"n_subjects": 4})


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    make_store(tmp_path / "synthetic", subjects=SUBJECTS, conditions=CONDITIONS,
               views=("000", "090"), lengths=(12, 20))
    return tmp_path


def test_input_sizes():
    assert [scale.input_size(h) for h in (32, 64, 128)] == ["32x22", "64x44", "128x88"]


def test_the_scale_comes_from_the_runs(data_root):
    s = scale.run_scale(_run(data_root))
    assert (s.profile, s.iterations, s.p, s.k, s.clip_frames) == ("cpu", 60, 4, 4, 8)
    assert (s.paper_input, s.input) == ("64x44", "32x22")  # what ran, not the row's label
    assert (s.train_subjects, s.test_subjects, s.all_test_subjects, s.test_frames) == (4, 4, 4, 10)
    assert s.chance == pytest.approx(25.0)
    wide = scale.run_scale(_run(data_root, "cstl", resolution=128))
    assert (wide.paper_input, wide.input) == ("128x88", "64x44")
    note = scale.scale_note({"a": _run(data_root), "b": _run(data_root, "cstl", resolution=128)})
    assert "**Scale of this page's runs** (cpu profile): 60 iterations of (P, K) = (4, 4)" in note
    assert "input 32x22 (the paper's 64x44); 64x44 (the paper's 128x88)" in note
    assert "scored on all 4 test subjects, the first 10 frames of each sequence" in note
    assert "Chance, a random pick among the gallery subjects, is 25.0%" in note
    assert "they do not estimate the papers'" in note
    # cpu-long trains model families for different budgets: the note says which row had which
    mixed = scale.scale_note({"GaitGL": _run(data_root, profile="cpu-long"),
                              "3D Local": _run(data_root, "local3d", profile="cpu-long"),
                              "CSTL": _run(data_root, "cstl", profile="cpu-long")})
    assert "(cpu-long profile): 1,000 / 200 iterations (GaitGL, CSTL / 3D Local) of" in mixed


def test_tables_carry_chance_and_the_gei_baseline(data_root):
    runs = {"a": _run(data_root)}
    floor = scale.baselines(runs)
    assert list(floor["method"].unique()) == [scale.CHANCE, scale.GEI]
    assert list(floor["condition"].unique()) == ["NM", "BG", "CL"]
    chance = floor[floor["method"] == scale.CHANCE]["reproduced"]
    assert (chance == 25.0).all()
    gei = floor[floor["method"] == scale.GEI]
    assert gei["reproduced"].between(0, 100).all()
    assert (gei["ci_low"] <= gei["reproduced"]).all() and (gei["reproduced"] <= gei["ci_high"]).all()
    assert "chance is 25.0%" in scale.floor_sentence(runs)
    # a main table and an ablation table, each with the two lines appended (no paper number)
    main = pd.DataFrame([{"method": "Ours", "setting": "", "condition": c, "input (ran)": "32x22",
                          "reproduced": 50.0, "ci_low": 40.0, "ci_high": 60.0, "reported": 90.0,
                          "delta": -40.0} for c in ("NM", "BG", "CL")]
                        ).set_index(["method", "setting", "condition"])
    shown = display.with_baselines(main, floor)
    assert len(shown) == 3 + 6 and shown.loc[(scale.CHANCE, "", "NM"), "reproduced"] == 25.0
    assert pd.isna(shown.loc[(scale.GEI, "", "CL"), "reported"])
    ablation = pd.DataFrame({"NM": ["50.0 [40.0, 60.0]"], "NM paper": [90.0], "Mean": ["50.0"]},
                            index=pd.Index(["row"], name="label"))
    shown = display.with_baselines(ablation, floor)
    assert list(shown.index) == ["row", scale.CHANCE, scale.GEI]
    assert shown.loc[scale.CHANCE, "Mean"] == "25.0" and pd.isna(shown.loc[scale.GEI, "NM paper"])
    html = display.show(main, baselines=floor).to_html()
    assert scale.GEI in html and "font-style: italic" in html


def test_the_protocol_under_a_main_table(data_root):
    from gaitlib.report import compare, protocol

    assert protocol.zoo("GaitSet", "NM") == (95.8, 85.9)
    assert protocol.zoo("GaitGL", "miss", "oumvlp") == (89.9, 93.3)
    assert protocol.zoo("CSTL", "NM") is None
    runs = {"CSTL (ours) (64x44)": _run(data_root, "cstl"),
            "GaitSet (64x44)": _run(data_root, "gaitset")}
    note = protocol.protocol_note("cstl-t1", runs)
    assert note.startswith("**Protocol.** This edition trains on 4 subjects")
    assert "final checkpoint of every run" in note and "synthetic walker's silhouettes" in note
    assert "nm-01, bg-01, cl-01 against a gallery of nm-02, bg-02, cl-02" in note
    assert "issues/77" in note and "oscillate" in note and "OpenGait's model zoo" in note
    assert "best test accuracy" in protocol.protocol_note("local3d-t1", {
        "3DLocal (64x44)": _run(data_root, "local3d")})
    # the zoo columns of a main table: OpenGait's numbers for the baselines only
    paper_only = compare.main_table("cstl-t1", {})
    gaitset = paper_only.loc[("GaitSet", "64x44", "CL")]
    assert (gaitset["reported"], gaitset["OpenGait rank-1"], gaitset["OpenGait mAP"]) == \
        (70.4, 75.4, 77.0)
    assert pd.isna(paper_only.loc[("CSTL (ours)", "64x44", "NM"), "OpenGait rank-1"])
