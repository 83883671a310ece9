"""What the book can vouch for, by evidence level: verified, shown by the cheap runs, pending.

The scorecard and every artifact page lead with these three levels instead of a cpu-profile
number set against the paper's:

- **verified**: facts that hold whatever the training budget: parameter counts equal to the
  reference code's published ones (:func:`parameter_check`), the evaluator's rules (OpenGait's),
  forward equivalence with reference networks (the fidelity page, where the book has one), and
  every variant training end to end;
- **shown by the cheap runs**: how the rows of a table order against the paper's, in one
  statistic, Kendall's tau with its permutation p-value
  (:func:`gaitlib.analysis.ordering.ordering`);
- **pending**: the paper-scale numbers and the device-hours they need, projected from the dry
  run's measured step times (:mod:`gaitlib.analysis.hours`, the one source of device-hours).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitlib.analysis.ablation import AblationResult
from gaitlib.analysis.hours import NOT_MEASURED, options_key, pending
from gaitlib.analysis.ordering import ordering
from gaitlib.papers.artifacts import ARTIFACT_IDS, artifact
from gaitlib.report.records import base_commit, headline, model_label, record_markdown, recorded
from gaitlib.report.results import read_dry_run

FIDELITY_PAGE = "fidelity.md"  # book/fidelity.md: forward equivalence with reference networks


@dataclass(frozen=True)
class ReferenceCount:
    """A parameter count published for a reference implementation, as printed (in millions)."""

    label: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    millions: float = 0.0
    decimals: int = 2  # digits the source prints after the point
    source: str = ""


# The counts the reference code gives (OpenGait, the CSTL authors' code); the 3D Local entry is
# the authors' own configuration (one local block, GaitSet-style backbone), which gaitlib builds with
# ``authors_code=True``; the paper's configuration has no published count.
REFERENCE_COUNTS: tuple[ReferenceCount, ...] = (
    ReferenceCount("GaitSet", "gaitset", {}, 2.59, 2, "OpenGait"),
    ReferenceCount("GaitPart", "gaitpart", {}, 1.20, 2, "OpenGait"),
    ReferenceCount("GaitGL", "gaitgl", {}, 3.10, 2, "OpenGait"),
    ReferenceCount("GaitGL (OU-MVLP)", "gaitgl", {"variant": "oumvlp"}, 95.6, 1, "OpenGait"),
    ReferenceCount("CSTL 64x44", "cstl", {}, 9.09, 2, "CSTL authors' code"),
    ReferenceCount("CSTL 128x88", "cstl", {"resolution": 128}, 17.93, 2, "CSTL authors' code"),
    ReferenceCount("3D Local (authors' configuration)", "local3d", {"authors_code": True}, 4.26, 2,
                   "3D Local authors' code"),
)


# Models with a reference network to compare outputs with, given the same weights.
EQUIVALENCE = {"gaitset": "GaitSet", "gaitpart": "GaitPart", "gaitgl": "GaitGL", "cstl": "CSTL"}

# Models whose paper configuration has no published count to compare with.
NO_REFERENCE = {
    "gaitmm": "GaitMM: no published count to compare (the authors' public code is an earlier "
              "version, GaitFM, with 9.81M); the PME/MSMA/DWConv differences are checked "
              "parameter by parameter (tests/test_gaitmm.py).",
    "local3d": "the 3D Local CNN as the paper describes it: no published count; the authors' "
               "configuration is compared above.",
}


def parameter_check(references: tuple[ReferenceCount, ...] = REFERENCE_COUNTS) -> pd.DataFrame:
    """gaitlib's parameter count of every reference model against the published one: columns
    ``source``, ``published (M)``, ``gaitlib``, ``difference (%)`` and ``equal as printed``
    (gaitlib's count rounded to the source's digits is the published number)."""
    from gaitlib.models import build, count_parameters

    lines = []
    for ref in references:
        n = count_parameters(build(ref.model, **ref.options))
        lines.append({"model": ref.label, "source": ref.source, "published (M)": ref.millions,
                      "gaitlib": n, "difference (%)": 100 * (n / 1e6 - ref.millions) / ref.millions,
                      "equal as printed": round(n / 1e6, ref.decimals) == ref.millions})
    return pd.DataFrame(lines).set_index("model")


def parameter_display(references: tuple[ReferenceCount, ...] = REFERENCE_COUNTS) -> pd.DataFrame:
    """:func:`parameter_check` as text for the book: counts in millions at the source's digits
    (gaitlib's with one more), and 'yes'/'no' for equality as printed."""
    check = parameter_check(references)
    digits = {r.label: r.decimals for r in references}
    out = pd.DataFrame({
        "source": check["source"],
        "published": [f"{v:.{digits[m]}f}M" for m, v in check["published (M)"].items()],
        "gaitlib": [f"{v / 1e6:.{digits[m] + 1}f}M" for m, v in check["gaitlib"].items()],
        "equal as printed": check["equal as printed"].map({True: "yes", False: "no"}),
    }, index=check.index)
    out.attrs["caption"] = ("Parameter counts: gaitlib's build of each reference model against the "
                            "count its reference code gives.")
    return out


# --- which page shows what ----------------------------------------------------------------------

def data_label(entry: dict) -> str:
    """What a recorded result ran on, in words: 'real CASIA-B (binarized)', 'synthetic', ..."""
    data = entry.get("data", "")
    if data == "synthetic":
        return "synthetic"
    name = {"casia-b": "CASIA-B", "oumvlp": "OU-MVLP"}.get(data, data)
    flag = entry.get("binarized")
    return f"real {name}" + (" (binarized)" if flag else "" if flag is False else "")


def fidelity_link(results_dir: str | os.PathLike) -> str:
    """A Markdown link to the fidelity page when the book has one (``book/fidelity.md`` next to
    ``book/results``), else ''."""
    page = Path(results_dir).parent / FIDELITY_PAGE
    return f"[the fidelity page]({FIDELITY_PAGE})" if page.is_file() else ""


def _page_models(models: set | None) -> set | None:
    return {m if isinstance(m, str) else m[0] for m in models} if models is not None else None


def _counts(models: set | None) -> pd.DataFrame:
    """:func:`parameter_check` of the reference counts of ``models`` (all when None): model
    names, or ``(model, 'casia-b' | 'oumvlp')`` pairs to keep only the counts of that variant."""
    params = parameter_check()
    if models is None:
        return params
    keep = [r.label for r in REFERENCE_COUNTS
            if (r.model, r.options.get("variant", "casia-b")) in models or r.model in models]
    return params.loc[keep]


def verified_lines(results_dir: str | os.PathLike, models: set | None = None) -> list[str]:
    """Markdown bullets of what is verified, for the models in ``models`` (all when None; see
    :func:`_counts`): only what a check confirmed.  :func:`unverified_lines` has the rest."""
    equal = _counts(models)
    equal = equal[equal["equal as printed"]]
    lines = []
    if len(equal):
        text = ", ".join(f"{m} {row['gaitlib'] / 1e6:.2f}M" for m, row in equal.iterrows())
        lines.append(f"- **Parameter counts** equal the reference code's published ones as "
                     f"printed: {text} (tests/test_models.py, tests/test_cstl.py).")
    lines.append("- **Evaluator**: OpenGait's protocols rule by rule (per-part Euclidean distance, "
                 "gallery restricted to each view, identical view excluded, OU-MVLP misses counted "
                 "or discarded; mAP as OpenGait's cross-view evaluation computes it), checked "
                 "against brute-force computations (tests/test_evaluation.py, tests/test_mean_ap.py).")
    link = fidelity_link(results_dir)
    plain = _page_models(models)
    names = [name for model, name in EQUIVALENCE.items() if plain is None or model in plain]
    if names and link:
        lines.append(f"- **Networks** ({', '.join(names)}): forward equivalence with the reference "
                     f"networks given the same weights is on {link}.")
    return lines


def unverified_lines(results_dir: str | os.PathLike, models: set | None = None) -> list[str]:
    """Markdown bullets of what was checked and did not match, or has nothing to check against,
    for the models in ``models`` (all when None)."""
    close = _counts(models)
    close = close[~close["equal as printed"]]
    lines = [f"- **Parameter count** of {m}: gaitlib's {row['gaitlib'] / 1e6:.3f}M against "
             f"{row['published (M)']}M published ({row['difference (%)']:+.1f} %), not equal as "
             "printed (tests/test_local3d.py)." for m, row in close.iterrows()]
    plain = _page_models(models)
    lines += [f"- **Parameter counts** of {NO_REFERENCE[m]}"
              for m in sorted((plain if plain is not None else set(NO_REFERENCE)) & set(NO_REFERENCE))]
    names = [name for model, name in EQUIVALENCE.items() if plain is None or model in plain]
    if names and not fidelity_link(results_dir):
        lines.append(f"- **Networks** ({', '.join(names)}): forward equivalence with the reference "
                     f"networks {NOT_MEASURED} in this edition.")
    return lines


def trained_rows(results_dir: str | os.PathLike) -> tuple[int, int]:
    """(distinct runs with a recorded result, distinct runs the study needs), any data/profile."""
    needed, done = set(), set()
    for aid in ARTIFACT_IDS:
        for row in artifact(aid).rows:
            needed.add((row.model, row.shape, options_key(row.options)))
        for entry in recorded(results_dir, aid):
            for run in entry.get("runs", {}).values():
                shape = "oumvlp" if run.get("options", {}).get("variant") == "oumvlp" else "casia-b"
                done.add((run["model"], shape, options_key(run.get("options", {}))))
    return len(done & needed), len(needed)


def training_lines(results_dir: str | os.PathLike) -> tuple[str, str]:
    """What is known about every variant training end to end: ``(at the cheap profiles, from the
    recorded results; at the paper's scale, from the dry run)``, each one Markdown bullet."""
    from gaitlib.analysis.hours import study_hours

    done, needed = trained_rows(results_dir)
    cheap = (f"- **Every variant trains at the cheap profiles**: {done} of the {needed} distinct "
             "runs the study needs trained and were evaluated end to end (recorded results), and "
             "every model and option builds, trains a step and evaluates in the tests "
             "(tests/test_study.py).")
    paper = study_hours(read_dry_run(results_dir))
    if paper.measured == 0 and not paper.failed:
        return cheap, f"- **At the paper's scale**: the dry run has {NOT_MEASURED} the runs."
    started = (f"- **At the paper's scale** the dry run started {paper.measured} of the "
               f"{paper.runs} runs (a few steps, a checkpoint, a resumed step, an evaluation)")
    if paper.failed:
        started += f"; {len(paper.failed)} failed: {', '.join(paper.failed)}"
    return cheap, started + "."


def page_summary(artifact_id: str, table: pd.DataFrame | AblationResult | None,
                 results_dir: str | os.PathLike, data: str, profile: str) -> str:
    """Markdown for the head of an artifact page: verified / what this run shows / pending."""
    art = artifact(artifact_id)
    models = {(row.model, "oumvlp" if row.shape == "oumvlp" else "casia-b") for row in art.rows}
    lines = ["**Verified** (independent of the training budget):", "",
             *verified_lines(results_dir, models), ""]
    unverified = unverified_lines(results_dir, models)
    if unverified:
        lines += ["**Not verified**:", "", *unverified, ""]
    lines += [f"**What this run shows** ({data_label({'data': data})} data, {profile} profile):",
              ""]
    if table is None:
        lines.append("- a figure: see the comparison with the paper's figure below.")
    else:
        lines.append(f"- {ordering(table).summary()}.")
        if profile != "paper":
            lines.append(f"- absolute numbers are far below the paper's at the {profile} profile "
                         "by design (short training); they are shown below beside the paper's, "
                         "not as the result.")
    todo = pending(artifact_id, read_dry_run(results_dir))
    lines += ["", "**Pending**:", "", f"- paper-scale numbers: {todo.summary()}."]
    return "\n".join(lines)


ORDERING_COLUMN = "ordering against the paper (Kendall's tau)"


def card(results_dir: str | os.PathLike) -> pd.DataFrame:
    """One line per artifact: the page's data and profile, rows run, what the ordering shows
    and what is pending (the evidence-level scorecard)."""
    dry = read_dry_run(results_dir)
    lines = []
    for aid in ARTIFACT_IDS:
        art = artifact(aid)
        entries = recorded(results_dir, aid)
        line = {"artifact": aid, "what": art.title, "page shows": "not run yet", "profile": "",
                "recorded": "", "rows run": "", ORDERING_COLUMN: "",
                "full model here": np.nan, "paper": np.nan,
                "paper scale": pending(aid, dry).summary()}
        if entries:
            best = entries[0]
            line.update({"page shows": data_label(best), "profile": best["profile"],
                         "recorded": f"{best['recorded'][:10]} ({str(best['git_commit'])[:7]})"})
            if art.kind == "figure":
                line["rows run"] = str(len(best.get("runs", {})))
                line[ORDERING_COLUMN] = "a figure: compared in words on its page"
            elif not best.get("table"):
                line["rows run"] = "0"
            else:
                head = headline(best)
                line.update({"rows run": str(head["rows"]), "full model here": head["reproduced"],
                             "paper": head["reported"],
                             ORDERING_COLUMN: ordering(pd.DataFrame(best["table"])).cell()})
        lines.append(line)
    return pd.DataFrame(lines).set_index("artifact")


def pages_table(results_dir: str | os.PathLike) -> pd.DataFrame:
    """Which page shows what: per artifact, the data and profile of the result its page shows and
    when (at which commit) it was recorded."""
    df = card(results_dir)
    out = pd.DataFrame({"data": df["page shows"], "profile": df["profile"].replace("", "-"),
                        "recorded (commit)": df["recorded"].replace("", "-")})
    out.index.name = "page"
    return out


def pages_markdown(results_dir: str | os.PathLike) -> str:
    """:func:`pages_table` as Markdown, after a sentence counting the pages per kind of data."""
    df = pages_table(results_dir)
    lines = ["| page | data | profile | recorded (commit) |", "|---|---|---|---|"]
    lines += [f"| {aid} | {' | '.join(str(v) for v in line)} |" for aid, line in df.iterrows()]
    counts = df["data"].value_counts()
    summary = "; ".join(f"{n} on {what}" for what, n in counts.items())
    return f"Pages by the data behind them: {summary}.\n\n" + "\n".join(lines)


__all__ = ["ORDERING_COLUMN", "REFERENCE_COUNTS", "card", "data_label", "page_summary",
           "pages_markdown", "pages_table", "parameter_check", "parameter_display",
           "recorded_claims", "trained_rows", "training_lines", "unverified_lines",
           "verified_lines"]


def scorecard(results_dir: str | os.PathLike) -> pd.DataFrame:
    """Every artifact by evidence level (see :mod:`gaitlib.report.evidence`): the data and profile
    of the result its page shows, rows run, how the reproduced rows order against the paper's
    (with their uncertainty), the full model's numbers here and in the paper, and the paper-scale
    runs still pending with the device-hours they need."""
    out = card(results_dir)
    out.insert(1, "paper's model", [model_label(aid) for aid in out.index])
    return out


def other_results(artifact_id: str, results_dir: str | os.PathLike, profile: str, data: str) -> str:
    """Markdown: this artifact's other editions (its records of other data or profiles, e.g.
    the synthetic edition under a real-data page), each with its table, the ordering sentence,
    and when and at which commit it was recorded; a record made by another code version than
    this page's (:func:`gaitlib.runs.cache.code_version`) says so, since its numbers may have
    changed since.  Nothing here depends on the checkout's commit, so a rebuild of the same
    sources shows the same text."""
    from gaitlib.runs.cache import code_version

    here = code_version()
    entries = [e for e in recorded(results_dir, artifact_id)
               if (e["data"], e["profile"]) != (data, profile)]
    if not entries:
        return ("No other edition of this page is recorded (`book/results/"
                f"{artifact_id}/`).")
    lines = []
    for e in entries:
        commit = base_commit(e.get("git_commit", ""))
        theirs = e.get("code_version")
        lines += [f"### The {data_label(e)} edition ({e['profile']} profile)", "",
                  f"Recorded {str(e.get('recorded', ''))[:10]} at commit {commit[:12]}"
                  + ("" if theirs in (None, here) else
                     f", by code version {theirs}, not this page's ({here}): its numbers "
                     "may have changed since") + f" (`book/results/{artifact_id}/"
                  f"{e['data']}-{e['profile']}.json`).", ""]
        table = pd.DataFrame(e.get("table", []))
        if artifact(artifact_id).kind != "figure" and not table.empty:
            lines += [ordering(table).summary() + ".", ""]
        lines += [record_markdown(table), ""]
    return "\n".join(lines).strip()


def recorded_claims(results_dir: str | os.PathLike) -> pd.DataFrame:
    """One line per recorded ablation (the record its page shows), row other than the
    reference, and condition: the delta, its CI, the seed SD of the delta, whether it exceeds two
    of them, the paper's delta and the verdict on the paper's claim
    (:func:`gaitlib.analysis.claims.claims_of_record`).  Empty when no ablation is recorded."""
    from gaitlib.analysis.claims import claims_of_record

    lines = []
    for aid in ARTIFACT_IDS:
        if artifact(aid).kind != "ablation":
            continue
        entries = recorded(results_dir, aid)
        if entries:
            lines += claims_of_record(entries[0], data_label(entries[0]))
    return pd.DataFrame(lines)
