"""Recorded results: evaluation tables saved as JSON with their provenance.

Some results cannot be regenerated cheaply or everywhere (GPU runs, runs on real data a machine
may not have). A notebook records such a result when it computes it and shows the recorded copy,
with where and when it was made, when it cannot compute it.

Recorded results are part of the published book, so only ``gaitlib reproduce`` writes them: it
sets ``GAITLIB_PUBLISH=1`` for the notebooks it runs (:func:`publishing`); the same notebook run
in JupyterLab computes and shows everything but leaves ``book/results`` alone.  A record whose
content did not change is not rewritten (:func:`write_record`), so rebuilding the same commit
with the same runs leaves the tree clean.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import gaitlib
from gaitlib.provenance import git_commit

if TYPE_CHECKING:  # pandas only where tables are read: `gaitlib reproduce` imports this module
    import pandas as pd


@dataclass
class RecordedResult:
    table: pd.DataFrame
    ci: pd.DataFrame
    provenance: dict


PUBLISH_ENV = "GAITLIB_PUBLISH"
# The paper-scale dry run's table (`gaitlib reproduce --profile paper --dry-run`), one line per run.
DRY_RUN = "paper-dry-run.csv"
DRY_RUN_COLUMNS = ("model", "dataset", "options", "iterations", "batch", "step_seconds",
                   "peak_memory_mb", "device", "projected_hours")


def publishing() -> bool:
    """True inside a notebook that ``gaitlib reproduce`` runs to publish it."""
    return os.environ.get(PUBLISH_ENV) == "1"


# Keys of a record that change on every write: ignored when deciding whether it changed.
VOLATILE = ("recorded", "git_commit", "gaitlib_version")


def _stable(payload: dict) -> dict:
    out = {k: v for k, v in payload.items() if k not in VOLATILE}
    if isinstance(out.get("provenance"), dict):
        out["provenance"] = _stable(out["provenance"])
    return out


def _dirty(payload: dict) -> bool:
    commit = payload.get("git_commit") or payload.get("provenance", {}).get("git_commit") or ""
    return str(commit).endswith("+dirty")


def write_record(path: str | os.PathLike, payload: dict) -> bool:
    """Write ``payload`` as JSON to ``path`` (atomically) unless the file already holds the same
    record apart from when and at which commit it was made (a record made from a dirty tree is
    replaced by the same one made from a clean commit); True when written."""
    path = Path(path)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        same = isinstance(old, dict) and _stable(old) == _stable(json.loads(json.dumps(payload, default=str)))
        if same and not (_dirty(old) and not _dirty(payload)):  # a clean commit replaces '+dirty'
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    os.replace(tmp, path)
    return True


def record_result(result, path: str | os.PathLike, **provenance) -> bool:
    """Save ``result.table`` and ``result.ci`` with provenance (plus date, version, commit) when
    publishing (see :func:`publishing`) and the content changed; True when written."""
    if not publishing():
        return False
    payload = {
        "table": json.loads(result.table.to_json(orient="split")),
        "ci": json.loads(result.ci.to_json(orient="split")),
        "provenance": {"recorded": datetime.now(UTC).isoformat(timespec="seconds"),
                       "gaitlib_version": gaitlib.__version__, "git_commit": git_commit(),
                       **provenance},
    }
    return write_record(path, payload)


def _frame(data: dict) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(data["data"], index=data["index"], columns=data["columns"])


def load_result(path: str | os.PathLike) -> RecordedResult:
    payload = json.loads(Path(path).read_text())
    return RecordedResult(_frame(payload["table"]), _frame(payload["ci"]), payload["provenance"])


def read_dry_run(results_dir: str | os.PathLike) -> list[dict] | None:
    """The dry run's lines (``<results_dir>/paper-dry-run.csv``), or None before it ran."""
    path = Path(results_dir) / DRY_RUN
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = [c for c in ("model", "dataset", "options", "projected_hours")
               if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; expected {', '.join(DRY_RUN_COLUMNS)}")
    return rows
