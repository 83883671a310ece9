"""The transcribed reported numbers (gaitlib/papers/reported/*.csv): shape, ranges, and printed means."""

from __future__ import annotations

import math
from importlib import resources

import pandas as pd
import pytest

from gaitlib.papers.reported import (
    available_reported,
    check_means,
    load_reported,
    view_columns,
)

CASIA_VIEWS = [f"{v:03d}" for v in range(0, 181, 18)]
OUMVLP_VIEWS = [f"{v:03d}" for v in (0, 15, 30, 45, 60, 75, 90, 180, 195, 210, 225, 240, 255, 270)]
LABELS = ["method", "setting", "condition"]

# artifact -> (kind, expected rows, view columns); row counts derived from the papers' tables.
EXPECTED: dict[str, tuple[str, int, list[str]]] = {
    # GaitMM Table 1: GaitSet, GaitPart, GaitGL, 3D Local, LagrangeGait, Ours x NM/BG/CL.
    "gaitmm-t1": ("casia", 6 * 3, CASIA_VIEWS),
    # GaitMM Table 2: five method columns.
    "gaitmm-t2": ("oumvlp", 5, OUMVLP_VIEWS),
    # GaitMM Table 3: four BME/PME/MSMA combinations x NM, BG, CL, Mean.
    "gaitmm-t3": ("ablation", 4 * 4, CASIA_VIEWS),
    # GaitMM Fig. 2: Table 1's six methods plus the DWConv version x NM/BG/CL.
    "gaitmm-f2": ("figure", 7 * 3, CASIA_VIEWS),
    # 3D Local Table 1: GaitSet/GaitPart/MT3D/3DLocal at 64x44, GaitSet/GLN/3DLocal at 128x88, x 3.
    "local3d-t1": ("casia", 7 * 3, CASIA_VIEWS),
    # 3D Local Table 2: four methods (miss), plus four means with invalid probes discarded (Sec. 4.3).
    "local3d-t2": ("oumvlp", 4 + 4, OUMVLP_VIEWS),
    # 3D Local Table 3: settings a-f x NM/BG/CL (no Mean printed).
    "local3d-t3": ("ablation", 6 * 3, CASIA_VIEWS),
    # 3D Local Table 4: Gaussian, Trilinear, Mixture x NM/BG/CL.
    "local3d-t4": ("ablation", 3 * 3, CASIA_VIEWS),
    # 3D Local Table 5: settings a-f x NM/BG/CL.
    "local3d-t5": ("ablation", 6 * 3, CASIA_VIEWS),
    # CSTL Table 1: GaitSet (2 sizes), GaitPart, MT3D, GLN, CSTL (2 sizes) x 3.
    "cstl-t1": ("casia", 7 * 3, CASIA_VIEWS),
    # CSTL Table 2: four method columns.
    "cstl-t2": ("oumvlp", 4, OUMVLP_VIEWS),
    # CSTL Table 3: GaitSet, GaitPart, Baseline, +MSTE, +MSTE+ATA, +MSTE+SSFL, CSTL x NM, BG, CL, Mean.
    "cstl-t3": ("ablation", 7 * 4, CASIA_VIEWS),
    # CSTL Table 4: the 7 non-empty combinations of frame/short/long-term x NM, BG, CL, Mean.
    "cstl-t4": ("ablation", 7 * 4, CASIA_VIEWS),
    # CSTL Table 5: max pooling, average pooling, ATA x NM, BG, CL, Mean.
    "cstl-t5": ("ablation", 3 * 4, CASIA_VIEWS),
}
# Ablation tables whose paper prints a Mean over NM/BG/CL.
ABLATION_WITH_MEAN = {"gaitmm-t3", "cstl-t3", "cstl-t4", "cstl-t5"}

