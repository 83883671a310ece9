"""The ablation claims against seed noise: the seed SD of a delta, the verdicts, and that a rebuild
without extra seeds keeps a page and a record made with them."""

from __future__ import annotations

import json
import math

import nbformat
import pandas as pd
import pytest

from gaitlib.analysis import claims
from gaitlib.analysis.ablation import AblationResult, AblationRow, PairedDelta
from gaitlib.papers.artifacts import artifact
from gaitlib.report import evidence


def _cell(delta, ci, paper, sd=None):
    return {"delta": delta, "delta_ci": ci, "excludes_zero": ci is not None and (ci[0] > 0 or ci[1] < 0),
            "paper_delta": paper, "seed_sd": sd}


def _table(rows: dict, reference: str, **context) -> AblationResult:
    """An ablation whose paired deltas are ``rows`` (label -> condition -> :func:`_cell`)."""
    nan = math.nan
    conditions = ("NM", "BG", "CL")
    built = []
    for label, cells in rows.items():
        paired = {c: PairedDelta(cell["delta"], *(cell["delta_ci"] or (nan, nan)),
                                 cell["paper_delta"], nan if cell["seed_sd"] is None else cell["seed_sd"])
                  for c, cell in cells.items()}
        blank = {c: nan for c in (*conditions, "Mean")}
        built.append(AblationRow(label, dict(blank), {c: (nan, nan) for c in conditions},
                                 dict(blank), dict(blank), paired))
    return AblationResult(tuple(built), conditions, reference=reference, **context)


def _record(tmp_path, aid, data="synthetic", seeds=(0, 1, 2, 3, 4), full=(6.0, (2.0, 9.0)),
            middle=(-5.0, (-8.0, -2.0)), sds=(1.0, 2.0)):
    art = artifact(aid)
    ref, full_key = art.reference_row().key(), art.rows[-1].key()
    others = [r.key() for r in art.rows if r.key() not in (ref, full_key)]
    rows = {ref: {c: _cell(0.0, None, 0.0, sds[0]) for c in claims.CONDITIONS},
            full_key: {c: _cell(full[0], full[1], 4.0, sds[1]) for c in claims.CONDITIONS}}
    for key in others:
        rows[key] = {c: _cell(middle[0], middle[1], 1.0) for c in claims.CONDITIONS}
    payload = {"artifact": aid, "data": data, "profile": "cpu", "recorded": "2026-12-04T00:00:00",
               "git_commit": "abc", "runs": {}, "table": [{"label": ref}],
               "paired": {"reference": ref, "rows": rows}, "seeds": list(seeds)}
    out = tmp_path / aid / f"{data}-cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload))
    return ref, full_key, others


def test_seed_sd_of_a_delta_adds_the_two_rows_variances():
    rows = {"ref": {"NM": {"seed_sd": 3.0}}, "full": {"NM": {"seed_sd": 4.0}},
            "other": {"NM": {"seed_sd": None}}}
    assert claims.delta_seed_sd(rows, "ref", "full", "NM") == (5.0, "measured")
    sd, source = claims.delta_seed_sd(rows, "ref", "other", "NM")
    assert source == "pooled" and sd == pytest.approx(math.hypot(3.0, math.sqrt((9 + 16) / 2)))
    rows["ref"]["NM"]["seed_sd"] = None
    sd, source = claims.delta_seed_sd(rows, "ref", "full", "NM")
    assert math.isnan(sd) and source == ""


@pytest.mark.parametrize("delta,excludes,sd,paper,expected,seen", [
    (6.0, True, 2.0, 4.0, "supported", "same sign as the paper, beyond seed noise"),
    (-6.0, True, 2.0, 4.0, "contradicted", "opposite sign to the paper, beyond seed noise"),
    (3.0, True, 2.0, 4.0, "unresolved", "not resolved"),  # within two seed SDs
    (6.0, False, 2.0, 4.0, "unresolved", "not resolved"),  # the CI covers 0
    (6.0, True, math.nan, 4.0, "unresolved", "not resolved"),  # no seeds: training noise unknown
])
def test_verdicts_only_at_the_papers_scale(delta, excludes, sd, paper, expected, seen):
    assert claims.verdict(delta, excludes, sd, paper, "paper") == expected
    assert claims.verdict(delta, excludes, sd, paper, "cpu") == seen  # what was seen, no verdict


