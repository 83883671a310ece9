"""What the book can vouch for, by evidence level: verified, shown by the cheap runs, pending.

The scorecard and every artifact page lead with these three levels instead of a cpu-profile
number set against the paper's:

- **verified**: facts that hold whatever the training budget: parameter counts equal to the
  reference code's published ones (:func:`parameter_check`), the evaluator's rules (OpenGait's),
  forward equivalence with reference networks (the fidelity page, where the book has one), and
  every variant training end to end;
- **shown by the cheap runs**: how the rows of a table order against the paper's ordering, with
  the uncertainty of the reproduced numbers (:func:`ordering`);
- **pending**: the paper-scale numbers and the device-hours they need, from the dry run's
  measurements in ``book/results/paper-dry-run.csv`` when it exists (:func:`pending`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitlib.report.artifacts import ARTIFACT_IDS, artifact

DRY_RUN = "paper-dry-run.csv"
DRY_RUN_COLUMNS = ("model", "dataset", "options", "iterations", "batch", "step_seconds",
                   "peak_memory_mb", "device", "projected_hours")
FIDELITY_PAGE = "fidelity.md"  # book/fidelity.md: forward equivalence with reference networks
NOT_MEASURED = "not yet measured"


@dataclass(frozen=True)
class ReferenceCount:
    """A parameter count published for a reference implementation, as printed (in millions)."""

    label: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    millions: float = 0.0
    decimals: int = 2  # digits the source prints after the point
    source: str = ""


# The counts the reference code gives (SPEC §4); the 3D Local entry is the authors' own
# configuration (one local block, GaitSet-style backbone), which gaitlib builds with
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


# --- orderings --------------------------------------------------------------------------------

def _ci_bounds(text) -> tuple[float, float]:
    if not isinstance(text, str) or not text.startswith("["):
        return math.nan, math.nan
    low, high = (float(x) for x in text.strip("[]").split(","))
    return low, high


def long_form(table: pd.DataFrame) -> pd.DataFrame:
    """A main or ablation table (as the notebooks show it or as recorded) in long form: one line
    per (row, condition) with ``reproduced``, ``low``, ``high`` (95% CI) and ``reported``; rows
    that were not reproduced are dropped."""
    flat = table.reset_index() if not isinstance(table.index, pd.RangeIndex) else table
    lines = []
    if "label" in flat.columns:  # ablation: '<c> reproduced', '<c> 95% CI', '<c> reported'
        conditions = [c[: -len(" reproduced")] for c in flat.columns
                      if str(c).endswith(" reproduced") and not str(c).startswith("Mean")]
        for _, line in flat.iterrows():
            for c in conditions:
                low, high = _ci_bounds(line.get(f"{c} 95% CI"))
                lines.append({"row": str(line["label"]), "condition": c,
                              "reproduced": _num(line.get(f"{c} reproduced")), "low": low,
                              "high": high, "reported": _num(line.get(f"{c} reported"))})
    elif {"method", "condition", "reproduced"} <= set(flat.columns):
        for _, line in flat.iterrows():
            setting = str(line.get("setting") or "")
            low, high = _ci_bounds(line.get("95% CI"))
            lines.append({"row": f"{line['method']} {setting}".strip(),
                          "condition": str(line["condition"]),
                          "reproduced": _num(line["reproduced"]), "low": low, "high": high,
                          "reported": _num(line.get("reported"))})
    else:
        raise ValueError(f"not a main or ablation table: columns {list(flat.columns)}")
    out = pd.DataFrame(lines, columns=["row", "condition", "reproduced", "low", "high", "reported"])
    return out[out["reproduced"].notna()].reset_index(drop=True)


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class Ordering:
    """How the reproduced rows order against the paper's.

    ``rows``: rows with a reproduced and a reported mean; ``rho``: Spearman rank correlation of
    the two means over those rows (NaN under 3 rows); ``pairs``: pairs of rows (per condition)
    the paper orders; ``resolved``: those whose reproduced 95% CIs do not overlap; ``agree``:
    resolved pairs in the paper's order; ``best_paper``/``best_here``: the top row by mean.
    """

    rows: int
    rho: float
    pairs: int
    resolved: int
    agree: int
    best_paper: str
    best_here: str

    def summary(self) -> str:
        """One sentence for a table cell or a page."""
        if self.rows < 2:
            return "one reproduced row: no ordering to compare"
        rho = f"rank correlation with the paper's ordering {self.rho:+.2f} over {self.rows} rows" \
            if not math.isnan(self.rho) else f"{self.rows} rows (too few for a rank correlation)"
        if self.resolved == 0:
            return (f"{rho}; none of the {self.pairs} pairwise comparisons is resolved by the 95% "
                    "CIs, so this ordering is within the noise of the run")
        return (f"{rho}; {self.resolved} of {self.pairs} pairwise comparisons resolved by the "
                f"95% CIs, {self.agree} of them in the paper's order")


def ordering(table: pd.DataFrame) -> Ordering:
    """Compare the reproduced ordering of a table's rows with the paper's (see :class:`Ordering`).

    Row means are taken over the conditions where both sides have a number; pairs are compared
    per condition, a pair counting as resolved when the two reproduced CIs are disjoint.
    """
    from scipy.stats import spearmanr

    data = long_form(table)
    both = data[data["reported"].notna()]
    means = both.groupby("row", sort=False)[["reproduced", "reported"]].mean()
    rho = math.nan
    if len(means) >= 3 and means["reproduced"].nunique() > 1 and means["reported"].nunique() > 1:
        rho = float(spearmanr(means["reproduced"], means["reported"]).statistic)
    pairs = resolved = agree = 0
    for _, cond in both.groupby("condition", sort=False):
        for (_, a), (_, b) in combinations(cond.iterrows(), 2):
            if a["reported"] == b["reported"]:
                continue
            pairs += 1
            if a["low"] > b["high"] or b["low"] > a["high"]:
                resolved += 1
                agree += (a["reproduced"] > b["reproduced"]) == (a["reported"] > b["reported"])

    def best(col: str) -> str:
        return str(means[col].idxmax()) if len(means) else ""

    return Ordering(len(means), rho, pairs, resolved, int(agree), best("reported"), best("reproduced"))


# --- pending: paper-scale runs and their device-hours -------------------------------------------

def dry_run(results_dir: str | os.PathLike) -> pd.DataFrame | None:
    """The dry run's measurements (``<results_dir>/paper-dry-run.csv``), or None before it ran."""
    path = Path(results_dir) / DRY_RUN
    if not path.is_file():
        return None
    df = pd.read_csv(path, dtype={"options": str}, keep_default_na=False)
    missing = [c for c in ("model", "dataset", "options", "projected_hours") if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; expected {', '.join(DRY_RUN_COLUMNS)}")
    df["projected_hours"] = pd.to_numeric(df["projected_hours"], errors="coerce")
    return df


def _options_key(options) -> str:
    """Options in one canonical text form, whether given as a dict, JSON or 'k=v;k=v' text."""
    if isinstance(options, dict):
        items = options
    else:
        text = str(options or "").strip()
        if text in ("", "{}", "-"):
            return ""
        try:
            items = json.loads(text)
        except json.JSONDecodeError:  # 'k=v;k=v' (values as JSON where they parse: 1, [1, 2])
            items = dict(_pair(p) for p in text.split(";") if p.strip())
    return ";".join(sorted(f"{k}={json.dumps(_plain(v))}".replace(" ", "") for k, v in items.items()))


def _pair(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value.strip()


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def runs_needed(artifact_id: str) -> list[tuple[str, str, dict]]:
    """The distinct paper-scale runs of an artifact (:func:`gaitlib.runs.plan.study_plan`):
    ``(model, dataset, options)``."""
    from gaitlib.runs.plan import study_plan

    artifact(artifact_id)  # a ValueError naming the valid ids
    return [(p.spec.model, p.spec.shape, p.spec.option_dict)
            for p in study_plan([artifact_id], every_setting=True)]


@dataclass
class Pending:
    """Paper-scale runs an artifact needs and, where the dry run measured them, their
    projected device-hours (``hours`` is NaN when any run is unmeasured)."""

    runs: int
    measured: int
    hours: float
    devices: str = ""

    def summary(self) -> str:
        if self.measured == 0:
            return f"{self.runs} paper-scale run{'s' if self.runs != 1 else ''}: device-hours " \
                   f"{NOT_MEASURED}"
        hours = f"{self.hours:.0f}" if self.hours >= 10 else f"{self.hours:.1f}"
        if self.measured < self.runs:
            return (f"{self.runs} paper-scale runs; {self.measured} measured by the dry run need "
                    f"{hours} device-hours, the others are {NOT_MEASURED}")
        on = f" on {self.devices}" if self.devices else ""
        return f"{self.runs} paper-scale run{'s' if self.runs != 1 else ''}: about {hours} " \
               f"device-hours{on} (dry run)"


def pending(artifact_id: str, dry: pd.DataFrame | None) -> Pending:
    """The paper-scale runs of ``artifact_id`` and the device-hours the dry run projects."""
    needed = runs_needed(artifact_id)
    if dry is None or dry.empty:
        return Pending(len(needed), 0, math.nan)
    index = {(str(m), str(d), _options_key(o)): i for i, (m, d, o)
             in enumerate(zip(dry["model"], dry["dataset"], dry["options"], strict=True))}
    hours, devices = [], set()
    for model, dataset, options in needed:
        i = index.get((model, dataset, _options_key(options)))
        if i is not None and not math.isnan(dry["projected_hours"].iloc[i]):
            hours.append(float(dry["projected_hours"].iloc[i]))
            if "device" in dry.columns and str(dry["device"].iloc[i]):
                devices.add(str(dry["device"].iloc[i]))
    return Pending(len(needed), len(hours), float(sum(hours)) if hours else math.nan,
                   ", ".join(sorted(devices)))


def study_hours(dry: pd.DataFrame | None) -> Pending:
    """All distinct paper-scale runs of the study (shared rows counted once)."""
    needed: dict[tuple[str, str, str], None] = {}
    for aid in ARTIFACT_IDS:
        for model, dataset, options in runs_needed(aid):
            needed[(model, dataset, _options_key(options))] = None
    if dry is None or dry.empty:
        return Pending(len(needed), 0, math.nan)
    index = {(str(m), str(d), _options_key(o)): float(h) for m, d, o, h
             in zip(dry["model"], dry["dataset"], dry["options"], dry["projected_hours"], strict=True)}
    hours = [index[k] for k in needed if k in index and not math.isnan(index[k])]
    devices = ", ".join(sorted({str(d) for d in dry.get("device", []) if str(d)}))
    return Pending(len(needed), len(hours), float(sum(hours)) if hours else math.nan, devices)


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


def verified_lines(results_dir: str | os.PathLike, models: set | None = None) -> list[str]:
    """Markdown bullets of what is verified, for the models in ``models`` (all when None): model
    names, or ``(model, 'casia-b' | 'oumvlp')`` pairs to keep only the counts of that variant."""
    params = parameter_check()
    if models is not None:  # the page's models, at the variants (CASIA-B / OU-MVLP) it runs
        keep = [r.label for r in REFERENCE_COUNTS
                if (r.model, r.options.get("variant", "casia-b")) in models or r.model in models]
        params = params.loc[keep]
    lines = []
    plain = {m if isinstance(m, str) else m[0] for m in models} if models is not None else None
    unmatched = sorted((plain if plain is not None else set(NO_REFERENCE)) & set(NO_REFERENCE))
    if len(params):
        equal = params[params["equal as printed"]]
        close = params[~params["equal as printed"]]
        text = ", ".join(f"{m} {row['gaitlib'] / 1e6:.2f}M" for m, row in equal.iterrows())
        line = f"- **Parameter counts** equal the reference code's published ones: {text}" \
            if len(equal) else "- **Parameter counts**:"
        if len(close):
            line += ("; " if len(equal) else " ") + ", ".join(
                f"{m} {row['gaitlib'] / 1e6:.3f}M against {row['published (M)']}M published "
                f"({row['difference (%)']:+.1f} %)" for m, row in close.iterrows())
        lines.append(line + " (tests/test_models.py, tests/test_cstl.py, tests/test_local3d.py).")
    for model in unmatched:
        lines.append(f"- **Parameter counts** of {NO_REFERENCE[model]}")
    lines.append("- **Evaluator**: OpenGait's protocols rule by rule (per-part Euclidean distance, "
                 "gallery restricted to each view, identical view excluded, OU-MVLP misses counted "
                 "or discarded), checked against a brute-force computation "
                 "(tests/test_evaluation.py).")
    link = fidelity_link(results_dir)
    names = [name for model, name in EQUIVALENCE.items()
             if models is None or model in {m if isinstance(m, str) else m[0] for m in models}]
    if names:
        which = ", ".join(names)
        lines.append(f"- **Networks** ({which}): " + (
            f"forward equivalence with the reference networks given the same weights is on {link}."
            if link else f"forward equivalence with the reference networks: {NOT_MEASURED} in this "
                         "edition."))
    return lines


def trained_rows(results_dir: str | os.PathLike) -> tuple[int, int]:
    """(distinct runs with a recorded result, distinct runs the study needs), any data/profile."""
    from gaitlib.report.records import recorded

    needed, done = set(), set()
    for aid in ARTIFACT_IDS:
        for row in artifact(aid).rows:
            needed.add((row.model, row.shape, _options_key(row.options)))
        for entry in recorded(results_dir, aid):
            for run in entry.get("runs", {}).values():
                shape = "oumvlp" if run.get("options", {}).get("variant") == "oumvlp" else "casia-b"
                done.add((run["model"], shape, _options_key(run.get("options", {}))))
    return len(done & needed), len(needed)


def page_summary(artifact_id: str, table: pd.DataFrame | None, results_dir: str | os.PathLike,
                 data: str, profile: str) -> str:
    """Markdown for the head of an artifact page: verified / what this run shows / pending."""
    art = artifact(artifact_id)
    models = {(row.model, "oumvlp" if row.shape == "oumvlp" else "casia-b") for row in art.rows}
    lines = ["**Verified** (independent of the training budget):", "",
             *verified_lines(results_dir, models), ""]
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
    todo = pending(artifact_id, dry_run(results_dir))
    lines += ["", "**Pending**:", "", f"- paper-scale numbers: {todo.summary()}."]
    return "\n".join(lines)


def card(results_dir: str | os.PathLike) -> pd.DataFrame:
    """One line per artifact: the page's data and profile, rows run, what the ordering shows
    and what is pending (the evidence-level scorecard)."""
    from gaitlib.report.records import headline, recorded

    dry = dry_run(results_dir)
    lines = []
    for aid in ARTIFACT_IDS:
        art = artifact(aid)
        entries = recorded(results_dir, aid)
        line = {"artifact": aid, "what": art.title, "page shows": "not run yet", "profile": "",
                "recorded": "", "rows run": "", "ordering against the paper": "",
                "full model here": np.nan, "paper": np.nan,
                "paper scale": pending(aid, dry).summary()}
        if entries:
            best = entries[0]
            line.update({"page shows": data_label(best), "profile": best["profile"],
                         "recorded": f"{best['recorded'][:10]} ({str(best['git_commit'])[:7]})"})
            if art.kind == "figure":
                line["rows run"] = str(len(best.get("runs", {})))
                line["ordering against the paper"] = "a figure: compared in words on its page"
            elif not best.get("table"):
                line["rows run"] = "0"
            else:
                head = headline(best)
                line.update({"rows run": str(head["rows"]), "full model here": head["reproduced"],
                             "paper": head["reported"],
                             "ordering against the paper": ordering(pd.DataFrame(best["table"])).summary()})
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


__all__ = ["Ordering", "Pending", "REFERENCE_COUNTS", "card", "data_label", "dry_run", "long_form",
           "ordering", "page_summary", "pages_markdown", "pages_table", "parameter_check",
           "parameter_display", "pending", "runs_needed", "study_hours", "trained_rows",
           "verified_lines"]