# Rows where the paper's printed Mean is off the mean of its own row by more than 0.05, as
# (method, setting, condition). A difference up to 0.1 can come from rounding alone (the views and
# the mean are each rounded to 0.1); larger ones are inconsistencies in the papers.
KNOWN_MEAN_MISMATCHES: dict[str, set[tuple[str, str, str]]] = {
    "gaitmm-t1": {
        # "GaitPart[9] 89.1 94.8 96.7 95.1 88.3 84.9 89.0 93.5 96.1 93.8 85.8 91.5": 91.55, rounding.
        ("GaitPart", "", "BG"),
        # "LagrangeGait[18] 94.2 96.2 96.8 95.8 94.3 89.5 91.7 96.8 98.0 97.0 90.9 94.6": 94.65, rounding.
        ("LagrangeGait", "", "BG"),
        # "3D Local[11] 78.2 90.2 92.0 87.1 83.0 76.8 83.1 86.6 86.8 84.1 70.9 83.7": views give 83.53.
        ("3D Local", "", "CL"),
    },
    "local3d-t1": {
        # GaitPart BG "... 85.8 91.5": 91.55, rounding.
        ("GaitPart", "64x44", "BG"),
        # "MT3D 64x44 91.0 95.4 97.5 94.2 92.3 86.9 91.2 95.6 97.3 96.4 86.6 93.0": views give 93.13.
        ("MT3D", "64x44", "BG"),
        # "3DLocal 64x44 78.2 90.2 92.0 87.1 83.0 76.8 83.1 86.6 86.8 84.1 70.9 83.7": views give 83.53.
        ("3DLocal", "64x44", "CL"),
    },
    "cstl-t1": {
        # GaitPart BG "... 85.8 91.5": 91.55, rounding.
        ("GaitPart", "64x44", "BG"),
        # MT3D BG "... 86.6 93.0": views give 93.13 (same row as 3D Local's Table 1).
        ("MT3D", "64x44", "BG"),
        # "128 x 88 95.0 96.8 97.9 96.0 94.0 90.5 92.5 96.8 97.9 99.0 94.3 95.4": views give 95.52.
        ("CSTL (ours)", "128x88", "BG"),
    },
    "cstl-t3": {
        # "GaitPart [6] 96.2 91.5 78.7 88.0": (96.2 + 91.5 + 78.7) / 3 = 88.8; the text repeats 88.0.
        ("GaitPart", "", "Mean"),
        # "Baseline + MSTE + SSFL 97.1 92.7 83.7 91.1": 91.17, rounding.
        ("Baseline + MSTE + SSFL", "", "Mean"),
    },
}


def _key(row: pd.Series) -> tuple[str, str, str]:
    return (row["method"], row["setting"], row["condition"])


def test_every_artifact_has_a_table() -> None:
    assert available_reported() == sorted(EXPECTED)


def test_csvs_are_package_resources() -> None:
    root = resources.files("gaitlib.papers.reported")
    for artifact in EXPECTED:
        assert root.joinpath(f"{artifact}.csv").is_file(), artifact


def test_unknown_id_lists_valid_ids() -> None:
    with pytest.raises(ValueError, match="valid ids:.*cstl-t1.*local3d-t5"):
        load_reported("cstl-t9")


@pytest.mark.parametrize("artifact", sorted(EXPECTED))
def test_columns_rows_and_ranges(artifact: str) -> None:
    kind, n_rows, views = EXPECTED[artifact]
    df = load_reported(artifact)
    extra = ["params_M", "approximate"] if kind == "figure" else []
    assert list(df.columns) == LABELS + views + ["Mean"] + extra
    assert view_columns(df) == views
    assert len(df) == n_rows
    assert not df.duplicated(LABELS).any()
    for col in LABELS:
        assert df[col].map(type).eq(str).all(), col
    numbers = df[views + ["Mean"]].to_numpy(dtype=float).ravel()
    present = numbers[~pd.isna(numbers)]
    assert len(present) > 0
    assert ((present >= 0) & (present <= 100)).all()
    # The papers print one decimal everywhere; more digits would mean a typo in the file.
    assert all(math.isclose(x * 10, round(x * 10), abs_tol=1e-6) for x in present)


@pytest.mark.parametrize("artifact", [a for a, e in EXPECTED.items() if e[0] == "casia"])
def test_casia_main_tables_are_complete(artifact: str) -> None:
    df = load_reported(artifact)
    assert df[CASIA_VIEWS + ["Mean"]].notna().all(axis=None)
    assert set(df["condition"]) == {"NM", "BG", "CL"}
    # Every method/setting appears once under each condition.
    counts = df.groupby(["method", "setting"])["condition"].apply(sorted)
    assert all(c == ["BG", "CL", "NM"] for c in counts)


