"""The study's artifacts (the papers' tables and figures) and the runs each one needs.

Every table row that gaitlib reproduces is a :class:`Row`: a label as the paper prints it (the
key into the reported numbers of ``gaitlib/papers/reported/``) and a model with its build options
at the paper's scale.  Rows that several artifacts share (the full model of an ablation table is
the main table's model; the backbone with no local block is both Table 3 (a) and Table 5 (a) of
3D Local) have the same options, so the run cache trains them once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Row:
    label: str  # method (and setting) as in the reported table
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    setting: str = ""  # the reported table's ``setting`` column ('' when it has none)
    shape: str = "casia-b"  # 'oumvlp': the OU-MVLP setting (recipe, data)

    def key(self) -> str:
        return f"{self.label} ({self.setting})" if self.setting else self.label


@dataclass(frozen=True)
class Artifact:
    id: str
    paper: str  # gaitmm | local3d | cstl
    title: str
    kind: str  # 'main' (per-view table), 'ablation', 'figure'
    rows: tuple[Row, ...] = ()
    reported: bool = True  # has a file in gaitlib/papers/reported/
    # Ablations: the row (its key) every other row's paired delta is taken against; '' = the
    # first row.  See reference_row().
    reference: str = ""

    def reference_row(self) -> Row:
        """The ablation's reference row: the paper's baseline, i.e. the row its components are
        added to (GaitMM T3 "BME", 3D Local T3 (a) and T5 (a) "no local block" / "Global", CSTL
        T3 "Baseline"), or, where the table compares alternatives rather than adding
        components, its first and simplest alternative (CSTL T4 frame-level features only, T5
        max pooling, 3D Local T4 Gaussian sampling).  The full model is always the last row, so
        its delta is the paper's headline claim for the table."""
        if not self.rows:
            raise ValueError(f"{self.id} has no rows")
        key = self.reference or self.rows[0].key()
        for row in self.rows:
            if row.key() == key:
                return row
        raise ValueError(f"{self.id}: reference row {key!r} is not one of its rows")

    def seeded_rows(self) -> tuple[Row, ...]:
        """The rows an ablation trains extra seeds of: its reference row and its full model (the
        last row), the two whose difference is the table's claim."""
        return tuple({r.key(): r for r in (self.reference_row(), self.rows[-1])}.values())


def _rows(model: str, *specs: tuple[str, dict], setting: str = "") -> tuple[Row, ...]:
    return tuple(Row(label, model, opts, setting) for label, opts in specs)


ALL_PATHS = ("head", "torso", "arm_l", "arm_r", "leg_l", "leg_r")
BASELINES = (Row("GaitSet", "gaitset"), Row("GaitPart", "gaitpart"), Row("GaitGL", "gaitgl"))
LOCAL3D_FULL = Row("3DLocal", "local3d", {}, "64x44")
CSTL_FULL = Row("CSTL (ours)", "cstl", {}, "64x44")
CSTL_NO_ATA = {"aggregation": "max"}
CSTL_SCALES = {"Frame-level": "frame", "Short-term": "short", "Long-term": "long"}

