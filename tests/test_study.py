"""The study's plumbing: half-resolution input, the cheap profiles' model scaling, the OU-MVLP-shaped
synthetic store, the run cache's key, the artifact table's contract with the reported numbers, and
the helpers the artifact notebooks call (ordering note, ablation plot, recorded results, scorecard).

Everything here is small: no model is trained (the trainer is replaced where a run is asked for).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gaitlib.analysis.ablation import AblationResult, AblationRow  # noqa: E402
from gaitlib.data.sampling import to_model_input  # noqa: E402
from gaitlib.models import options as model_options  # noqa: E402
from gaitlib.papers.artifacts import ARTIFACT_IDS, ARTIFACTS  # noqa: E402
from gaitlib.papers.reported import available_reported, load_reported  # noqa: E402
from gaitlib.report import compare, display, records, study  # noqa: E402
from gaitlib.report.evidence import ORDERING_COLUMN  # noqa: E402
from gaitlib.runs.cache import RunSpec, code_version, ensure_run, resolve, run_key  # noqa: E402
from gaitlib.training.recipes import PAPER, cheap_model_options, recipe  # noqa: E402
from tests.conftest import blob_silhouettes, make_store  # noqa: E402

MODELS = tuple(PAPER)


# --- to_model_input: the cpu profile's half resolution ---------------------------------------------

def _frames(*shape: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)


def test_half_resolution_is_a_2x2_box_average():
    frames = _frames(5, 64, 44)
    out = to_model_input(frames, "cpu", height=32)
    assert out.shape == (5, 32, 22) and out.dtype == torch.float32
    # Each output pixel is the mean of its 2x2 block of the [0, 1] frames.
    blocks = (frames.double() / 255.0).reshape(5, 32, 2, 22, 2).mean(dim=(2, 4))
    torch.testing.assert_close(out.double(), blocks, rtol=0, atol=1e-6)


@pytest.mark.parametrize("height", [0, 64])
def test_height_zero_or_equal_keeps_the_frames(height):
    frames = _frames(3, 64, 44, seed=1)
    out = to_model_input(frames, "cpu", height=height)
    assert out.shape == (3, 64, 44)
    torch.testing.assert_close(out, frames.float() / 255.0)


@pytest.mark.parametrize("height", [48, 8, 128])
def test_shrinking_needs_an_integer_factor_of_both_sides(height):
    # 64/48 is not an integer; 64/8 = 8 does not divide 44; 128 would be an enlargement.
    with pytest.raises(ValueError, match="cannot shrink"):
        to_model_input(_frames(2, 64, 44), "cpu", height=height)


def test_batched_sequences_shrink_like_single_ones():
    batch = _frames(2, 4, 128, 88, seed=2)
    out = to_model_input(batch, "cpu", height=64)
    assert out.shape == (2, 4, 64, 44)
    for i in range(2):
        torch.testing.assert_close(out[i], to_model_input(batch[i], "cpu", height=64))


# --- cheap profiles: what they scale, and that every cpu config builds and runs -----------------

def _paper_value(model: str, key: str, variant: str = "casia-b"):
    """A model's option at the paper's scale, read from the model module itself."""
    import importlib

    variants = getattr(importlib.import_module(f"gaitlib.models.{model}"), "VARIANTS", None)
    if variants is not None and key in variants[variant]:
        return variants[variant][key]
    return model_options(model)[key]


@pytest.mark.parametrize("model", MODELS)
def test_cheap_options_halve_the_widths(model):
    opts, height = cheap_model_options(model)
    assert height == 32
    assert opts["channels"] == tuple(c // 2 for c in _paper_value(model, "channels"))


@pytest.mark.parametrize("model", ["gaitmm", "local3d", "cstl"])
def test_cheap_options_halve_the_oumvlp_widths(model):
    opts, _ = cheap_model_options(model, {"variant": "oumvlp"})
    assert opts["variant"] == "oumvlp"
    assert opts["channels"] == tuple(c // 2 for c in _paper_value(model, "channels", "oumvlp"))


@pytest.mark.parametrize("model, key, expected", [
    ("gaitset", "bins", (8, 4, 2, 1)),  # (16, 8, 4, 2, 1) halved, the two 1s merged
    ("gaitpart", "parts", 8),
    ("gaitgl", "parts", 32),
    ("gaitmm", "parts", 32),
    ("local3d", "strips", 8),
])
def test_cheap_options_halve_the_strips(model, key, expected):
    opts, _ = cheap_model_options(model)
    assert opts[key] == expected


def test_cstl_strips_follow_its_resolution():
    # CSTL has one part per feature row (K = h / 2): halving the input halves the parts, so the
    # cheap options touch only the resolution and the widths.
    opts, height = cheap_model_options("cstl")
    assert set(opts) == {"resolution", "channels"} and opts["resolution"] == height == 32


@pytest.mark.parametrize("model, resolution, height", [
    ("cstl", 64, 32), ("cstl", 128, 64), ("local3d", 64, 32), ("local3d", 128, 64)])
def test_cheap_options_halve_the_input_resolution(model, resolution, height):
    opts, h = cheap_model_options(model, {"resolution": resolution})
    assert h == height and opts["resolution"] == height
    config = recipe(model, "cpu", options={"resolution": resolution})
    assert config.data.resolution == height and config.model.options["resolution"] == height


def test_models_without_a_resolution_option_get_none():
    opts, height = cheap_model_options("gaitset")
    assert "resolution" not in opts and height == 32
    assert recipe("gaitset", "cpu").data.resolution == 32


@pytest.mark.parametrize("model, switches", [
    ("cstl", {"mste": False, "ssfl": False, "aggregation": "max", "scales": ("frame", "long")}),
    ("local3d", {"blocks": (2, 3), "sampler": "gaussian", "paths": ("head", "arm_l"),
                 "feature_extraction": False}),
    ("gaitmm", {"pme": False, "msma": True, "dwconv": True}),
])
def test_cheap_options_keep_the_ablation_switches(model, switches):
    given = dict(switches)
    opts, _ = cheap_model_options(model, given)
    assert given == switches  # the caller's dict is not edited
    assert {k: opts[k] for k in switches} == switches
    assert recipe(model, "cpu", options=switches).model.options.items() >= switches.items()


def test_cstl_without_ssfl_drops_the_cross_entropy():
    assert recipe("cstl", "paper").loss.ce_weight > 0
    assert recipe("cstl", "paper", options={"ssfl": False}).loss.ce_weight == 0
    assert recipe("cstl", "cpu", options={"ssfl": False}).loss.ce_weight == 0
    assert recipe("cstl", "cpu").loss.ce_weight > 0


def test_unknown_options_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['sffl'\].*valid:.*ssfl"):
        recipe("cstl", "cpu", options={"sffl": False})


CPU_CONFIGS = [(m, "casia-b", {}) for m in MODELS] + [
    ("cstl", "casia-b", {"resolution": 128}), ("local3d", "casia-b", {"resolution": 128}),
    *((m, "oumvlp", {}) for m in ("gaitmm", "local3d", "cstl"))]


@pytest.mark.parametrize("model, dataset, options", CPU_CONFIGS,
                         ids=[f"{m}-{d}{'-' + str(o) if o else ''}" for m, d, o in CPU_CONFIGS])
def test_every_cpu_config_builds_and_runs(model, dataset, options):
    from gaitlib.training.trainer import build_model

    config = recipe(model, "cpu", dataset, options=options)
    h = config.data.resolution
    torch.manual_seed(0)
    net = build_model(config, num_classes=4).train()
    sils = blob_silhouettes(2, 8, h=h, w=int(h * 0.6875))
    with torch.no_grad():
        out = net(sils)
    assert out["embedding"].shape[0] == 2 and torch.isfinite(out["embedding"]).all()


# --- the OU-MVLP-shaped synthetic store -------------------------------------------------------------

def test_synthetic_oumvlp_shape(tmp_path):
    from gaitlib.data import Store
    from gaitlib.data.synthetic import generate
    from gaitlib.evaluation import protocol_for

    start = time.perf_counter()
    generate(tmp_path / "s", n_subjects=2, seed=1, workers=1, progress=False, shape="oumvlp")
    assert time.perf_counter() - start < 10
    store = Store(tmp_path / "s")
    views = {f"{v:03d}" for v in (*range(0, 91, 15), *range(180, 271, 15))}
    assert len(views) == 14
    assert store.dataset == "synthetic-oumvlp" and store.meta["shape"] == "oumvlp"
    assert set(store.views) == views
    assert set(store.conditions) == {"00", "01"}
    assert set(store.subjects) == {"001", "002"}
    assert len(store) == 2 * 2 * 14
    assert protocol_for(store.dataset) == "oumvlp"


def test_synthetic_unknown_shape_is_refused(tmp_path):
    from gaitlib.data.synthetic import generate

    with pytest.raises(ValueError, match="unknown shape 'ou-mvlp'"):
        generate(tmp_path / "s", n_subjects=2, progress=False, shape="ou-mvlp")
    assert not (tmp_path / "s").exists()


# --- the run cache ----------------------------------------------------------------------------------

@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_store(root / "synthetic")
    shutil.copytree(root / "synthetic", root / "synthetic-smoke")  # same content, other profile
    return root


def _key(spec: RunSpec, root: Path, **kw) -> str:
    return run_key(resolve(spec, root, **kw))


def test_run_key_is_stable_for_equal_configs(data_root):
    spec = RunSpec.of("cstl", ssfl=False)
    assert _key(spec, data_root) == _key(RunSpec.of("cstl", ssfl=False), data_root)
    assert re.fullmatch(r"[0-9a-f]{12}", _key(spec, data_root))


def test_run_key_changes_with_what_changes_the_result(data_root):
    base = _key(RunSpec.of("cstl"), data_root)
    assert _key(RunSpec.of("cstl", ssfl=False), data_root) != base
    assert _key(RunSpec.of("cstl", seed=1), data_root) != base
    # Both stores hold the same content: only the profile differs.
    smoke = resolve(RunSpec.of("cstl", profile="smoke"), data_root)
    smoke.data.store = str(data_root / "synthetic")
    assert run_key(smoke) != base


def test_run_key_changes_with_the_store_identity(data_root, tmp_path):
    config = resolve(RunSpec.of("gaitgl"), data_root)
    base = run_key(config)
    other = tmp_path / "other"
    shutil.copytree(data_root / "synthetic", other)
    meta = json.loads((other / "meta.json").read_text())
    meta["n_subjects"] = int(meta["n_subjects"]) + 1
    (other / "meta.json").write_text(json.dumps(meta))
    config.data.store = str(other)
    assert run_key(config) != base


def test_run_key_ignores_what_does_not_change_the_result(data_root, tmp_path):
    spec = RunSpec.of("gaitgl")
    base = _key(spec, data_root)
    config = resolve(spec, data_root, device="cuda", workers=7)
    config.log_every = 3
    assert run_key(config) == base
    # The same store elsewhere (its creation time rewritten too) is the same store.
    moved = tmp_path / "elsewhere" / "store"
    shutil.copytree(data_root / "synthetic", moved)
    meta = json.loads((moved / "meta.json").read_text())
    meta["created"] = "1999-01-01T00:00:00"
    (moved / "meta.json").write_text(json.dumps(meta))
    config.data.store = str(moved)
    assert run_key(config) == base


def test_code_version_is_a_short_hex_hash():
    assert re.fullmatch(r"[0-9a-f]{12}", code_version())


def test_ensure_run_trains_once_then_reuses(tmp_path, data_root, monkeypatch):
    import gaitlib.training.trainer as trainer

    calls = []

    def fake_train(config, run_dir, progress=True, **_):
        calls.append(Path(run_dir))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "eval.json").write_text(json.dumps({"mean": 42.0}))
        (run_dir / "results.json").write_text("{}")

    monkeypatch.setattr(trainer, "train", fake_train)
    spec = RunSpec.of("cstl", ssfl=False)
    runs = tmp_path / "runs"
    first = ensure_run(spec, runs, data_root, device="cpu", progress=False)
    second = ensure_run(spec, runs, data_root, device="cpu", progress=False)
    assert (first.reused, second.reused) == (False, True)
    assert calls == [first.run_dir] and second.run_dir == first.run_dir
    assert second.evaluation == {"mean": 42.0}
    key = _key(spec, data_root, device="cpu")
    assert first.run_dir == runs / f"cstl-{key}"
    written = json.loads((runs / f"cstl-{key}.spec.json").read_text())
    assert written["model"] == "cstl" and written["options"] == {"ssfl": False}
    assert (written["profile"], written["data"], written["seed"]) == ("cpu", "synthetic", 0)


# --- the artifacts and their reported numbers -------------------------------------------------------

def _frozen(options: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))


@pytest.mark.parametrize("aid", ARTIFACT_IDS)
def test_artifact_rows_are_valid(aid):
    art = ARTIFACTS[aid]
    assert art.rows
    for row in art.rows:
        unknown = set(row.options) - set(model_options(row.model))
        assert not unknown, f"{aid} {row.key()}: {unknown} are not {row.model} options"
        if row.shape == "oumvlp":
            assert row.options.get("variant") == "oumvlp" and row.setting in ("miss", "discard")
    keys = [row.key() for row in art.rows]
    assert len(keys) == len(set(keys)), f"{aid}: duplicate row keys"
    assert (aid in available_reported()) == art.reported


@pytest.mark.parametrize("aid", [a for a in ARTIFACT_IDS if ARTIFACTS[a].reported])
def test_every_reported_row_finds_its_reported_lines(aid):
    art, paper = ARTIFACTS[aid], load_reported(aid)
    for row in art.rows:
        if art.kind == "ablation":
            # gaitlib.report.study.ablation looks a row up by ``setting or label`` in the setting
            # column, then in the method column, case-insensitively.
            key = (row.setting or row.label).casefold()
            hit = (paper["setting"].str.casefold() == key) | (paper["method"].str.casefold() == key)
        else:
            hit = (paper["method"] == row.label) & (paper["setting"] == row.setting)
        assert hit.any(), f"{aid}: row {row.key()!r} has no reported line"


def test_the_study_needs_37_runs_and_shares_the_rest():
    rows = [row for art in ARTIFACTS.values() for row in art.rows]
    unique = {(r.model, _frozen(r.options), r.shape) for r in rows}
    assert len(unique) == 37
    # The run cache keys on the spec: the same 37.
    specs = {study.spec_for(r, "synthetic", "cpu", 0) for r in rows}
    assert len(specs) == 37

    def options_of(aid: str, label: str | None = None, setting: str | None = None, last=False) -> dict:
        art = ARTIFACTS[aid]
        if last:
            return art.rows[-1].options
        (row,) = [r for r in art.rows if (label is None or r.label == label)
                  and (setting is None or r.setting == setting)]
        return row.options

    full_cstl = options_of("cstl-t1", "CSTL (ours)", "64x44")
    assert (options_of("cstl-t3", "CSTL") == options_of("cstl-t4", last=True)
            == options_of("cstl-t5", "ATA") == full_cstl)
    assert options_of("local3d-t3", setting="a") == options_of("local3d-t5", setting="a")
    assert options_of("local3d-t3", setting="a") != options_of("local3d-t3", setting="f")
    assert options_of("local3d-t3", setting="f") == options_of("local3d-t1", "3DLocal", "64x44")
    assert options_of("gaitmm-t3", last=True) == options_of("gaitmm-t1", "Ours")
    assert options_of("cstl-f6", "Baseline") == options_of("cstl-t3", "Baseline")


# --- notebook helpers: ordering note, ablation plot, recorded results, scorecard ------------------

def _ablation_table() -> tuple[pd.DataFrame, dict[str, float]]:
    """A hand-built ablation table and each row's mean CI width over its conditions."""
    labels = ["A", "B", "C", "D", "E"]
    reproduced = {"NM": [52.0, 86.0, 61.0, 78.0, 66.0], "BG": [40.0, 70.0, 50.0, 72.0, 58.0]}
    reported = {"NM": [95.0, 96.0, np.nan, 98.0, 97.0], "BG": [88.0, 90.0, np.nan, 93.0, 87.0]}
    half = {"NM": [2.0, 3.0, 9.0, 1.0, 4.0], "BG": [3.0, 5.0, 9.0, 2.0, 6.0]}
    data: dict[str, list] = {}
    for c in ("NM", "BG"):
        data[f"{c} reproduced"] = reproduced[c]
        data[f"{c} ci_low"] = [m - h for m, h in zip(reproduced[c], half[c], strict=True)]
        data[f"{c} ci_high"] = [m + h for m, h in zip(reproduced[c], half[c], strict=True)]
        data[f"{c} reported"] = reported[c]
    table = pd.DataFrame(data, index=pd.Index(labels, name="label"))
    table["Mean reproduced"] = (table["NM reproduced"] + table["BG reproduced"]) / 2
    table["Mean reported"] = (table["NM reported"] + table["BG reported"]) / 2
    widths = {k: (2 * half["NM"][i] + 2 * half["BG"][i]) / 2 for i, k in enumerate(labels)}
    return table, widths