@pytest.mark.parametrize("artifact", [a for a, e in EXPECTED.items() if e[0] == "oumvlp"])
def test_oumvlp_tables(artifact: str) -> None:
    df = load_reported(artifact)
    assert set(df["condition"]) == {"rank1"}
    assert set(df["setting"]) <= {"miss", "discard"}
    assert df["Mean"].notna().all()
    full = df[OUMVLP_VIEWS].notna().all(axis=1)
    # Only rows the paper prints as a bare mean lack views: GaitMM's "3D Local" column ("-" per
    # view) and 3D Local's discarded-probe means quoted in its Sec. 4.3 text.
    partial = set(map(_key, df[~full].to_dict("records")))
    assert df.loc[~full, OUMVLP_VIEWS].isna().all(axis=None)
    expected_partial = {
        "gaitmm-t2": {("3D Local", "discard", "rank1")},
        "local3d-t2": {(m, "discard", "rank1") for m in ("GaitSet", "GaitPart", "GLN", "3DLocal")},
        "cstl-t2": set(),
    }[artifact]
    assert partial == expected_partial


@pytest.mark.parametrize("artifact", [a for a, e in EXPECTED.items() if e[0] in ("ablation", "figure")])
def test_mean_only_tables(artifact: str) -> None:
    df = load_reported(artifact)
    assert df[CASIA_VIEWS].isna().all(axis=None)
    conditions = ["NM", "BG", "CL"] + (["Mean"] if artifact in ABLATION_WITH_MEAN else [])
    for _, group in df.groupby(["method", "setting"], sort=False):
        assert sorted(group["condition"]) == sorted(conditions)
    if artifact != "gaitmm-f2":
        assert df["Mean"].notna().all()


@pytest.mark.parametrize("artifact", sorted(EXPECTED))
def test_printed_means_match_their_rows(artifact: str) -> None:
    flagged = check_means(load_reported(artifact))
    assert set(map(_key, flagged.to_dict("records"))) == KNOWN_MEAN_MISMATCHES.get(artifact, set())


def test_check_means_flags_only_inconsistent_complete_rows() -> None:
    views = {v: [90.0, 90.0, float("nan")] for v in CASIA_VIEWS}
    df = pd.DataFrame(
        {"method": ["ok", "bad", "partial"], "setting": "", "condition": "NM", **views,
         "Mean": [90.0, 91.0, 50.0]}
    )
    out = check_means(df)
    assert list(out["method"]) == ["bad"]
    assert out["recomputed"].iloc[0] == pytest.approx(90.0)
    assert out["difference"].iloc[0] == pytest.approx(1.0)
    assert out["recomputed_from"].iloc[0] == "views"
    # A difference of exactly the tolerance passes; just above it fails.
    df.loc[1, "Mean"] = 90.05
    assert check_means(df).empty
    df.loc[1, "Mean"] = 90.06
    assert list(check_means(df)["method"]) == ["bad"]


def test_check_means_over_conditions() -> None:
    df = pd.DataFrame(
        {"method": ["a"] * 4 + ["b"] * 4 + ["c"] * 2, "setting": "",
         "condition": ["NM", "BG", "CL", "Mean"] * 2 + ["NM", "Mean"],
         "Mean": [90.0, 80.0, 70.0, 80.0, 90.0, 80.0, 70.0, 81.0, 90.0, 10.0]}
    )
    out = check_means(df)
    # "c" lacks BG/CL, so its Mean cannot be recomputed and is not flagged.
    assert list(out["method"]) == ["b"]
    assert out["recomputed"].iloc[0] == pytest.approx(80.0)
    assert out["recomputed_from"].iloc[0] == "conditions"


def _means(artifact: str, method: str, setting: str = "") -> dict[str, float]:
    df = load_reported(artifact)
    rows = df[(df["method"] == method) & (df["setting"] == setting)]
    assert len(rows) > 0, (artifact, method, setting)
    return dict(zip(rows["condition"], rows["Mean"], strict=True))


def pick3(d: dict[str, float]) -> list[float]:
    return [d["NM"], d["BG"], d["CL"]]


def _rows(artifact: str, method: str, setting: str = "") -> pd.DataFrame:
    df = load_reported(artifact)
    rows = df[(df["method"] == method) & (df["setting"] == setting)]
    assert len(rows) > 0, (artifact, method, setting)
    return rows.drop(columns=["method", "setting"]).set_index("condition").sort_index()


