"""What the cheap runs say about each ablation claim of the papers (pure functions: the records
are read by :func:`gaitlib.report.evidence.recorded_claims`).

An ablation table claims deltas: each row against the table's reference row (its baseline, see
:meth:`~gaitlib.papers.artifacts.Artifact.reference_row`).  For an ablation's paired deltas (a
table before it is recorded, or a record), every row and condition, this module sets the
reproduced delta beside two yardsticks:

- its 95% paired-bootstrap CI over the test subjects (``delta_ci``: the test set's noise);
- the seed-to-seed SD of a delta, from the extra seeds of the reference row and the full model
  (``seed_sd``: training noise).  A delta of two independent runs varies by
  ``sqrt(sd_reference**2 + sd_row**2)``; rows that ran one seed take the table's pooled seed SD
  (root mean square of the two measured ones) for their own.

A reproduced delta *agrees* with the paper's claim when it has the paper's sign, its CI excludes
0 and it exceeds two seed SDs of a delta; it *opposes* it when all that holds with the opposite
sign; otherwise it leaves the claim *unresolved* (including every record without seeds, where
training noise is unknown).  Only at the paper's scale (``profile='paper'``) do these read as
verdicts on the claim, **supported** / **contradicted**; at a cheap profile (60 to 1,000
iterations) the runs say what training far from convergence does, so the words say what was
seen: "same sign as the paper, beyond seed noise" (:func:`verdict_words`), and the pages add the
iterations.

Only the paper's own components are claims: rows of another model in an ablation table (CSTL
Table 3's GaitSet and GaitPart) are shown on the page but not scored here, since no paper claims
a delta between them and the table's baseline.
"""

from __future__ import annotations

import math

import pandas as pd

from gaitlib.analysis.ablation import AblationResult
from gaitlib.papers.artifacts import artifact

CONDITIONS = ("NM", "BG", "CL", "Mean")
OUTCOMES = ("agrees", "opposes", "unresolved")
# What an outcome means, at the paper's scale and at a cheap one (60 to 1,000 iterations).
PAPER_SCALE_WORDS = {"agrees": "supported", "opposes": "contradicted", "unresolved": "unresolved"}
CHEAP_WORDS = {"agrees": "same sign as the paper, beyond seed noise",
               "opposes": "opposite sign to the paper, beyond seed noise",
               "unresolved": "not resolved"}
# Column names of verdict_counts, one per outcome (whatever the scale).
COUNT_COLUMNS = {"agrees": "paper's sign, beyond noise", "opposes": "opposite sign, beyond noise",
                 "unresolved": "not resolved"}
VERDICTS = tuple(PAPER_SCALE_WORDS.values())


def verdict_words(outcome: str, profile: str) -> str:
    """An outcome in words: a verdict on the claim at the paper's scale, else what was seen."""
    return (PAPER_SCALE_WORDS if profile == "paper" else CHEAP_WORDS)[outcome]


def scale_words(profile: str, iterations: int | None) -> str:
    """'at 60 iterations (cpu profile)', 'at the paper's scale', or '' when unknown."""
    if profile == "paper":
        return "at the paper's scale"
    if not profile:
        return ""
    return f"at {iterations:,} iterations ({profile} profile)" if iterations else \
        f"at the {profile} profile"


def _sd(value) -> float:
    return float(value) if value is not None else math.nan


def delta_seed_sd(rows: dict, reference: str, row: str, condition: str) -> tuple[float, str]:
    """Seed SD of ``row``'s delta against ``reference`` in ``condition``, and where the row's own
    SD came from ('measured', 'pooled', or '' when no seed SD is recorded)."""
    ref = _sd(rows[reference][condition].get("seed_sd"))
    own = _sd(rows[row][condition].get("seed_sd"))
    if math.isnan(ref):
        return math.nan, ""
    if not math.isnan(own):
        return math.hypot(ref, own), "measured"
    measured = [_sd(r[condition].get("seed_sd")) for r in rows.values()]
    measured = [m for m in measured if not math.isnan(m)]
    pooled = math.sqrt(sum(m * m for m in measured) / len(measured))
    return math.hypot(ref, pooled), "pooled"


def outcome(delta: float, excludes_zero: bool, seed_sd: float, paper_delta: float) -> str:
    """'agrees', 'opposes' or 'unresolved' (see the module docstring)."""
    if math.isnan(seed_sd) or not excludes_zero or abs(delta) <= 2 * seed_sd or paper_delta == 0:
        return "unresolved"
    return "agrees" if (delta > 0) == (paper_delta > 0) else "opposes"


def verdict(delta: float, excludes_zero: bool, seed_sd: float, paper_delta: float,
            profile: str = "paper") -> str:
    """:func:`outcome` in words (:func:`verdict_words`): 'supported', 'contradicted' or
    'unresolved' at the paper's scale."""
    return verdict_words(outcome(delta, excludes_zero, seed_sd, paper_delta), profile)


