"""Learning curves of the main-table models, read from the published records.

A ``cpu-long`` run of a main-table model (no ablation options) scores the test set at 25, 50 and
75% of its iterations as well as at the end (``eval.curve``, the run's ``curve.jsonl``);
:func:`gaitlib.report.records.record` copies those points into the record of every table the
run appears in.  :func:`learning_curves` gathers them, one curve per model, for the figure
:func:`gaitlib.figures.plot_learning_curves`, with the papers' numbers as reference lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from gaitlib.papers.artifacts import ARTIFACTS, artifact
from gaitlib.report.records import recorded

# The CASIA-B main tables, whose runs are the models at their papers' settings.
MAIN_TABLES = tuple(a.id for a in ARTIFACTS.values()
                    if a.kind == "main" and all(r.shape == "casia-b" for r in a.rows))
MODEL_NAMES = {"gaitmm": "GaitMM", "local3d": "3D Local", "cstl": "CSTL", "gaitset": "GaitSet",
               "gaitpart": "GaitPart", "gaitgl": "GaitGL"}


@dataclass(frozen=True)
class LearningCurves:
    """``points``: model, iteration, condition, rank1 (one row per scored point); ``reported``:
    model, condition, rank1 (the paper's number for that model); ``sources``: the records the
    points come from, as ``<artifact> (<data>-<profile>)``; ``test_subjects``: how many test
    subjects each point scored."""

    points: pd.DataFrame
    reported: pd.DataFrame
    sources: tuple[str, ...]
    test_subjects: int

    @property
    def empty(self) -> bool:
        return self.points.empty


def learning_curves(results_dir: str | os.PathLike) -> LearningCurves:
    """The learning curve of each main-table model from the most faithful record that has one
    (a model in several main tables is taken once, from the first)."""
    points, reported, sources, subjects = [], [], [], 0
    seen: set[str] = set()
    for aid in MAIN_TABLES:
        entry = next((r for r in recorded(results_dir, aid) if r.get("curves")), None)
        if entry is None:
            continue
        table = pd.DataFrame(entry["table"])
        rows = {row.key(): row for row in artifact(aid).rows}
        used = False
        for key, curve in entry["curves"].items():
            name = MODEL_NAMES.get(entry["runs"][key]["model"], entry["runs"][key]["model"])
            if name in seen or key not in rows:
                continue
            seen.add(name)
            used = True
            points += [{"model": name, "iteration": p["iteration"], "condition": cond,
                        "rank1": value} for p in curve for cond, value in p["rank1"].items()]
            row = rows[key]
            mine = table[(table["method"] == row.label) & (table["setting"] == row.setting)]
            reported += [{"model": name, "condition": r["condition"], "rank1": float(r["reported"])}
                         for _, r in mine.iterrows() if pd.notna(r["reported"])]
        if used:
            sources.append(f"{aid} ({entry['data']}-{entry['profile']})")
            subjects = max(subjects, int(entry.get("test_subjects") or 0))
    columns = ["model", "iteration", "condition", "rank1"]
    return LearningCurves(pd.DataFrame(points, columns=columns),
                          pd.DataFrame(reported, columns=["model", "condition", "rank1"]),
                          tuple(sources), subjects)
