"""Device-hours of the paper-scale runs: the one place the book computes them.

``gaitlib reproduce --profile paper --dry-run`` starts every distinct run of the study at full
scale for a few steps and writes ``book/results/paper-dry-run.csv`` (read back by
:func:`gaitlib.report.results.read_dry_run`): one line per run with its
measured step time, its ``projected_hours`` (the recipe's iterations times that step time) and
whether it started at all (``status``).  The artifact pages, the scorecard and the cost page all
take their device-hours from :func:`pending` and :func:`study_hours`, which match an artifact's
rows (:mod:`gaitlib.papers.artifacts`) to the dry run's lines by model, dataset and options.
Hours are projections from measured step times, never measured end to end.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from gaitlib.papers.artifacts import ARTIFACT_IDS, artifact

NOT_MEASURED = "not yet measured"

__all__ = ["NOT_MEASURED", "Pending", "options_key", "pending", "runs_needed", "runs_of",
           "study_hours"]


def options_key(options) -> str:
    """Options in one canonical text form, whether given as a dict, JSON or ``k=v;k=v`` text
    (values as JSON or Python literals: ``blocks=[2, 3]``, ``paths=['head', 'torso']``)."""
    if isinstance(options, dict):
        items = options
    else:
        text = str(options or "").strip()
        if text in ("", "{}", "-"):
            return ""
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            items = dict(_pair(p) for p in text.split(";") if p.strip())
    return ";".join(sorted(f"{k}={json.dumps(_plain(v))}".replace(" ", "") for k, v in items.items()))


def _pair(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return key.strip(), value.strip()


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _key(model, dataset, options) -> tuple[str, str, str]:
    return str(model), str(dataset), options_key(options)


def runs_needed(artifact_ids: Iterable[str] | None = None) -> dict[tuple[str, str, str], str]:
    """The distinct paper-scale runs of the artifacts (all when None), as the study's plan
    (:func:`gaitlib.runs.plan.study_plan`) lists them: key -> a readable name."""
    from gaitlib.runs.plan import study_plan

    ids = list(ARTIFACT_IDS if artifact_ids is None else artifact_ids)
    for aid in ids:
        artifact(aid)  # a ValueError naming the valid ids
    needed: dict[tuple[str, str, str], str] = {}
    for planned in study_plan(ids, every_setting=True):
        spec = planned.spec
        key = _key(spec.model, spec.shape, spec.option_dict)
        needed.setdefault(key, " ".join(x for x in (spec.model, spec.shape, key[2]) if x))
    return needed


def _hours(line: dict) -> float:
    try:
        return float(line.get("projected_hours", "nan"))
    except ValueError:
        return math.nan


def runs_of(dry: list[dict] | None, artifact_ids: Iterable[str] | None = None
            ) -> tuple[list[dict], list[dict], int]:
    """The dry run's lines for the distinct runs of the artifacts (all when None): ``(lines that
    ran, with projected hours; lines that failed; how many runs the artifacts need)``."""
    needed = runs_needed(artifact_ids)
    lines = {_key(r["model"], r["dataset"], r.get("options", "")): r for r in dry or []}
    found = [lines[k] for k in needed if k in lines]
    ran = [r for r in found if r.get("status", "ok") == "ok" and not math.isnan(_hours(r))]
    failed = [r for r in found if r.get("status", "ok") != "ok"]
    return ran, failed, len(needed)


@dataclass
class Pending:
    """Paper-scale runs of an artifact (or the study): how many it needs, how many the dry run
    started, their projected device-hours, the device, and the runs that failed at that scale."""

    runs: int
    measured: int
    hours: float
    devices: str = ""
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        runs = f"{self.runs} paper-scale run{'s' if self.runs != 1 else ''}"
        if self.measured == 0 and not self.failed:
            return f"{runs}: device-hours {NOT_MEASURED}"
        hours = f"{self.hours:.0f}" if self.hours >= 10 else f"{self.hours:.1f}"
        on = f" on {self.devices}" if self.devices else ""
        text = (f"{runs}: about {hours} device-hours{on} (projected: iterations x the step time "
                "measured by the dry run)") if self.measured else runs
        if self.measured and self.measured + len(self.failed) < self.runs:
            text += f", for {self.measured} of them; the others are {NOT_MEASURED}"
        elif self.measured and self.failed:
            text += f", for the {self.measured} that started"
        if self.failed:
            text += (f"; {len(self.failed)} failed at the paper's scale "
                     f"({', '.join(self.failed)}), so {'its' if len(self.failed) == 1 else 'their'}"
                     " hours are unknown")
        return text


def _pending(ran: list[dict], failed: list[dict], needed: int) -> Pending:
    devices = ", ".join(sorted({str(r.get("device", "")) for r in ran if r.get("device")}))
    names = [" ".join(x for x in (r["model"], r["dataset"], r.get("options", "")) if x)
             for r in failed]
    return Pending(needed, len(ran), sum(_hours(r) for r in ran) if ran else math.nan, devices,
                   names)


def pending(artifact_id: str, dry: list[dict] | None) -> Pending:
    """The paper-scale runs of ``artifact_id`` and their projected device-hours."""
    return _pending(*runs_of(dry, [artifact_id]))


def study_hours(dry: list[dict] | None) -> Pending:
    """All distinct paper-scale runs of the study (a run several artifacts share counts once)."""
    return _pending(*runs_of(dry))
