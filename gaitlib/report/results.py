"""Recorded results: evaluation tables saved as JSON with their provenance.

Some results cannot be regenerated cheaply or everywhere (GPU runs, runs on real data a machine
may not have). A notebook records such a result when it computes it and shows the recorded copy,
with where and when it was made, when it cannot compute it.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

import gaitlib


@dataclass
class RecordedResult:
    table: pd.DataFrame
    ci: pd.DataFrame
    provenance: dict


def git_commit(repo: Path | None = None) -> str:
    """The checkout's commit (with '+dirty' if it has uncommitted changes), or 'unknown'."""
    cwd = repo or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def record_result(result, path: str | os.PathLike, **provenance) -> None:
    """Save ``result.table`` and ``result.ci`` with provenance (plus date, version, commit)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "table": json.loads(result.table.to_json(orient="split")),
        "ci": json.loads(result.ci.to_json(orient="split")),
        "provenance": {"recorded": datetime.now(UTC).isoformat(timespec="seconds"),
                       "gaitlib_version": gaitlib.__version__, "git_commit": git_commit(),
                       **provenance},
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)


def _frame(data: dict) -> pd.DataFrame:
    return pd.DataFrame(data["data"], index=data["index"], columns=data["columns"])


def load_result(path: str | os.PathLike) -> RecordedResult:
    payload = json.loads(Path(path).read_text())
    return RecordedResult(_frame(payload["table"]), _frame(payload["ci"]), payload["provenance"])