def test_rows_quoted_by_several_papers_agree() -> None:
    # The same published baselines appear in two or three of the papers; transcribed separately,
    # they must coincide.
    same = [
        (("gaitmm-t1", "GaitSet", ""), ("local3d-t1", "GaitSet", "64x44"), ("cstl-t1", "GaitSet", "64x44")),
        (
            ("gaitmm-t1", "GaitPart", ""),
            ("local3d-t1", "GaitPart", "64x44"),
            ("cstl-t1", "GaitPart", "64x44"),
        ),
        (("gaitmm-t1", "3D Local", ""), ("local3d-t1", "3DLocal", "64x44")),
        (("local3d-t1", "MT3D", "64x44"), ("cstl-t1", "MT3D", "64x44")),
        (("local3d-t1", "GaitSet", "128x88"), ("cstl-t1", "GaitSet", "128x88")),
        (("local3d-t1", "GLN", "128x88"), ("cstl-t1", "GLN", "128x88")),
        (("local3d-t2", "GaitSet", "miss"), ("cstl-t2", "GaitSet", "miss")),
        (("local3d-t2", "GaitPart", "miss"), ("cstl-t2", "GaitPart", "miss")),
        (("local3d-t2", "GLN", "miss"), ("cstl-t2", "GLN", "miss")),
    ]
    for group in same:
        first = _rows(*group[0])
        for other in group[1:]:
            pd.testing.assert_frame_equal(first, _rows(*other), obj=f"{group[0]} vs {other}")
    # Discarded-probe means: GaitMM's Table 2 quotes the figures of 3D Local's Sec. 4.3.
    for gm, ld in [("GaitSet", "GaitSet"), ("GaitPart", "GaitPart"), ("3D Local", "3DLocal")]:
        assert _means("gaitmm-t2", gm, "discard") == _means("local3d-t2", ld, "discard")


def test_full_models_of_ablations_are_the_main_table_models() -> None:
    gaitmm = pick3(_means("gaitmm-t1", "Ours"))
    assert pick3(_means("gaitmm-t3", "BME+PME+MSMA")) == gaitmm
    local = pick3(_means("local3d-t1", "3DLocal", "64x44"))
    assert pick3(_means("local3d-t3", "Block1+Block2+Block3", "f")) == local
    assert pick3(_means("local3d-t4", "Mixture")) == local
    assert pick3(_means("local3d-t5", "Global+Head+LArm+RArm+Torso+LLeg+RLeg+FE", "f")) == local
    # Setting (a) of Tables 3 and 5 is the same model without local operations.
    assert pick3(_means("local3d-t3", "none", "a")) == pick3(_means("local3d-t5", "Global", "a"))
    cstl = pick3(_means("cstl-t1", "CSTL (ours)", "64x44"))
    for artifact, method in [("cstl-t3", "CSTL"), ("cstl-t4", "Frame-level+Short-term+Long-term"),
                             ("cstl-t5", "ATA")]:
        assert pick3(_means(artifact, method)) == cstl
    # CSTL Table 3 quotes GaitSet and GaitPart from Table 1 (64x44).
    for method in ("GaitSet", "GaitPart"):
        assert pick3(_means("cstl-t3", method)) == pick3(_means("cstl-t1", method, "64x44"))


def test_figure_two_points_come_from_table_one() -> None:
    fig = load_reported("gaitmm-f2")
    table = load_reported("gaitmm-t1")
    assert fig["approximate"].map(type).eq(bool).all()
    merged = fig.merge(table[LABELS + ["Mean"]], on=LABELS, how="left", suffixes=("", "_t1"))
    given = merged["Mean"].notna()
    assert (merged.loc[given, "Mean"] == merged.loc[given, "Mean_t1"]).all()
    # The DWConv variant is the one point the paper plots without printing its accuracy.
    assert set(merged.loc[~given, "method"]) == {"Ours (DWConv)"}
    assert set(fig["method"]) - set(table["method"]) == {"Ours (DWConv)"}


def test_numbers_the_texts_restate() -> None:
    # Abstract of CSTL: "98.0%, 95.4% and 87.0%" (128x88) and "90.2%" on OU-MVLP.
    assert pick3(_means("cstl-t1", "CSTL (ours)", "128x88")) == [98.0, 95.4, 87.0]
    assert _means("cstl-t2", "CSTL (Ours)", "miss") == {"rank1": 90.2}
    # GaitMM Sec. 4.2: "98.0%, 95.6% and 87.2% ... 0.5%, 1.0% and 2.1% higher than LagrangeGait".
    ours, lagrange = pick3(_means("gaitmm-t1", "Ours")), pick3(_means("gaitmm-t1", "LagrangeGait"))
    assert ours == [98.0, 95.6, 87.2]
    assert [round(a - b, 1) for a, b in zip(ours, lagrange, strict=True)] == [0.5, 1.0, 2.1]
