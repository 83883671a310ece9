"""The reproduced numbers beside the paper's: the tables an artifact's page compares.

:func:`main_table` (a main table's methods per condition), :func:`ablation` (an ablation's rows
with paired deltas against the reference row), :func:`per_view_comparison` (the paper's model per
probe view), :func:`parameter_table` and :func:`with_reported_means` (GaitMM Fig. 2's data), and
the paper's own numbers (:func:`reported`) and model (:func:`ours`).  The notebooks reach these
through :mod:`gaitlib.report.study`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from gaitlib.analysis.ablation import AblationResult, ablation_table
from gaitlib.papers.artifacts import Row, artifact
from gaitlib.report.scale import input_size
from gaitlib.runs.cache import Run


def reported(artifact_id: str) -> pd.DataFrame:
    from gaitlib.papers.reported import load_reported

    return load_reported(artifact_id)


def main_table(artifact_id: str, runs: dict[str, Run]) -> pd.DataFrame:
    """Every method of a main table: reproduced Mean per condition with its 95% CI (``ci_low``,
    ``ci_high``) next to the paper's, and the delta; methods gaitlib does not implement show the
    paper's numbers only.
    ``input (ran)`` is the input size the run actually had (the cpu profile halves the paper's:
    a '64x44' row runs at 32x22); ``mAP`` the run's mAP under OpenGait's cross-view protocol;
    ``OpenGait rank-1`` / ``OpenGait mAP`` OpenGait's model-zoo numbers for the baselines it
    trains (:data:`gaitlib.report.protocol.MODEL_ZOO`)."""
    from gaitlib.analysis.tables import compare_with_reported

    art, paper = artifact(artifact_id), reported(artifact_id)
    lines = []
    done = set()
    for row in art.rows:
        if row.key() not in runs:
            continue
        result = runs[row.key()].result()
        rows = result.table.index
        if row.shape == "oumvlp":  # one reported variant per row: compare that one
            result.table = result.table.loc[[row.setting]]
            rows = [row.setting]
        cmp = compare_with_reported(result, _as_conditions(paper, row), row.label, row.setting or None)
        ran = input_size(runs[row.key()].config.data.resolution or 64)
        maps = result.map_table
        for cond in rows:
            c = cmp.loc[cond]
            lines.append({"method": row.label, "setting": row.setting, "condition": cond,
                          "input (ran)": ran, "reproduced": c["reproduced"],
                          "ci_low": c["ci_low"], "ci_high": c["ci_high"],
                          "mAP": float(maps.loc[cond, "Mean"]) if maps is not None and cond in
                          maps.index else np.nan,
                          "reported": c["reported"], "delta": c["delta"],
                          **_zoo(row.label, row.setting, cond, row.shape)})
        done.add((row.label.lower(), row.setting))
    for (method, setting), group in paper.groupby(["method", "setting"], sort=False):
        if (method.lower(), setting) in done:
            continue
        for _, line in group.iterrows():
            cond = setting if line["condition"] == "rank1" else line["condition"]
            lines.append({"method": method, "setting": setting, "condition": cond,
                          "input (ran)": "", "reproduced": np.nan, "ci_low": np.nan,
                          "ci_high": np.nan, "mAP": np.nan,
                          "reported": line["Mean"], "delta": np.nan,
                          **_zoo(method, setting, cond, "oumvlp" if cond in ("miss", "discard")
                                 else "casia-b")})
    return pd.DataFrame(lines).set_index(["method", "setting", "condition"])


def _zoo(method: str, setting: str, condition: str, dataset: str) -> dict[str, float]:
    """OpenGait's model-zoo rank-1 and mAP of a baseline (64x44 on CASIA-B), else NaN."""
    from gaitlib.report.protocol import zoo

    found = zoo(method, condition, dataset) if setting in ("", "64x44", "miss") else None
    return {"OpenGait rank-1": found[0] if found else np.nan,
            "OpenGait mAP": found[1] if found else np.nan}


def _as_conditions(paper: pd.DataFrame, row: Row) -> pd.DataFrame:
    """OU-MVLP tables name the condition 'rank1' and the variant in ``setting``: rename the
    condition to the variant so it lines up with the protocol's rows (miss/discard)."""
    if row.shape != "oumvlp":
        return paper
    paper = paper.copy()
    rank1 = paper["condition"] == "rank1"
    paper.loc[rank1, "condition"] = paper.loc[rank1, "setting"]
    return paper


def per_view(runs: dict[str, Run], key: str) -> pd.DataFrame:
    """The reproduced per-view table (rows x probe views + Mean) of one run."""
    return runs[key].result().table


PAPERS = {"gaitmm": "GaitMM", "local3d": "3D Local CNN", "cstl": "CSTL"}


