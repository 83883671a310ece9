"""Artifact figures (view heatmaps, t-SNE, SSFL selection, local volumes, fusion weights,
accuracy vs parameters) and the reproduced-vs-reported tables."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from gaitlib import models  # noqa: E402
from gaitlib.analysis.ablation import ablation_table  # noqa: E402
from gaitlib.analysis.tables import (  # noqa: E402
    compare_with_reported,
    format_comparison,
    style_comparison,
)
from gaitlib.evaluation import evaluate  # noqa: E402
from gaitlib.figures import (  # noqa: E402
    pick_identities,
    plot_accuracy_vs_parameters,
    plot_fusion_weights,
    plot_local_volumes,
    plot_ssfl_selection,
    plot_tsne,
    plot_tsne_pair,
    plot_view_heatmaps,
    tsne_embedding,
)
from gaitlib.models.local_block import PARTS  # noqa: E402
from tests.conftest import blob_silhouettes  # noqa: E402

VIEWS = ("000", "018", "036", "054")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _random_result(seed: int = 0, noise: float = 1.0, bootstrap: int = 200):
    """EvaluationResult on subject signal + noise: intermediate accuracies, real CIs."""
    rng = np.random.default_rng(seed)
    n_subj = 8
    centres = rng.normal(size=(n_subj, 6, 2))
    conds = ["nm-01", "nm-02", "nm-05", "nm-06", "bg-01", "bg-02", "cl-01", "cl-02"]
    rows = [(f"{s:03d}", c, v) for s in range(n_subj) for c in conds for v in VIEWS]
    noise_by = {"nm": noise, "bg": 1.3 * noise, "cl": 1.7 * noise}
    feats = np.stack([centres[int(s)] + noise_by[c[:2]] * rng.normal(size=(6, 2))
                      for s, c, _ in rows]).astype(np.float32)
    s, c, v = (list(x) for x in zip(*rows, strict=True))
    return evaluate(feats, s, c, v, "casia-b", bootstrap=bootstrap, seed=seed)


@pytest.fixture(scope="module")
def result():
    return _random_result()


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

def test_view_heatmaps_annotate_off_diagonal_and_hatch_diagonal(result):
    fig = plot_view_heatmaps(result, title="t")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 + 1  # NM, BG, CL and the colour bar
    v = len(VIEWS)
    for ax, row in zip(fig.axes[:3], ("NM", "BG", "CL"), strict=True):
        acc = result.view_accuracy[row].to_numpy()
        texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
                 for t in ax.texts}
        assert len(texts) == v * (v - 1)  # every cell but the diagonal
        assert all(i != j for i, j in texts)
        for (i, j), text in texts.items():
            assert text == f"{acc[i, j]:.0f}"
        hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]
        assert sorted(p.get_xy() for p in hatched) == [(i - 0.5, i - 0.5) for i in range(v)]
        assert ax.images[0].get_array().mask.diagonal().all()  # the diagonal is not coloured
        assert f"{result.table.loc[row, 'Mean']:.1f}" in ax.get_title()
        # legible in the book: no label under 9 pt
        assert min(t.get_fontsize() for t in ax.texts) >= 9
        assert min(t.get_fontsize() for t in ax.get_xticklabels()) >= 9


def test_view_heatmaps_of_casia_b_fit_a_book_column():
    """Eleven views, three rows: stacked panels no wider than a book column (~8 inches at
    100 dpi), so the page shows the 9 pt labels at full size."""
    views = [f"{v:03d}" for v in range(0, 181, 18)]
    rng = np.random.default_rng(0)
    acc = {r: pd.DataFrame(rng.uniform(0, 100, (11, 11)), index=views, columns=views)
           for r in ("NM", "BG", "CL")}
    table = pd.DataFrame({**{v: [50.0] * 3 for v in views}, "Mean": [50.0] * 3}, index=list(acc))
    fig = plot_view_heatmaps(SimpleNamespace(table=table, view_accuracy=acc, protocol="casia-b"))
    assert fig.get_figwidth() <= 8.0
    assert min(t.get_fontsize() for ax in fig.axes[:3] for t in ax.texts) >= 9


def _clustered(n_ids: int = 10, per_id: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=8.0, size=(n_ids, 4, 3))
    subjects = np.repeat([f"{i:03d}" for i in range(n_ids)], per_id)
    feats = np.stack([centres[i // per_id] + rng.normal(scale=0.3, size=(4, 3))
                      for i in range(n_ids * per_id)])
    return feats.astype(np.float32), subjects


def test_tsne_is_seeded_and_keeps_identities_together():
    feats, subjects = _clustered()
    fig = plot_tsne(feats, subjects, title="x", seed=1)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.collections) == 10  # one scatter per identity
    again = plot_tsne(feats, subjects, seed=1).axes[0]
    for a, b in zip(ax.collections, again.collections, strict=True):
        np.testing.assert_allclose(a.get_offsets(), b.get_offsets())
    # Well separated (n, c, p) clusters stay clusters: each point's nearest neighbour in the
    # embedding is of its own identity.
    pts = tsne_embedding(feats, seed=1)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert (subjects[d.argmin(1)] == subjects).all()
    # Drawn into a given axes: the caller's figure comes back.
    outer, axes = plt.subplots(1, 2)
    assert plot_tsne(feats[:6], subjects[:6], ax=axes[1], legend=False) is outer
    with pytest.raises(ValueError, match="at least 3"):
        tsne_embedding(feats[:2])


def test_tsne_pair_same_colour_per_identity_in_both_panels():
    feats, subjects = _clustered(n_ids=4, per_id=3)
    other = feats[:, ::-1].copy()
    fig = plot_tsne_pair(feats, other, subjects, ("baseline", "CSTL"))
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["baseline", "CSTL"]
    colours = [[tuple(c.get_facecolor()[0]) for c in ax.collections] for ax in fig.axes]
    assert colours[0] == colours[1] and len(set(colours[0])) == 4
    with pytest.raises(ValueError, match="feats_b"):
        plot_tsne_pair(feats, other[:-1], subjects)


def test_pick_identities_selects_whole_identities():
    subjects = np.repeat([f"{i:03d}" for i in range(15)], 4)
    mask = pick_identities(subjects, k=10, seed=2)
    assert len(set(subjects[mask])) == 10 and mask.sum() == 40
    assert (pick_identities(subjects, k=10, seed=2) == mask).all()
    with pytest.raises(ValueError, match="15"):
        pick_identities(subjects, k=16)


def test_ssfl_composite_takes_each_part_from_its_frame():
    t, h, w, k = 7, 16, 11, 8
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(t, h, w), dtype=np.uint8)
    index = np.array([0, 0, 3, 3, 3, 6, 2, 5])
    fig = plot_ssfl_selection(frames, index, parts=k, n_frames=3, source="synthetic")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    ax_frames, ax_comp, ax_hist = fig.axes
    composite = np.asarray(ax_comp.images[0].get_array())[:, :w, 0]
    rows = h // k
    for part, f in enumerate(index):
        np.testing.assert_allclose(composite[part * rows:(part + 1) * rows],
                                   frames[f, part * rows:(part + 1) * rows] / 255, atol=1e-6)
    heights = [p.get_height() for p in ax_hist.patches]
    assert heights == np.bincount(index, minlength=t).tolist()
    # The three most picked frames (3 picks, 2 picks, then the earliest single pick), in order.
    labels = [txt.get_text().split("\n")[0] for txt in ax_frames.texts]
    assert labels == ["t=0", "t=2", "t=3"]
    with pytest.raises(ValueError, match="index must lie"):
        plot_ssfl_selection(frames, np.array([0, 7]), source="synthetic")
    with pytest.raises(ValueError, match="parts=4"):
        plot_ssfl_selection(frames, index, parts=4, source="synthetic")


def test_ssfl_selection_from_a_cstl_forward():
    torch.manual_seed(0)
    model = models.build("cstl", resolution=32, num_classes=3).eval()
    sils = blob_silhouettes(1, 6, 32, 22, seed=1)
    with torch.no_grad():
        out = model(sils)
    index = out["ssfl_index"][0]  # eval mode has it too
    fig = plot_ssfl_selection(sils[0], index, parts=model.parts, source="synthetic")
    assert len(fig.axes) == 3
    assert sum(p.get_height() for p in fig.axes[2].patches) == model.parts


@pytest.fixture(scope="module")
def inspection():
    torch.manual_seed(0)
    model = models.build("local3d", channels=(4, 8, 8), num_classes=3).eval()
    sils = blob_silhouettes(2, 5, 64, 44, seed=2)
    return model.inspect(sils), sils


def test_local_volumes_one_row_per_path(inspection):
    info, sils = inspection
    fig = plot_local_volumes(info, sample=1, n_slices=3, source="synthetic")
    assert isinstance(fig, Figure) and len(fig.axes) == len(PARTS) * 3
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == list(PARTS)
    assert fig.get_suptitle().endswith("6/6 paths on the map in every frame")
    # Slices are the channel mean of the sampled volume.
    vol = info["volumes"]["1"]["head"]["volume"][1].mean(0).numpy()
    np.testing.assert_allclose(np.asarray(fig.axes[0].images[0].get_array()), vol[0], rtol=1e-6)
    with pytest.raises(ValueError, match="available: 1, 2, 3"):
        plot_local_volumes(info, block=4, source="synthetic")


@pytest.mark.parametrize("block", ["1", "3"])
def test_local_volume_grids_drawn_at_the_part_priors(inspection, block):
    info, sils = inspection
    fig = plot_local_volumes(info, block=block, sils=sils, n_slices=2, source="synthetic")
    assert len(fig.axes) == len(PARTS) * 2 + 1
    overview = fig.axes[-1]
    boxes = {p.get_label(): p for p in overview.patches}
    assert set(boxes) == set(PARTS)
    # An untrained path looks at its prior: centre (c_x W, c_y H) of the 64x44 input, and a
    # box the prior's size, whichever block's map the grid lives on.
    for part, (cx, cy, ph, pw) in PARTS.items():
        x0, y0 = boxes[part].get_xy()
        width, height = boxes[part].get_width(), boxes[part].get_height()
        assert x0 + width / 2 == pytest.approx(cx * 44 - 0.5, abs=1.0)
        assert y0 + height / 2 == pytest.approx(cy * 64 - 0.5, abs=1.0)
        assert width == pytest.approx(pw * 44, rel=0.05)
        assert height == pytest.approx(ph * 64, rel=0.05)


def test_fusion_weights_bars(inspection):
    info, _ = inspection
    fig = plot_fusion_weights(info)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["global", *PARTS]
    bars = ax.patches
    assert len(bars) == 3 * len(labels)
    heights = [b.get_height() for b in bars]
    expected = [info["fusion_weights"][b][name] for b in ("1", "2", "3") for name in labels]
    np.testing.assert_allclose(heights, expected)
    # The bare mapping works too.
    assert len(plot_fusion_weights(info["fusion_weights"]).axes[0].patches) == len(bars)


def test_accuracy_vs_parameters():
    df = pd.DataFrame({
        "method": ["GaitSet", "GaitSet", "GaitGL", "GaitMM", "GaitMM-DW"],
        "params": [2.59e6, 2.59e6, 3.10e6, 4.0e6, 1.5e6],
        "accuracy": [84.2, 83.1, 91.8, 92.0, 90.5],
        "source": ["reported", "reproduced", "reported", "reproduced", "Reproduced "],
    })
    fig = plot_accuracy_vs_parameters(df, title="Fig. 2")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert len(ax.collections) == 5  # one marker group per (method, source)
    assert len(ax.lines) == 1  # GaitSet's reported and reproduced joined
    assert sorted(t.get_text() for t in ax.texts) == sorted(set(df["method"]))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["reproduced", "reported"]
    with pytest.raises(ValueError, match="params"):
        plot_accuracy_vs_parameters(df.drop(columns="params"))
    with pytest.raises(ValueError, match="source"):
        plot_accuracy_vs_parameters(df.assign(source="paper"))


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

def _reported(lines):
    """(method, setting, condition, Mean) lines -> the reported format, views left NaN."""
    df = pd.DataFrame(lines, columns=["method", "setting", "condition", "Mean"])
    for v in VIEWS:
        df[v] = np.nan
    return df


def test_compare_with_reported_deltas_and_ci(result):
    reported = _reported([
        ("GaitSet", "64x44", "NM", 95.0), ("GaitSet", "64x44", "BG", 87.2),
        ("GaitSet", "64x44", "CL", 70.4),
        ("GaitSet", "128x88", "NM", 96.1), ("GaitSet", "128x88", "BG", 90.0),
        ("GaitSet", "128x88", "CL", 75.0),
        ("CSTL", "64x44", "NM", 97.8), ("CSTL", "64x44", "BG", 93.6), ("CSTL", "64x44", "CL", 84.2),
    ])
    table = compare_with_reported(result, reported, " gaitset", setting="64X44 ")
    assert list(table.index) == ["NM", "BG", "CL"]
    paper = {"NM": 95.0, "BG": 87.2, "CL": 70.4}
    for cond, value in paper.items():
        mean = result.table.loc[cond, "Mean"]
        assert table.loc[cond, "reported"] == value
        assert table.loc[cond, "reproduced"] == mean
        assert table.loc[cond, "delta"] == pytest.approx(mean - value)
        assert table.loc[cond, "ci_low"] == result.ci.loc[cond, "low"]
        assert table.loc[cond, "ci_high"] == result.ci.loc[cond, "high"]
        assert table.loc[cond, "ci_low"] < mean < table.loc[cond, "ci_high"]
        np.testing.assert_array_equal(table.loc[cond, list(VIEWS)].to_numpy(float),
                                      result.table.loc[cond, list(VIEWS)].to_numpy(float))
    other = compare_with_reported(result, reported, "GaitSet", setting="128x88")
    assert other.loc["NM", "reported"] == 96.1

    with pytest.raises(KeyError, match="'GaitSet', 'CSTL'"):
        compare_with_reported(result, reported, "GaitSett")
    with pytest.raises(KeyError, match="'64x44', '128x88'"):
        compare_with_reported(result, reported, "GaitSet", setting="32x22")
    with pytest.raises(ValueError, match="pass setting"):
        compare_with_reported(result, reported, "GaitSet")  # two settings: ambiguous
    # Only one setting there: no need to name it.
    assert compare_with_reported(result, reported, "cstl").loc["CL", "reported"] == 84.2


def test_compare_with_a_bare_table_has_no_ci():
    table = pd.DataFrame({"000": [90.0, 80.0, 60.0], "090": [94.68, 82.0, 64.0]},
                         index=["NM", "BG", "CL"])
    table["Mean"] = table.mean(axis=1)
    reported = _reported([("M", "", "nm", 90.0), ("M", "", "BG", 85.0)])
    out = compare_with_reported(table, reported, "M")
    assert out.loc["NM", "delta"] == pytest.approx(92.34 - 90.0)
    assert out.loc["BG", "delta"] == pytest.approx(81.0 - 85.0)
    assert np.isnan(out.loc["CL", "reported"]) and np.isnan(out.loc["CL", "delta"])
    assert out[["ci_low", "ci_high"]].isna().all().all()
    shown = format_comparison(out)
    assert shown.loc["NM", "delta"] == "+2.3" and shown.loc["BG", "delta"] == "-4.0"
    assert shown.loc["NM", "reproduced"] == "92.3" and shown.loc["CL", "reported"] == "\N{EM DASH}"
    assert "95% CI" in shown.columns and "ci_low" not in shown.columns
    html = style_comparison(out).to_html()
    assert "+2.3" in html and "-4.0" in html and "92.3" in html


def test_ablation_table(result):
    weaker = _random_result(seed=1, noise=1.6)
    reported = _reported([
        ("CSTL", "baseline", "NM", 93.5), ("CSTL", "baseline", "BG", 85.0),
        ("CSTL", "baseline", "CL", 70.1),
        ("CSTL", "+MSTE", "Mean", 88.8),  # the paper gives only the mean here
        ("GaitSet", "baseline", "NM", 1.0),
    ])
    rows = {"Baseline": weaker, "+ MSTE": result}
    table = ablation_table(rows, reported, method="CSTL")
    assert table.labels == ["Baseline", "+ MSTE"] and table.conditions == ("NM", "BG", "CL")
    frame = table.to_frame()  # every cell a number
    assert all(pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns)
    base = frame.loc["Baseline"]
    for cond, value in {"NM": 93.5, "BG": 85.0, "CL": 70.1}.items():
        mean = weaker.table.loc[cond, "Mean"]
        assert base[f"{cond} reproduced"] == mean
        assert base[f"{cond} reported"] == value
        assert base[f"{cond} delta"] == pytest.approx(mean - value)
        low, high = weaker.ci.loc[cond]
        assert (base[f"{cond} ci_low"], base[f"{cond} ci_high"]) == (low, high)
    assert base["Mean reported"] == pytest.approx((93.5 + 85.0 + 70.1) / 3)
    assert base["Mean reproduced"] == pytest.approx(weaker.table["Mean"].mean())
    mste = frame.loc["+ MSTE"]
    assert np.isnan(mste["NM reported"]) and np.isnan(mste["NM delta"])
    assert mste["Mean reported"] == 88.8
    assert mste["Mean delta"] == pytest.approx(result.table["Mean"].mean() - 88.8)
    shown = format_comparison(table)
    assert shown.loc["+ MSTE", "Mean delta"] == f"{mste['Mean delta']:+.1f}"
    body = style_comparison(table).to_html().split("<tbody>")[1]
    assert body.count("<tr") == 2  # one per ablation row
    nm_ci = f"[{base['NM ci_low']:.1f}, {base['NM ci_high']:.1f}]"
    assert f">{mste['Mean delta']:+.1f}<" in body and f">{nm_ci}<" in body
    assert shown.loc["Baseline", "NM 95% CI"] == nm_ci and "NM ci_low" not in shown.columns

    with pytest.raises(KeyError, match="'baseline', '\\+MSTE'"):
        ablation_table({"+ATA": result}, reported, method="CSTL")
    with pytest.raises(KeyError, match="'CSTL', 'GaitSet'"):
        ablation_table(rows, reported, method="GaitMM")
    # Without a method the label is looked up in the settings; 'baseline' is there twice.
    with pytest.raises(ValueError, match="more than once"):
        ablation_table({"baseline": result}, reported)
    renamed = ablation_table({"full": result}, reported, method="CSTL", keys={"full": "+MSTE"})
    assert renamed.row("full").reported["Mean"] == 88.8