def _as_result(frame: pd.DataFrame) -> AblationResult:
    """The :class:`AblationResult` whose ``to_frame`` holds ``frame``'s numbers (no seeds)."""
    conditions = tuple(c[: -len(" reproduced")] for c in frame.columns
                       if c.endswith(" reproduced") and not c.startswith("Mean"))
    nan = float("nan")
    rows = tuple(AblationRow(
        label=str(label),
        reproduced={c: line[f"{c} reproduced"] for c in (*conditions, "Mean")},
        ci={c: (line[f"{c} ci_low"], line[f"{c} ci_high"]) for c in conditions},
        reported={c: line[f"{c} reported"] for c in (*conditions, "Mean")},
        seed_sd={c: nan for c in (*conditions, "Mean")}) for label, line in frame.iterrows())
    return AblationResult(rows, conditions)


def test_an_ablation_result_round_trips_through_its_frame():
    frame, _ = _ablation_table()
    again = _as_result(frame).to_frame()
    assert list(again.index) == list(frame.index)
    for column in frame.columns:
        assert np.allclose(again[column], frame[column], equal_nan=True), column


def test_ordering_note_names_the_best_rows_and_kendalls_tau():
    from scipy.stats import kendalltau

    table, widths = _ablation_table()
    note = study.ordering_note(table)
    both = table[["Mean reproduced", "Mean reported"]].dropna()
    assert list(both.index) == ["A", "B", "D", "E"]  # C has no reported numbers
    tau = kendalltau(both["Mean reproduced"], both["Mean reported"]).statistic
    assert f"Kendall's tau between this edition's and the paper's row means: {tau:+.2f} over 4 rows" \
        in note
    assert "The paper's best row is *D*; this edition's is *B*." in note
    assert "Spearman" not in note and "rank correlation" not in note  # one statistic
    assert widths  # the CIs stay on the table itself