def per_view_comparison(artifact_id: str, result) -> pd.DataFrame:
    """The paper's model per probe view, reproduced and reported side by side: rows
    ``(condition, source)`` with source 'here' (this run) then 'paper' (reported), columns the
    probe views and Mean.  The caption, saying which is which, is in ``attrs['caption']``."""
    row = ours(artifact_id)
    paper = _as_conditions(reported(artifact_id), row)
    paper = paper[paper["method"].str.casefold() == row.label.casefold()]
    if row.setting and "setting" in paper.columns:
        paper = paper[paper["setting"].str.casefold() == row.setting.casefold()]
    paper = paper.set_index("condition")
    here = result.table
    lines, index = [], []
    for cond in here.index:
        lines.append(here.loc[cond])
        index.append((cond, "here"))
        if cond in paper.index:
            lines.append(paper.loc[cond].reindex(here.columns).astype(float))
            index.append((cond, "paper"))
    out = pd.DataFrame(lines, columns=here.columns)
    out.index = pd.MultiIndex.from_tuples(index, names=["condition", "source"])
    out.attrs["caption"] = (f"Rank-1 (%) per probe view of {row.key()}: 'here' is this page's run, "
                            f"'paper' the number {PAPERS[artifact(artifact_id).paper]} reports "
                            f"({artifact(artifact_id).title.rsplit('(', 1)[-1].rstrip(')')}).")
    return out


def ablation(artifact_id: str, runs: dict[str, Run],
             seed_runs: dict[str, list[Run]] | None = None,
             bootstrap: int = 1000) -> AblationResult:
    """The artifact's ablation (:class:`~gaitlib.analysis.tables.AblationResult`): per row
    reproduced and reported means per condition, CIs, deltas against the paper, and the paired
    delta against the artifact's reference row
    (:meth:`~gaitlib.papers.artifacts.Artifact.reference_row`) with its 95% paired-bootstrap CI
    and the paper's own delta.  ``seed_runs``: further seeds of some rows
    (:func:`gaitlib.report.study.seed_runs`); the shown numbers stay those of ``runs`` (the first
    seed), the seeds add ``seed SD``."""
    art = artifact(artifact_id)
    results: dict[str, object] = {}
    for row in art.rows:
        first = runs[row.key()]
        others = [r for r in (seed_runs or {}).get(row.key(), []) if r.run_dir != first.run_dir]
        results[row.key()] = [first.result(), *(r.result() for r in others)] if others \
            else first.result()
    keys = {row.key(): (row.setting or row.label) for row in art.rows}
    seed = runs[art.rows[0].key()].spec.seed
    table = ablation_table(results, reported(artifact_id), keys=keys,
                           reference=art.reference_row().key(), bootstrap=bootstrap, seed=seed)
    seeds = {seed} | {r.spec.seed for rows in (seed_runs or {}).values() for r in rows}
    first = runs[art.rows[0].key()]
    return replace(table, artifact=artifact_id, profile=first.spec.profile,
                   iterations=first.config.schedule.iterations,
                   seeds=tuple(sorted(seeds)) if len(seeds) > 1 else ())


def ours(artifact_id: str) -> Row:
    """The row of the paper's own full model: first in main tables, last in ablations."""
    art = artifact(artifact_id)
    return art.rows[0] if art.kind == "main" else art.rows[-1]


def parameter_table(runs: dict[str, Run]) -> pd.DataFrame:
    """Fig. 2's data: each model's parameters at the paper's scale (CASIA-B, 74 classes) and in
    the run, with the run's reproduced mean rank-1 over NM/BG/CL."""
    from gaitlib.models import build, count_parameters

    lines = []
    for key, run in runs.items():
        paper_model = build(run.spec.model, **run.spec.option_dict)
        lines.append({"method": key, "params": count_parameters(paper_model),
                      "params in this run": run.parameters(),
                      "accuracy": run.result().mean_over_rows(), "source": "reproduced"})
    return pd.DataFrame(lines)


def with_reported_means(table: pd.DataFrame, artifact_id: str = "gaitmm-f2") -> pd.DataFrame:
    """:func:`parameter_table` plus one 'reported' line per method the paper gives a Table 1
    mean for (mean over NM/BG/CL), placed at gaitlib's parameter count of that method: the
    paper's figure prints no counts, so only its accuracies can stand beside ours."""
    paper = reported(artifact_id).dropna(subset=["Mean"])
    means = paper.groupby("method", sort=False)["Mean"].mean()
    keyed = {m.casefold(): v for m, v in means.items()}
    extra = [{"method": line["method"], "params": line["params"], "params in this run": np.nan,
              "accuracy": keyed[line["method"].casefold()], "source": "reported"}
             for _, line in table.iterrows() if line["method"].casefold() in keyed]
    return pd.concat([table, pd.DataFrame(extra)], ignore_index=True)
