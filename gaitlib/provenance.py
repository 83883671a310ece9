"""Where results come from: the checkout's commit, and whether its sources have uncommitted
changes.  A published result names the commit that made it (``gaitlib reproduce`` refuses a dirty
checkout); the book's own published outputs, which a build rewrites, do not count as changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the checkout (or installed tree) of gaitlib


def is_published_output(path: str) -> bool:
    """Tracked paths that publishing itself writes (executed notebooks, recorded results, the
    generated cost page): changes there do not make the code dirty, so a notebook published
    earlier in the same `gaitlib reproduce` does not mark the next one's results."""
    return (path.startswith("book/results/") or path == "book/cost.md"
            or (path.startswith("book/") and path.endswith(".ipynb")))


class DirtyTreeError(ValueError):
    """Refusing to publish results from a checkout with uncommitted source changes."""


def source_changes(repo: Path | None = None) -> list[str] | None:
    """Tracked files with uncommitted changes outside the published outputs, or ``None`` when
    ``repo`` is not a git checkout."""
    cwd = repo or SOURCE_ROOT
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    paths = [line[3:].split(" -> ")[-1] for line in status.splitlines() if line.strip()]
    return [p for p in paths if not is_published_output(p)]


def git_commit(repo: Path | None = None) -> str:
    """The checkout's commit (with '+dirty' if its sources have uncommitted changes; the book's
    published notebooks and records, which a build rewrites, do not count), or 'unknown'."""
    cwd = repo or SOURCE_ROOT
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
