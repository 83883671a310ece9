"""Artifact -> runs: the one place that says which training runs the study needs.

Every caller asks here: the notebooks (``study.runs_for`` / ``study.seed_runs``), the
pre-training of ``gaitlib reproduce``, the dry run, the schedule of ``gaitlib reproduce --plan``
and the evidence pages' device-hours.

* A row of an artifact is one run: its model and options at the paper's scale, on the dataset of
  its setting (:func:`row_data`).
* An artifact runs on ``data`` only when every row's setting is that dataset's (OU-MVLP tables
  need OU-MVLP, the rest CASIA-B); synthetic data serves both (:func:`skip_reason`).
* An ablation trains extra seeds of its reference row and its full model
  (:meth:`~gaitlib.papers.artifacts.Artifact.seeded_rows`).
* A run several artifacts share (the full model of an ablation is the main table's) is one run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gaitlib.papers.artifacts import ARTIFACT_IDS, ARTIFACTS, Row, artifact
from gaitlib.runs.cache import DATASET_NAMES, RunSpec


@dataclass(frozen=True)
class PlannedRun:
    """One distinct run of the plan and the artifacts (ids, in artifact order) that use it."""

    spec: RunSpec
    artifacts: tuple[str, ...]


def skip_reason(artifact_id: str, data: str) -> str:
    """Why ``artifact_id`` cannot run on ``data`` ('' when it can; '' for the notebooks that are
    not artifacts).

    On synthetic data every artifact runs (OU-MVLP artifacts use the OU-MVLP-shaped synthetic set);
    on a real dataset an artifact needs that dataset's layout for every one of its runs.
    """
    if data == "synthetic" or artifact_id not in ARTIFACTS:
        return ""
    other = sorted({row.shape for row in ARTIFACTS[artifact_id].rows} - {data})
    if not other:
        return ""
    names = " and ".join(DATASET_NAMES[s] for s in other)
    return f"needs {names} data (--data {' / '.join(other)}); not run on --data {data}"


def row_data(row: Row, data: str) -> str:
    """The dataset a row trains on when the study runs on ``data``: synthetic data stands in
    for both settings; on real data a row takes the dataset of its setting."""
    return "synthetic" if data == "synthetic" else row.shape


def row_spec(row: Row, data: str, profile: str, seed: int = 0, precision: str = "") -> RunSpec:
    """The run of one artifact row."""
    return RunSpec.of(row.model, data=row_data(row, data), profile=profile, seed=seed,
                      shape=row.shape, precision=precision, **row.options)


def artifact_runs(artifact_id: str, profile: str, data: str, seed: int = 0,
                  precision: str = "") -> dict[str, RunSpec]:
    """The runs of an artifact's rows, keyed by row (``Row.key()``); a ValueError when the
    artifact cannot run on ``data``."""
    reason = skip_reason(artifact_id, data)
    if reason:
        raise ValueError(f"{artifact_id} {reason}")
    return {row.key(): row_spec(row, data, profile, seed, precision)
            for row in artifact(artifact_id).rows}


def seeded_runs(artifact_id: str, seeds: Iterable[int], profile: str, data: str,
                precision: str = "") -> dict[str, list[RunSpec]]:
    """Extra seeds of an ablation's reference row and full model: row key -> one run per seed."""
    seeds = [int(s) for s in seeds]
    reason = skip_reason(artifact_id, data)
    if reason:
        raise ValueError(f"{artifact_id} {reason}")
    return {row.key(): [row_spec(row, data, profile, s, precision) for s in seeds]
            for row in artifact(artifact_id).seeded_rows()}


def study_plan(artifact_ids: Sequence[str] | None = None, profile: str = "paper",
               data: str = "casia-b", seed: int = 0, extra_seeds: Iterable[int] = (),
               precision: str = "", every_setting: bool = False) -> list[PlannedRun]:
    """The distinct runs of the selected artifacts (all by default; ids that are not artifacts,
    such as ``scorecard``, are ignored), in artifact order, each with the artifacts that use it:
    every row at ``seed``, and each ablation's seeded rows once more per extra seed (what the
    notebooks ask for).  Artifacts that cannot run on ``data`` are left out, unless
    ``every_setting``: then each row runs on its setting's dataset (the cost of the whole study,
    as the dry run and the evidence pages count it)."""
    extra = [int(s) for s in extra_seeds]
    runs: dict[RunSpec, list[str]] = {}
    for aid in (ARTIFACT_IDS if artifact_ids is None else artifact_ids):
        if aid not in ARTIFACTS or (skip_reason(aid, data) and not every_setting):
            continue
        art = ARTIFACTS[aid]
        rows = [(row, seed) for row in art.rows]
        if art.kind == "ablation":
            rows += [(row, s) for row in art.seeded_rows() for s in extra]
        for row, row_seed in rows:
            users = runs.setdefault(row_spec(row, data, profile, row_seed, precision), [])
            if aid not in users:
                users.append(aid)
    return [PlannedRun(spec, tuple(users)) for spec, users in runs.items()]