def of_table(artifact_id: str, table: AblationResult, data: str = "", profile: str = "",
             iterations: int | None = None) -> pd.DataFrame:
    """:func:`claims_of_record` of one ablation table (:func:`gaitlib.report.compare.ablation`)
    before it is recorded: what an ablation page shows about its own rows."""
    paired = table.paired_record()
    if paired is None:
        raise ValueError(f"{artifact_id}: the table has no paired deltas (no reference row)")
    return pd.DataFrame(_lines(artifact_id, paired, data, max(1, len(table.seeds)), profile,
                               iterations))


def claims_of_record(entry: dict, data: str = "") -> list[dict]:
    """The claim lines (see :func:`gaitlib.report.evidence.recorded_claims`) of one recorded
    ablation (a record's dict, as :func:`gaitlib.report.records.recorded` reads it); ``data``
    names its dataset in words.  Empty when the record has no paired deltas."""
    if not entry.get("paired"):
        return []
    iterations = max((r.get("iterations") or 0 for r in entry.get("runs", {}).values()), default=0)
    return _lines(entry.get("artifact", ""), entry["paired"], data, len(entry.get("seeds", [0])),
                  entry.get("profile", ""), iterations or None)


def claimed_rows(artifact_id: str) -> list[str]:
    """The rows of an ablation whose deltas its paper claims: the rows of the paper's own model
    (keys), reference row included."""
    art = artifact(artifact_id)
    return [row.key() for row in art.rows if row.model == art.paper]


def _lines(aid: str, paired: dict, data: str, seeds: int, profile: str = "",
           iterations: int | None = None) -> list[dict]:
    rows, reference = paired["rows"], paired["reference"]
    own = set(claimed_rows(aid)) if aid else set(rows)
    lines = []
    for row, conditions in rows.items():
        if row == reference or row not in own:
            continue
        for cond in CONDITIONS:
            cell = conditions.get(cond)
            if cell is None or cell.get("delta_ci") is None:
                continue
            sd, source = delta_seed_sd(rows, reference, row, cond)
            paper = cell.get("paper_delta")
            paper = math.nan if paper is None else float(paper)
            found = outcome(cell["delta"], bool(cell["excludes_zero"]), sd,
                            0.0 if paper != paper else paper)
            lines.append({
                "artifact": aid, "data": data, "seeds": seeds, "profile": profile,
                "scale": scale_words(profile, iterations), "row": row, "reference": reference,
                "condition": cond, "delta": cell["delta"], "ci low": cell["delta_ci"][0],
                "ci high": cell["delta_ci"][1], "ci excludes 0": bool(cell["excludes_zero"]),
                "seed SD of delta": sd, "SD from": source,
                "beyond 2 seed SD": (abs(cell["delta"]) > 2 * sd) if sd == sd else None,
                "paper delta": paper, "outcome": found, "verdict": verdict_words(found, profile)})
    return lines


def verdict_counts(table: pd.DataFrame, condition: str = "Mean") -> pd.DataFrame:
    """Per ablation, the scale of its runs and how many of the paper's claimed deltas (rows of
    its own model against the reference, in ``condition``) point the paper's way beyond noise,
    the opposite way, or are not resolved, and the full model's outcome in words."""
    columns = ["data", "scale", "seeds", *COUNT_COLUMNS.values(), "full model"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    out = []
    for aid, part in table[table["condition"] == condition].groupby("artifact", sort=False):
        full = artifact(aid).rows[-1].key()
        full_line = part[part["row"] == full]
        counts = part["outcome"].value_counts()
        out.append({"artifact": aid, "data": part["data"].iloc[0], "scale": part["scale"].iloc[0],
                    "seeds": int(part["seeds"].iloc[0]),
                    **{name: int(counts.get(o, 0)) for o, name in COUNT_COLUMNS.items()},
                    "full model": full_line["verdict"].iloc[0] if len(full_line) else "-"})
    return pd.DataFrame(out, columns=["artifact", *columns]).set_index("artifact")


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`claims` for the book: the delta with its CI in one cell, two seed SDs of a delta,
    the paper's delta and the verdict, indexed by artifact, row and condition."""
    if table.empty:
        return pd.DataFrame(columns=["delta [95% CI]", "2 seed SD", "paper delta", "verdict"])
    out = pd.DataFrame({
        "artifact": table["artifact"], "row": table["row"], "condition": table["condition"],
        "delta [95% CI]": [f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]{' *' if x else ''}" for d, lo, hi, x in
                           zip(table["delta"], table["ci low"], table["ci high"],
                               table["ci excludes 0"], strict=True)],
        "2 seed SD": [f"{2 * sd:.1f}" + (" (pooled)" if src == "pooled" else "") if sd == sd else "-"
                      for sd, src in zip(table["seed SD of delta"], table["SD from"], strict=True)],
        "paper delta": [f"{p:+.1f}" if p == p else "-" for p in table["paper delta"]],
        "verdict": table["verdict"]})
    return out.set_index(["artifact", "row", "condition"])


__all__ = ["CONDITIONS", "COUNT_COLUMNS", "OUTCOMES", "VERDICTS", "claimed_rows",
           "claims_of_record", "delta_seed_sd", "of_table", "outcome", "readable", "scale_words",
           "verdict", "verdict_counts", "verdict_words"]