def test_ordering_note_needs_three_rows():
    table, _ = _ablation_table()
    assert "too few to compare orderings" in study.ordering_note(table.loc[["A", "B", "C"]])


def test_plot_ablation_draws_a_bar_per_row_and_condition():
    frame, _ = _ablation_table()
    table = _as_result(frame)
    fig = study.plot_ablation(table, "t")
    try:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert len(ax.patches) == len(table) * 2  # NM and BG; 'Mean' is not plotted
        assert [t.get_text() for t in ax.get_xticklabels()] == list(frame.index)
        heights = sorted(round(p.get_height(), 6) for p in ax.patches)
        assert heights == sorted(frame[["NM reproduced", "BG reproduced"]].to_numpy().ravel())
        assert ax.get_title() == "t"
    finally:
        plt.close(fig)


def _entry(aid: str, data: str, profile: str, table: list[dict]) -> dict:
    return {"artifact": aid, "data": data, "profile": profile, "recorded": "2024-01-01T00:00:00",
            "git_commit": "", "runs": {}, "table": table}


def _write(results: Path, entry: dict) -> None:
    folder = results / entry["artifact"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{entry['data']}-{entry['profile']}.json").write_text(json.dumps(entry))


def _ablation_records(mean: float) -> list[dict]:
    return [{"label": "Baseline", "Mean reproduced": mean - 10, "Mean reported": 80.0},
            {"label": "CSTL", "Mean reproduced": mean, "Mean reported": 90.0}]


def test_recorded_puts_real_data_and_the_paper_profile_first(tmp_path):
    order = [("casia-b", "paper"), ("casia-b", "cpu-long"), ("casia-b", "cpu"), ("synthetic", "paper"),
             ("synthetic", "cpu"), ("synthetic", "smoke")]
    # Written in an order that matches neither the expected one nor the file names' order.
    for data, profile in (order[4], order[2], order[5], order[0], order[3], order[1]):
        _write(tmp_path, _entry("cstl-t3", data, profile, []))
    got = [(e["data"], e["profile"]) for e in records.recorded(tmp_path, "cstl-t3")]
    assert got == order
    assert records.recorded(tmp_path, "cstl-t4") == []


def test_scorecard_lists_every_artifact(tmp_path):
    _write(tmp_path, _entry("cstl-t3", "synthetic", "cpu", _ablation_records(50.0)))
    _write(tmp_path, {**_entry("cstl-t3", "casia-b", "paper", _ablation_records(88.0)),
                      "binarized": True})
    main = [{"method": "Ours", "setting": "", "condition": "NM", "reproduced": 80.0, "reported": 97.0},
            {"method": "Ours", "setting": "", "condition": "BG", "reproduced": 70.0, "reported": 94.0},
            {"method": "GaitSet", "setting": "", "condition": "NM", "reproduced": None, "reported": 95.0}]
    _write(tmp_path, _entry("gaitmm-t1", "synthetic", "cpu", main))
    _write(tmp_path, _entry("local3d-f4", "synthetic", "cpu", []))
    card = study.scorecard(tmp_path)
    assert list(card.index) == list(ARTIFACT_IDS)
    # the page's result: the most faithful one, named by what it ran on
    assert (card.loc["cstl-t3", "page shows"], card.loc["cstl-t3", "profile"]) == \
        ("real CASIA-B (binarized)", "paper")
    assert card.loc["gaitmm-t1", "page shows"] == "synthetic"
    # the paper's own model: the last ablation row, the first main-table row; no delta column
    assert (card.loc["cstl-t3", "full model here"], card.loc["cstl-t3", "paper"]) == (88.0, 90.0)
    assert "delta" not in card.columns
    assert card.loc["cstl-t3", "rows run"] == "2"
    assert card.loc["gaitmm-t1", "full model here"] == 75.0
    assert card.loc["gaitmm-t1", "paper"] == 95.5
    assert card.loc["gaitmm-t1", "rows run"] == "1"  # GaitSet has only the paper's numbers
    assert card.loc["gaitmm-t1", ORDERING_COLUMN] == "1 row: too few to compare"
    assert "figure" in card.loc["local3d-f4", ORDERING_COLUMN]
    missing = [a for a in ARTIFACT_IDS if a not in ("cstl-t3", "gaitmm-t1", "local3d-f4")]
    assert (card.loc[missing, "page shows"] == "not run yet").all()
    assert card.loc[missing, "full model here"].isna().all()
    # no dry run yet: every artifact says its device-hours are not measured
    assert card["paper scale"].str.contains("not yet measured").all()


def test_a_page_shows_its_other_editions(tmp_path):
    here = code_version()
    same = {**_entry("cstl-t3", "synthetic", "cpu", _ablation_records(50.0)),
            "git_commit": "a" * 40 + "+dirty", "recorded": "2026-01-02T00:00:00",
            "code_version": here}
    old = {**_entry("cstl-t3", "synthetic", "smoke", _ablation_records(10.0)), "git_commit": "b" * 40,
           "code_version": "0123456789ab"}
    for e in (same, old):
        _write(tmp_path, e)
    text = study.other_results("cstl-t3", tmp_path, "cpu", "casia-b")
    # the real-data page shows the synthetic edition, its table and its provenance
    assert "### The synthetic edition (cpu profile)" in text
    assert "Recorded 2026-01-02 at commit aaaaaaaaaaaa (`book/results/cstl-t3/synthetic-cpu.json`)" in text
    assert "| row | Mean (paper) |" in text and "| CSTL | 50.0 (90.0) |" in text
    # another code version's numbers are shown, and said to come from another version
    assert "### The synthetic edition (smoke profile)" in text and "| CSTL | 10.0 (90.0) |" in text
    assert f"by code version 0123456789ab, not this page's ({here})" in text
    assert text.count("by code version") == 1  # the record of this code version says nothing
    assert study.other_results("cstl-t4", tmp_path, "cpu", "casia-b").startswith("No other edition")
    main = [{"method": "Ours", "setting": "", "condition": "NM", "reproduced": 80.0,
             "ci_low": 70.0, "ci_high": 90.0, "reported": 97.0, "delta": -17.0}]
    shown = records.record_markdown(pd.DataFrame(main))
    assert shown.splitlines()[2] == "| Ours | - | NM | 80.0 | [70.0, 90.0] | 97.0 |"


def test_per_view_comparison_puts_the_paper_under_each_reproduced_row(result_table):
    result = SimpleNamespace(table=result_table)
    out = study.per_view_comparison("cstl-t1", result)
    assert list(out.index) == [("NM", "here"), ("NM", "paper"), ("BG", "here"), ("BG", "paper"),
                               ("CL", "here"), ("CL", "paper")]
    paper = compare.reported("cstl-t1")
    nm = paper[(paper.method == "CSTL (ours)") & (paper.setting == "64x44") & (paper.condition == "NM")]
    assert out.loc[("NM", "paper"), "Mean"] == nm["Mean"].item()
    assert out.loc[("NM", "here"), "Mean"] == result_table.loc["NM", "Mean"]
    assert "'paper'" in out.attrs["caption"] and "Table 1" in out.attrs["caption"]
    assert display.caption_for(out) == out.attrs["caption"]


@pytest.fixture
def result_table() -> pd.DataFrame:
    views = [f"{v:03d}" for v in range(0, 181, 18)]
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.uniform(20, 60, (3, 11)), index=["NM", "BG", "CL"], columns=views)
    table["Mean"] = table.mean(axis=1)
    return table


