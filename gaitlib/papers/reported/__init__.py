"""The three papers' reported numbers, one CSV per artifact table (see SOURCES.md here).

Every file has the columns ``method, setting, condition``, then one column per probe view
(CASIA-B ``000``..``180``, OU-MVLP ``000``..``090``, ``180``..``270``), then ``Mean``.
``condition`` is NM/BG/CL on CASIA-B, ``rank1`` on OU-MVLP, and ``Mean`` for an ablation row
that holds the paper's mean over NM/BG/CL. On OU-MVLP ``setting`` names the paper's variant,
``miss`` or ``discard``, as the rows of :mod:`gaitlib.evaluation.protocols` do. Ablation tables
leave the view columns empty. ``gaitmm-f2`` adds ``params_M`` and ``approximate``.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where a table is read: not at import
    import pandas as pd

__all__ = ["available_reported", "check_means", "load_reported", "view_columns"]

LABEL_COLUMNS = ("method", "setting", "condition")
CONDITIONS = ("NM", "BG", "CL")
_VIEW = re.compile(r"^\d{3}$")


def available_reported() -> list[str]:
    """Artifact ids that have a reported-numbers table, sorted."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name[: -len(".csv")] for f in files if f.name.endswith(".csv"))


def view_columns(df: pd.DataFrame) -> list[str]:
    """The probe-view columns of a reported table, in file order."""
    return [c for c in df.columns if _VIEW.match(str(c))]


def load_reported(artifact_id: str) -> pd.DataFrame:
    """One artifact's reported numbers: label columns as str ('' when empty), numbers as float (NaN when
    the paper gives none)."""
    valid = available_reported()
    if artifact_id not in valid:
        raise ValueError(f"no reported table for {artifact_id!r}; valid ids: {', '.join(valid)}")
    import pandas as pd

    with resources.files(__name__).joinpath(f"{artifact_id}.csv").open("r", encoding="utf-8") as f:
        # Read everything as text first: a label such as "None" must not become NaN.
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
    for col in df.columns:
        if col == "approximate":
            df[col] = df[col].map({"True": True, "False": False})
        elif col not in LABEL_COLUMNS:
            df[col] = pd.to_numeric(df[col].mask(df[col] == ""), errors="raise").astype(float)
    return df


def check_means(df: pd.DataFrame, tol: float = 0.05) -> pd.DataFrame:
    """Rows whose printed ``Mean`` differs from the recomputed one by more than ``tol``.

    Two kinds of row are checked: a row with every view present (mean of its views), and an
    ablation row with ``condition == "Mean"`` whose NM/BG/CL rows of the same method and setting are
    all present (mean of those three). Returns the flagged rows (original index) with the extra
    columns ``recomputed``, ``difference`` (printed minus recomputed) and ``recomputed_from``
    ("views" or "conditions").
    """
    import pandas as pd

    views = view_columns(df)
    recomputed = pd.Series(float("nan"), index=df.index)
    source = pd.Series("", index=df.index, dtype=object)
    if views:
        full = df[views].notna().all(axis=1) & df["Mean"].notna()
        recomputed[full] = df.loc[full, views].mean(axis=1)
        source[full] = "views"
    for idx in df.index[(df["condition"] == "Mean") & df["Mean"].notna()]:
        row = df.loc[idx]
        same = df[(df["method"] == row["method"]) & (df["setting"] == row["setting"])]
        by_cond = same.set_index("condition")["Mean"]
        if all(c in by_cond.index for c in CONDITIONS) and by_cond[list(CONDITIONS)].notna().all():
            recomputed[idx] = by_cond[list(CONDITIONS)].mean()
            source[idx] = "conditions"
    difference = df["Mean"] - recomputed
    # The small epsilon keeps a difference of exactly tol (in decimal) from being flagged by float error.
    flagged = difference.abs() > tol + 1e-9
    out = df[flagged].copy()
    out["recomputed"] = recomputed[flagged]
    out["difference"] = difference[flagged]
    out["recomputed_from"] = source[flagged]
    return out
