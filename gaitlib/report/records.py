"""Published results: record an artifact's table as JSON and read the records back.

:func:`record` writes ``<results_dir>/<id>/<data>-<profile>.json`` (only when ``gaitlib
reproduce`` publishes); :func:`recorded` reads an artifact's records, most faithful first
(:data:`FAITHFULNESS`); :func:`headline` and :func:`model_label` say what a record's headline
number is and :func:`record_markdown` shows a recorded table.  The scorecard and a page's other
editions, which judge records, are in :mod:`gaitlib.report.evidence`.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from gaitlib.analysis.ablation import AblationResult
from gaitlib.analysis.tables import ci_text
from gaitlib.data.store import is_binarized
from gaitlib.papers.artifacts import artifact
from gaitlib.report.compare import PAPERS, ours
from gaitlib.runs.cache import Run, code_version


def record(artifact_id: str, table: pd.DataFrame | AblationResult, runs: dict[str, Run],
           results_dir: str | os.PathLike, profile: str, data: str) -> Path | None:
    """Save the artifact's headline table and where it came from, for the scorecard and for
    readers without the data: ``<results_dir>/<id>/<data>-<profile>.json``.

    Only when ``gaitlib reproduce`` publishes (:func:`gaitlib.report.results.publishing`):
    running the notebook by hand records nothing.  An unchanged record is left as it is, and so
    is a record of the same data and profile with more seeds.  Returns the path, or None when
    nothing was recorded.
    """
    from gaitlib.provenance import git_commit
    from gaitlib.report.results import PUBLISH_ENV, publishing, write_record

    if not publishing():
        print(f"not recorded: only `gaitlib reproduce` records results ({PUBLISH_ENV}=1)")
        return None
    out = Path(results_dir) / artifact_id / f"{data}-{profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    stores = {r.config.data.store for r in runs.values()}
    payload = {
        "artifact": artifact_id, "data": data, "profile": profile,
        # real data: whether the store holds only 0/255 (the shared CASIA-B copy is binarized)
        **({"binarized": all(is_binarized(st) for st in sorted(stores))}
           if data != "synthetic" and stores else {}),
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"), "git_commit": git_commit(),
        # the sources that decide a run's numbers (the run folders' names carry it too)
        "code_version": code_version(),
        "runs": {k: {"dir": r.run_dir.name, "model": r.spec.model, "options": r.spec.option_dict,
                     "iterations": r.config.schedule.iterations, "devices": r.devices(),
                     "test_subjects": r.evaluation.get("n_subjects")}
                 for k, r in runs.items()},
        # the number of test subjects scored (the same for every run of a table)
        "test_subjects": max((r.evaluation.get("n_subjects") or 0 for r in runs.values()), default=0),
    }
    frame = table.to_frame() if isinstance(table, AblationResult) else table
    payload["table"] = json.loads(frame.reset_index().to_json(orient="records"))
    curves = {k: r.curve() for k, r in runs.items()}
    if any(curves.values()):  # learning curves of the runs that recorded them (cpu-long)
        payload["curves"] = {k: c for k, c in curves.items() if c}
    if isinstance(table, AblationResult):
        if table.reference is not None:  # per row and condition: delta, delta_ci, seed_sd
            payload["paired"] = table.paired_record()
        if table.seeds:  # the seeds behind seed_sd
            payload["seeds"] = list(table.seeds)
    if out.is_file() and len(json.loads(out.read_text()).get("seeds", [0])) > len(payload.get("seeds", [0])):
        print(f"not recorded: {out} holds a record with more seeds (a rebuild without "
              "--extra-seeds keeps it)")
        return None
    write_record(out, payload)
    return out


FAITHFULNESS = {"data": {"casia-b": 2, "oumvlp": 2, "synthetic": 0},
                "profile": {"paper": 3, "cpu-long": 2, "cpu": 1, "smoke": 0}}


def recorded(results_dir: str | os.PathLike, artifact_id: str) -> list[dict]:
    """Every recorded result of an artifact, most faithful first (real data over synthetic,
    then paper over cpu-long over cpu over smoke)."""
    folder = Path(results_dir) / artifact_id
    found = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(found, key=lambda r: (-FAITHFULNESS["data"].get(r["data"], 0),
                                        -FAITHFULNESS["profile"].get(r["profile"], 0)))


def headline(entry: dict) -> dict:
    """The headline of a recorded result: the paper's own model (first row of a main table, last
    row of an ablation), its reproduced and reported mean over conditions, and how many rows
    were reproduced."""
    aid = entry["artifact"]
    row = ours(aid)
    table = pd.DataFrame(entry["table"])
    if "label" in table.columns:  # ablation: one line per row
        line = table.set_index("label").loc[row.key()]
        return {"rows": len(table), "model": row.key(),
                "reproduced": float(line["Mean reproduced"]), "reported": float(line["Mean reported"])}
    done = table[table["reproduced"].notna()]
    mine = done[(done["method"] == row.label) & (done["setting"] == row.setting)]
    return {"rows": int(done.groupby(["method", "setting"]).ngroups), "model": row.key(),
            "reproduced": float(mine["reproduced"].mean()),
            "reported": float(mine["reported"].astype(float).mean())}


# The OU-MVLP evaluation variants (see gaitlib.evaluation.protocols), in words.
# A probe "without a gallery" has no gallery sequence of its subject at the gallery view.
SETTING_WORDS = {"discard": "OU-MVLP, probes without a gallery dropped",
                 "miss": "OU-MVLP, probes without a gallery as misses"}


def model_label(artifact_id: str) -> str:
    """What the scorecard's headline number is, in words: the paper's model and its setting
    (resolution, OU-MVLP evaluation variant), or which ablation row is the full model."""
    art, row = artifact(artifact_id), ours(artifact_id)
    name = PAPERS.get(art.paper, art.paper)
    if art.kind == "ablation":
        label = row.label if len(row.label) <= 24 else ""
        setting = f"setting {row.setting}" if row.setting else ""
        inside = ", ".join(x for x in (label, setting) if x and x != name)
        return f"{name}, full model" + (f" ({inside})" if inside else "")
    setting = SETTING_WORDS.get(row.setting, f"at {row.setting}" if row.setting else "")
    return name + (f" ({setting})" if setting else "")


def record_markdown(table: pd.DataFrame) -> str:
    """A recorded table as a Markdown table: a main table's methods per condition with their
    CIs and the paper's numbers, an ablation's rows with a cell per condition, or a figure's
    data as recorded (numbers to one decimal)."""
    if table.empty:
        return "(no table recorded)"
    if "label" in table.columns and any(str(c).endswith(" reproduced") for c in table.columns):
        conditions = [c[: -len(" reproduced")] for c in table.columns if str(c).endswith(" reproduced")]
        header = ["row", *(f"{c} (paper)" for c in conditions)]
        rows = [[str(line["label"]), *(_cell(line.get(f"{c} reproduced"), line.get(f"{c} ci_low"),
                                             line.get(f"{c} ci_high"), line.get(f"{c} reported"))
                                       for c in conditions)]
                for _, line in table.iterrows()]
    elif {"method", "condition", "reproduced"} <= set(table.columns):
        table = table.assign(**{"95% CI": [ci_text(lo, hi, missing="-") for lo, hi in
                                            zip(table.get("ci_low", [None] * len(table)),
                                                table.get("ci_high", [None] * len(table)),
                                                strict=True)]})
        keep = [c for c in ("method", "setting", "condition", "input (ran)", "reproduced", "95% CI",
                            "mAP", "reported") if c in table.columns]
        header = keep
        rows = [[_text(line[c]) for c in keep] for _, line in table.iterrows()]
    else:
        header = [str(c) for c in table.columns]
        rows = [[_text(v) for v in line] for _, line in table.iterrows()]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float, np.floating, np.integer)):
        return "-" if value != value else (f"{value:,.1f}" if isinstance(value, (float, np.floating))
                                           else f"{value:,}")
    return "-" if value is None or str(value) == "" else str(value).replace("|", "/")


def _cell(reproduced, low, high, reported) -> str:
    text = f"{_text(reproduced)} {ci_text(low, high, missing='')}".rstrip()
    return text + (f" ({_text(reported)})" if reported is not None and reported == reported else "")


def base_commit(commit: str) -> str:
    """A commit without its '+dirty' mark."""
    return str(commit).split("+")[0]