def test_with_reported_means_adds_the_papers_table1_means():
    table = pd.DataFrame([{"method": "Ours", "params": 8e6, "params in this run": 1e6, "accuracy": 40.0,
                           "source": "reproduced"},
                          {"method": "Ours (DWConv)", "params": 3e6, "params in this run": 4e5,
                           "accuracy": 35.0, "source": "reproduced"}])
    out = study.with_reported_means(table)
    rep = out[out.source == "reported"].set_index("method")
    assert list(rep.index) == ["Ours"]  # the paper gives no Table 1 number for the DWConv variant
    assert rep.loc["Ours", "accuracy"] == pytest.approx((98.0 + 95.6 + 87.2) / 3)
    assert rep.loc["Ours", "params"] == 8e6


def test_every_study_name_the_notebooks_call_exists():
    # The notebooks call ``study.<name>``; names that moved to compare/records/display stay
    # importable from study, so a split of the module cannot break a page silently.
    notebooks = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
    names = {n for nb in notebooks for n in re.findall(r"\bstudy\.([A-Za-z_]+)", nb.read_text())}
    assert {"runs_for", "show", "record", "other_results"} <= names
    assert sorted(n for n in names if not hasattr(study, n)) == []


def test_learning_curves_come_from_the_most_faithful_record_with_points(tmp_path):
    from gaitlib.figures import plot_learning_curves
    from gaitlib.report.curves import learning_curves

    assert learning_curves(tmp_path).empty
    main = [{"method": m, "setting": "", "condition": c, "reproduced": 10.0, "reported": r}
            for m, r in (("Ours", 97.0), ("GaitSet", 95.0)) for c in ("NM", "BG", "CL")]
    curve = [{"iteration": it, "rank1": {"NM": v, "BG": v - 5, "CL": v - 10}}
             for it, v in ((100, 20.0), (400, 40.0))]
    runs = {"Ours": {"model": "gaitmm"}, "GaitSet": {"model": "gaitset"}}
    _write(tmp_path, _entry("gaitmm-t1", "casia-b", "cpu", main))  # no curves: not used
    _write(tmp_path, {**_entry("gaitmm-t1", "synthetic", "cpu-long", main), "runs": runs,
                      "test_subjects": 50, "curves": {"Ours": curve, "GaitSet": curve[:1]}})
    # the same GaitSet run in another main table is taken once
    cstl = [{"method": "GaitSet", "setting": "64x44", "condition": "NM", "reproduced": 1.0,
             "reported": 95.0}]
    _write(tmp_path, {**_entry("cstl-t1", "synthetic", "cpu-long", cstl),
                      "runs": {"GaitSet (64x44)": {"model": "gaitset"}},
                      "curves": {"GaitSet (64x44)": curve}})
    found = learning_curves(tmp_path)
    assert found.sources == ("gaitmm-t1 (synthetic-cpu-long)",) and found.test_subjects == 50
    mm = found.points[found.points["model"] == "GaitMM"]
    assert sorted(mm["iteration"].unique()) == [100, 400] and len(mm) == 6
    assert mm.set_index(["iteration", "condition"]).loc[(400, "CL"), "rank1"] == 30.0
    assert len(found.points[found.points["model"] == "GaitSet"]) == 3
    assert found.reported.set_index(["model", "condition"]).loc[("GaitMM", "NM"), "rank1"] == 97.0
    fig = plot_learning_curves(found.points, found.reported)
    try:
        assert [ax.get_title() for ax in fig.axes] == ["NM", "BG", "CL"]
        assert len(fig.axes[0].lines) == 4  # two curves and two reported lines
    finally:
        plt.close(fig)
