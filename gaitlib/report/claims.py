"""What the cheap runs say about each ablation claim of the papers.

An ablation table claims deltas: each row against the table's reference row (its baseline, see
:meth:`~gaitlib.report.artifacts.Artifact.reference_row`).  For every recorded ablation (the most
faithful record of each, as its page shows it), every row and condition, this module sets the
reproduced delta beside two yardsticks:

- its 95% paired-bootstrap CI over the test subjects (``delta_ci``: the test set's noise);
- the seed-to-seed SD of a delta, from the extra seeds of the reference row and the full model
  (``seed_sd``: training noise).  A delta of two independent runs varies by
  ``sqrt(sd_reference**2 + sd_row**2)``; rows that ran one seed take the table's pooled seed SD
  (root mean square of the two measured ones) for their own.

A paper's claimed delta is **supported** when the reproduced delta has its sign, its CI excludes
0 and it exceeds two seed SDs of a delta; **contradicted** when all that holds with the opposite
sign; **unresolved** otherwise (including every record without seeds, where training noise is
unknown).
"""

from __future__ import annotations

import math
import os

import pandas as pd

from gaitlib.report.artifacts import ARTIFACT_IDS, artifact

CONDITIONS = ("NM", "BG", "CL", "Mean")
VERDICTS = ("supported", "contradicted", "unresolved")


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


def verdict(delta: float, excludes_zero: bool, seed_sd: float, paper_delta: float) -> str:
    """'supported', 'contradicted' or 'unresolved' (see the module docstring)."""
    if math.isnan(seed_sd) or not excludes_zero or abs(delta) <= 2 * seed_sd or paper_delta == 0:
        return "unresolved"
    return "supported" if (delta > 0) == (paper_delta > 0) else "contradicted"


def claims(results_dir: str | os.PathLike) -> pd.DataFrame:
    """One line per recorded ablation, row (other than the reference) and condition: the delta,
    its CI, the seed SD of the delta, whether it exceeds two of them, the paper's delta and the
    verdict on the paper's claim.  Empty when no ablation is recorded."""
    from gaitlib.report.evidence import data_label
    from gaitlib.report.records import recorded

    lines = []
    for aid in ARTIFACT_IDS:
        if artifact(aid).kind != "ablation":
            continue
        entries = recorded(results_dir, aid)
        if not entries or not entries[0].get("paired"):  # the page's record has no deltas
            continue
        best = entries[0]
        lines += _lines(aid, best["paired"], data_label(best), len(best.get("seeds", [0])))
    return pd.DataFrame(lines)


def of_table(artifact_id: str, table: pd.DataFrame, data: str = "") -> pd.DataFrame:
    """:func:`claims` of one ablation table (:func:`gaitlib.report.study.ablation`) before it is
    recorded: what an ablation page shows about its own rows."""
    if "paired" not in table.attrs:
        raise ValueError(f"{artifact_id}: the table has no paired deltas (not an ablation table)")
    seeds = len(table.attrs.get("seeds", [0]))
    return pd.DataFrame(_lines(artifact_id, table.attrs["paired"], data, seeds))


def _lines(aid: str, paired: dict, data: str, seeds: int) -> list[dict]:
    rows, reference = paired["rows"], paired["reference"]
    lines = []
    for row, conditions in rows.items():
        if row == reference:
            continue
        for cond in CONDITIONS:
            cell = conditions.get(cond)
            if cell is None or cell.get("delta_ci") is None:
                continue
            sd, source = delta_seed_sd(rows, reference, row, cond)
            paper = cell.get("paper_delta")
            paper = math.nan if paper is None else float(paper)
            lines.append({
                "artifact": aid, "data": data, "seeds": seeds, "row": row, "reference": reference,
                "condition": cond, "delta": cell["delta"], "ci low": cell["delta_ci"][0],
                "ci high": cell["delta_ci"][1], "ci excludes 0": bool(cell["excludes_zero"]),
                "seed SD of delta": sd, "SD from": source,
                "beyond 2 seed SD": (abs(cell["delta"]) > 2 * sd) if sd == sd else None,
                "paper delta": paper,
                "verdict": verdict(cell["delta"], bool(cell["excludes_zero"]), sd,
                                   0.0 if paper != paper else paper)})
    return lines


def verdict_counts(table: pd.DataFrame, condition: str = "Mean") -> pd.DataFrame:
    """Per ablation, how many of the paper's claimed deltas (rows against the reference, in
    ``condition``) the runs support, contradict or leave unresolved, and the full model's."""
    if table.empty:
        return pd.DataFrame(columns=["data", "seeds", *VERDICTS, "full model"])
    out = []
    for aid, part in table[table["condition"] == condition].groupby("artifact", sort=False):
        full = artifact(aid).rows[-1].key()
        full_line = part[part["row"] == full]
        counts = part["verdict"].value_counts()
        out.append({"artifact": aid, "data": part["data"].iloc[0], "seeds": int(part["seeds"].iloc[0]),
                    **{v: int(counts.get(v, 0)) for v in VERDICTS},
                    "full model": full_line["verdict"].iloc[0] if len(full_line) else "-"})
    return pd.DataFrame(out).set_index("artifact")


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


__all__ = ["CONDITIONS", "VERDICTS", "claims", "delta_seed_sd", "of_table", "readable", "verdict",
           "verdict_counts"]
