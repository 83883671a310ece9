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


# Tracked paths that publishing itself writes: changes there do not make the code dirty (a
# notebook published earlier in the same `gaitlib reproduce` must not mark the next one's results).
PUBLISHED = ("book/",)


class DirtyTreeError(ValueError):
    """Refusing to publish results from a checkout with uncommitted source changes."""


def source_changes(repo: Path | None = None) -> list[str] | None:
    """Tracked files with uncommitted changes outside the published outputs (``book/``), or
    ``None`` when ``repo`` is not a git checkout."""
    cwd = repo or Path(__file__).resolve().parents[2]
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    paths = [line[3:].split(" -> ")[-1] for line in status.splitlines() if line.strip()]
    return [p for p in paths if not p.startswith(PUBLISHED)]


def git_commit(repo: Path | None = None) -> str:
    """The checkout's commit (with '+dirty' if its sources have uncommitted changes), or
    'unknown'."""
    cwd = repo or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if source_changes(cwd) else "")


def require_clean(repo: Path | None = None, allow_dirty: bool = False) -> str:
    """The commit results will be published under; raises :class:`DirtyTreeError` when the
    sources have uncommitted changes, unless ``allow_dirty`` (then the commit reads
    ``COMMIT+dirty`` and a warning is printed)."""
    changed = source_changes(repo)
    commit = git_commit(repo)
    if changed:
        listing = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        if not allow_dirty:
            raise DirtyTreeError(
                f"refusing to publish results from a checkout with uncommitted changes ({listing}): "
                f"a published result must name the commit that made it. Commit (or stash) them "
                f"first, or pass --allow-dirty to publish results marked {commit}")
        print(f"WARNING: publishing from uncommitted changes ({listing}); results are marked "
              f"{commit}", flush=True)
    return commit


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