ARTIFACTS: dict[str, Artifact] = {a.id: a for a in (
    # GaitMM (seed 000)
    Artifact("gaitmm-t1", "gaitmm", "CASIA-B rank-1 against the baselines (Table 1)", "main",
             (Row("Ours", "gaitmm"), *BASELINES, Row("3D Local", "local3d"))),
    Artifact("gaitmm-t2", "gaitmm", "OU-MVLP rank-1 per probe view (Table 2)", "main",
             (Row("Ours", "gaitmm", {"variant": "oumvlp"}, "discard", "oumvlp"),)),
    Artifact("gaitmm-t3", "gaitmm", "Ablation of PME and MSMA (Table 3)", "ablation",
             _rows("gaitmm", ("BME", {"pme": False, "msma": False}), ("BME+PME", {"msma": False}),
                   ("BME+MSMA", {"pme": False}), ("BME+PME+MSMA", {}))),
    Artifact("gaitmm-f2", "gaitmm", "Accuracy against parameters, with the DWConv variant (Fig. 2)",
             "figure", (Row("Ours", "gaitmm"), Row("Ours (DWConv)", "gaitmm", {"dwconv": True}),
                        *BASELINES, Row("3D Local", "local3d"))),
    # 3D Local CNN (seed 002)
    Artifact("local3d-t1", "local3d", "CASIA-B rank-1 at 64x44 and 128x88 (Table 1)", "main",
             (LOCAL3D_FULL, Row("3DLocal", "local3d", {"resolution": 128}, "128x88"),
              Row("GaitSet", "gaitset", {}, "64x44"), Row("GaitPart", "gaitpart", {}, "64x44"))),
    Artifact("local3d-t2", "local3d", "OU-MVLP rank-1 per probe view (Table 2)", "main",
             (Row("3DLocal", "local3d", {"variant": "oumvlp"}, "miss", "oumvlp"),)),
    Artifact("local3d-t3", "local3d", "Where the local block goes (Table 3)", "ablation",
             (Row("none", "local3d", {"blocks": ()}, "a"),
              Row("Block1", "local3d", {"blocks": (1,)}, "b"),
              Row("Block2", "local3d", {"blocks": (2,)}, "c"),
              Row("Block3", "local3d", {"blocks": (3,)}, "d"),
              Row("Block2+Block3", "local3d", {"blocks": (2, 3)}, "e"),
              Row("Block1+Block2+Block3", "local3d", {}, "f"))),
    Artifact("local3d-t4", "local3d", "Sampling: Gaussian, trilinear, mixture (Table 4)", "ablation",
             _rows("local3d", ("Gaussian", {"sampler": "gaussian"}),
                   ("Trilinear", {"sampler": "trilinear"}), ("Mixture", {}))),
    Artifact("local3d-t5", "local3d", "Local paths added one group at a time, then FE (Table 5)",
             "ablation",
             (Row("Global", "local3d", {"blocks": ()}, "a"),
              Row("Global+Head", "local3d", {"paths": ("head",), "feature_extraction": False}, "b"),
              Row("Global+Head+LArm+RArm", "local3d",
                  {"paths": ("head", "arm_l", "arm_r"), "feature_extraction": False}, "c"),
              Row("Global+Head+LArm+RArm+Torso", "local3d",
                  {"paths": ("head", "arm_l", "arm_r", "torso"), "feature_extraction": False}, "d"),
              Row("Global+Head+LArm+RArm+Torso+LLeg+RLeg", "local3d",
                  {"paths": ALL_PATHS, "feature_extraction": False}, "e"),
              Row("Global+Head+LArm+RArm+Torso+LLeg+RLeg+FE", "local3d", {}, "f"))),
    Artifact("local3d-f4", "local3d", "Sampled local volumes and fusion weights (Fig. 4)", "figure",
             (Row("3DLocal", "local3d"),), reported=False),
    # CSTL (seed 004)
    Artifact("cstl-t1", "cstl", "CASIA-B rank-1 at 64x44 and 128x88 (Table 1)", "main",
             (CSTL_FULL, Row("CSTL (ours)", "cstl", {"resolution": 128}, "128x88"),
              Row("GaitSet", "gaitset", {}, "64x44"), Row("GaitPart", "gaitpart", {}, "64x44"))),
    Artifact("cstl-t2", "cstl", "OU-MVLP rank-1 per probe view (Table 2)", "main",
             (Row("CSTL (Ours)", "cstl", {"variant": "oumvlp"}, "miss", "oumvlp"),)),
    Artifact("cstl-t3", "cstl", "Ablation of MSTE, ATA and SSFL (Table 3)", "ablation",
             (Row("GaitSet", "gaitset"), Row("GaitPart", "gaitpart"),
              *_rows("cstl", ("Baseline", {"mste": False, "ssfl": False, **CSTL_NO_ATA}),
                     ("Baseline + MSTE", {"ssfl": False, **CSTL_NO_ATA}),
                     ("Baseline + MSTE + ATA", {"ssfl": False}),
                     ("Baseline + MSTE + SSFL", CSTL_NO_ATA), ("CSTL", {}))),
             reference="Baseline"),
    Artifact("cstl-t4", "cstl", "Frame-level, short-term and long-term features (Table 4)", "ablation",
             _rows("cstl", *((label, {"scales": tuple(CSTL_SCALES[p] for p in label.split("+"))})
                             for label in ("Frame-level", "Short-term", "Long-term",
                                           "Frame-level+Short-term", "Frame-level+Long-term",
                                           "Short-term+Long-term")),
                   ("Frame-level+Short-term+Long-term", {}))),  # the full model's run
    Artifact("cstl-t5", "cstl", "Temporal aggregation: max, average, ATA (Table 5)", "ablation",
             _rows("cstl", ("Max Pooling", CSTL_NO_ATA), ("Average Pooling", {"aggregation": "avg"}),
                   ("ATA", {}))),
    Artifact("cstl-f6", "cstl", "t-SNE of ten test identities, baseline against CSTL (Fig. 6)",
             "figure", _rows("cstl", ("Baseline", {"mste": False, "ssfl": False, **CSTL_NO_ATA}),
                             ("CSTL", {})), reported=False),
    Artifact("cstl-f7", "cstl", "The frame SSFL selects for each part (Fig. 7)", "figure",
             (Row("CSTL", "cstl"),), reported=False),
)}

ARTIFACT_IDS = tuple(ARTIFACTS)


def artifact(artifact_id: str) -> Artifact:
    """The artifact ``artifact_id`` (e.g. 'cstl-t3'); a ValueError lists the valid ids."""
    if artifact_id not in ARTIFACTS:
        raise ValueError(f"unknown artifact {artifact_id!r}; valid: {', '.join(ARTIFACT_IDS)}")
    return ARTIFACTS[artifact_id]