def test_claims_per_table(tmp_path):
    ref, full, others = _record(tmp_path, "cstl-t3")
    table = evidence.recorded_claims(tmp_path)
    assert set(table["artifact"]) == {"cstl-t3"} and ref not in set(table["row"])
    # GaitSet and GaitPart are shown on CSTL's Table 3 but are not CSTL's claims
    own = [r for r in others if r not in ("GaitSet", "GaitPart")]
    assert len(own) == len(others) - 2 and set(table["row"]) == {full, *own}
    assert len(table) == (1 + len(own)) * len(claims.CONDITIONS)
    line = table[(table["row"] == full) & (table["condition"] == "Mean")].iloc[0]
    assert line["seed SD of delta"] == pytest.approx(math.hypot(1.0, 2.0))
    # a cpu-profile record says what was seen; only the paper's scale gives verdicts
    assert line["beyond 2 seed SD"] and line["outcome"] == "agrees"
    assert line["verdict"] == "same sign as the paper, beyond seed noise"
    assert line["scale"] == "at the cpu profile"  # the record names no iterations
    other = table[(table["row"] == own[0]) & (table["condition"] == "NM")].iloc[0]
    assert other["SD from"] == "pooled" and other["outcome"] == "opposes"  # -5 against +1
    counts = claims.verdict_counts(table)
    assert counts.loc["cstl-t3", "full model"] == "same sign as the paper, beyond seed noise"
    assert counts.loc["cstl-t3", "opposite sign, beyond noise"] == len(own)
    assert counts.loc["cstl-t3", "seeds"] == 5
    shown = claims.readable(table)
    assert shown.loc[("cstl-t3", full, "Mean"), "delta [95% CI]"] == "+6.0 [+2.0, +9.0] *"


def test_a_record_without_seeds_resolves_nothing(tmp_path):
    _record(tmp_path, "local3d-t4", seeds=(0,), sds=(None, None))
    table = evidence.recorded_claims(tmp_path)
    assert set(table["outcome"]) == {"unresolved"} and table["beyond 2 seed SD"].isna().all()


def test_the_page_shown_decides(tmp_path):
    _record(tmp_path, "cstl-t5", data="synthetic")
    real = tmp_path / "cstl-t5" / "casia-b-cpu.json"  # the page shows real data: no deltas recorded
    real.write_text(json.dumps({"artifact": "cstl-t5", "data": "casia-b", "profile": "cpu",
                                "recorded": "x", "git_commit": "y", "runs": {}, "table": []}))
    assert evidence.recorded_claims(tmp_path).empty
    assert claims.verdict_counts(pd.DataFrame()).empty


# --- a rebuild without extra seeds keeps what was made with them ----------------------------------

def test_a_rebuild_without_seeds_keeps_the_seeded_page(tmp_path):
    from gaitlib.publish.notebooks import more_faithful_published

    page = tmp_path / "cstl-t3.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": {"data": "casia-b", "profile": "cpu", "extra_seeds": "1,2,3,4"}}
    nbformat.write(nb, page)
    assert more_faithful_published(page, {"data": "casia-b", "profile": "cpu", "extra_seeds": ""},
                                   "cstl-t3") == "casia-b/cpu, 5 seeds"
    same = {"data": "casia-b", "profile": "cpu", "extra_seeds": "1,2,3,4"}
    assert more_faithful_published(page, same, "cstl-t3") == ""
    # a more faithful profile wins over seeds
    assert more_faithful_published(page, {"data": "casia-b", "profile": "paper"}, "cstl-t3") == ""


def test_a_record_with_more_seeds_is_kept(tmp_path, monkeypatch, capsys):
    from gaitlib.report import study
    from gaitlib.report.results import PUBLISH_ENV

    monkeypatch.setenv(PUBLISH_ENV, "1")
    _record(tmp_path, "cstl-t4", data="synthetic")
    before = (tmp_path / "cstl-t4" / "synthetic-cpu.json").read_text()
    rows = {"x": {c: _cell(0.0, None, 0.0) for c in claims.CONDITIONS}}
    assert study.record("cstl-t4", _table(rows, "x"), {}, tmp_path, "cpu", "synthetic") is None
    assert "more seeds" in capsys.readouterr().out
    assert (tmp_path / "cstl-t4" / "synthetic-cpu.json").read_text() == before
    more = _table(rows, "x", seeds=(0, 1, 2, 3, 4, 5))
    assert study.record("cstl-t4", more, {}, tmp_path, "cpu", "synthetic") is not None
    written = json.loads((tmp_path / "cstl-t4" / "synthetic-cpu.json").read_text())
    assert written["seeds"] == [0, 1, 2, 3, 4, 5] and written["paired"] == more.paired_record()


def test_the_page_note_gives_verdicts_only_with_seeds():
    from gaitlib.report import study

    rows = {"base": {c: _cell(0.0, None, 0.0, 1.0) for c in claims.CONDITIONS},
            "mid": {c: _cell(-5.0, (-8.0, -2.0), 1.0) for c in claims.CONDITIONS},
            "full": {c: _cell(6.0, (2.0, 9.0), 4.0, 1.0) for c in claims.CONDITIONS}}
    one = study.paired_note(_table(rows, "base", profile="paper"))
    assert "1 differ in the paper's direction" in one and "1 in the opposite direction" in one
    assert "no claim is settled" in one and "supported" not in one
    three = study.paired_note(_table(rows, "base", profile="paper", seeds=(0, 1, 2)))
    assert "at the paper's scale: 1 supported; 1 contradicted; 0 unresolved" in three
    assert "The full model's delta is +6.0 against the paper's +4.0" in three
    assert "**supported**" in three
    # a cheap profile: what was seen, no verdict
    cheap = study.paired_note(_table(rows, "base", profile="cpu", iterations=60, seeds=(0, 1, 2)))
    assert "supported" not in cheap.replace("can support", "") and "contradicted" not in cheap
    assert ("**same sign as the paper, beyond seed noise**, at 60 iterations (cpu profile)"
            in cheap)
