"""What the artifact notebooks call: get an artifact's runs, compare them with the paper, record.

A notebook is a few lines over these functions::

    runs = study.runs_for("cstl-t3", profile, data, data_root, runs_dir, device, seed)
    table = study.ablation("cstl-t3", runs)
    study.record("cstl-t3", table, runs, results_dir, profile, data)

This module holds what a notebook orchestrates: the runs an artifact needs (:func:`runs_for`,
:func:`seed_runs`, :func:`spec_for`), the page's preamble and notes on its scope and devices
(:func:`setup`, :func:`scope`; the devices are in :mod:`gaitlib.report.scale`) and test data
for the inspection pages (:func:`test_features`, :func:`test_sequence`).  The rest lives by
responsibility and is re-exported here, so notebooks keep calling ``study.<name>``: the
comparison with the paper in :mod:`gaitlib.report.compare`, published results in
:mod:`gaitlib.report.records`, the scorecard and a page's other editions in
:mod:`gaitlib.report.evidence`, tables, plots and notes for the book in
:mod:`gaitlib.report.display`, and the scale of a page's runs with the chance and GEI floor
under them in :mod:`gaitlib.report.scale`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gaitlib.data.store import is_binarized
from gaitlib.papers.artifacts import Artifact, Row, artifact
from gaitlib.report import frames
from gaitlib.report.compare import (
    PAPERS,
    ablation,
    main_table,
    ours,
    parameter_table,
    per_view,
    per_view_comparison,
    reported,
    with_reported_means,
)
from gaitlib.report.display import (
    CAPTIONS,
    caption_for,
    compact_ablation,
    ordering_note,
    paired_note,
    plot_ablation,
    show,
    show_paired,
)
from gaitlib.report.evidence import other_results, scorecard
from gaitlib.report.protocol import protocol_note
from gaitlib.report.records import (
    FAITHFULNESS,
    SETTING_WORDS,
    headline,
    model_label,
    record,
    recorded,
)
from gaitlib.report.scale import baselines, floor_sentence, scale_note, trained_on
from gaitlib.runs.cache import Run, RunSpec, ensure_run
from gaitlib.runs.plan import artifact_runs, row_spec, seeded_runs

if TYPE_CHECKING:
    import torch

__all__ = [
    # defined here
    "DATA_NOTES", "PROFILE_NOTES", "ShownSequence", "needs_oumvlp", "runs_for", "scope",
    "seed_runs", "setup", "shown_sequence", "spec_for", "test_features", "test_sequence",
    # gaitlib.report.compare
    "PAPERS", "ablation", "main_table", "ours", "parameter_table", "per_view",
    "per_view_comparison", "reported", "with_reported_means",
    # gaitlib.report.display
    "CAPTIONS", "caption_for", "compact_ablation", "ordering_note", "paired_note",
    "plot_ablation", "show", "show_paired",
    # gaitlib.report.scale and gaitlib.report.protocol
    "baselines", "floor_sentence", "protocol_note", "scale_note", "trained_on",
    # gaitlib.report.records
    "FAITHFULNESS", "SETTING_WORDS", "headline", "model_label", "record",
    "recorded",
    # gaitlib.report.evidence
    "other_results", "scorecard",
    # gaitlib.data.store
    "is_binarized",
]

PROFILE_NOTES = {
    "smoke": "the smoke profile (a few iterations, a tiny test): plumbing only, the numbers "
             "mean nothing",
    "cpu": "the cpu profile: half the papers' input resolution and channel widths and 60 "
           "iterations (the exact scale is stated below)",
    "cpu-long": "the cpu-long profile: the cpu profile's half resolution and channel widths, "
                "trained 2-17x longer (120 to 1,000 iterations) and tested on every test "
                "subject (the exact scale is stated below)",
    "paper": "the papers' recipes (iterations, batches, resolutions)",
}
DATA_NOTES = {
    "synthetic": "the synthetic CASIA-B-shaped walker data (OU-MVLP-shaped for the OU-MVLP "
                 "tables), not the real datasets",
    "casia-b": "CASIA-B (the binarized copy unless you imported your own)",
    "oumvlp": "OU-MVLP",
}
DATASET_NAMES = {"casia-b": "CASIA-B", "oumvlp": "OU-MVLP"}


def spec_for(row: Row, data: str, profile: str, seed: int) -> RunSpec:
    return row_spec(row, data, profile, seed)


def needs_oumvlp(art: Artifact) -> bool:
    return any(r.shape == "oumvlp" for r in art.rows)


def runs_for(artifact_id: str, profile: str = "cpu", data: str = "synthetic",
             data_root: str | os.PathLike = "data", runs_dir: str | os.PathLike = "runs",
             device: str = "auto", seed: int = 0, progress: bool = True) -> dict[str, Run]:
    """Every run the artifact needs, keyed by row (``Row.key()``): reused, resumed or trained.

    The runs are those of :func:`gaitlib.runs.plan.artifact_runs`: the OU-MVLP tables run on
    OU-MVLP-shaped data (the synthetic OU-MVLP store for ``data='synthetic'``, the imported
    OU-MVLP store for ``data='oumvlp'``); data that cannot produce an artifact is a ValueError.
    """
    specs = artifact_runs(artifact_id, profile, data, seed)
    runs: dict[str, Run] = {}
    for row in artifact(artifact_id).rows:
        print(f"{row.key()}: {row.model} {row.options or ''}", flush=True)
        runs[row.key()] = run = ensure_run(specs[row.key()], runs_dir, data_root, device,
                                           progress=progress)
        # Reused or trained now, and how long it took, differ between builds: not printed into
        # the page (the status table of `gaitlib reproduce` has the times).
        print(f"  {run.run_dir} (trained on {', '.join(run.devices()) or 'an unrecorded device'})",
              flush=True)
    return runs


def seed_runs(artifact_id: str, seeds, profile: str = "cpu", data: str = "synthetic",
              data_root: str | os.PathLike = "data", runs_dir: str | os.PathLike = "runs",
              device: str = "auto", progress: bool = True) -> dict[str, list[Run]]:
    """Extra seeds of an ablation's reference row and full model (the rows whose difference is
    the table's claim): row key -> runs, one per seed, for :func:`ablation`'s ``seed_runs``."""
    out: dict[str, list[Run]] = {}
    for key, specs in seeded_runs(artifact_id, seeds, profile, data).items():
        out[key] = []
        for spec in specs:
            if progress:
                print(f"{key} seed {spec.seed}", flush=True)
            out[key].append(ensure_run(spec, runs_dir, data_root, device, progress=progress))
    return out


def test_features(run: Run, n_subjects: int = 10, max_frames: int | None = None,
                  conditions: tuple[str, ...] | None = None, device: str = "cpu"):
    """Embeddings of the first ``n_subjects`` test subjects' sequences with a run's model
    (for t-SNE and similar); frames shrunk as in the run's profile."""
    from gaitlib.evaluation.extract import extract_features

    store, _, test = run.subjects()
    items = store.select(subjects=test[:n_subjects], conditions=conditions)
    frames = run.config.eval.max_frames if max_frames is None else max_frames
    return extract_features(run.load_model(device), store, items, device, max_frames=frames,
                            sequences_per_batch=16, height=run.config.data.resolution)


def test_sequence(run: Run, index: int = 0, max_frames: int = 30):
    """One test sequence as the run's model sees it: ``(frames (T, h, w) float, label)``.  On
    real data these are the dataset's frames: compute with them, never draw them (figures take
    :func:`shown_sequence`)."""
    from gaitlib.data.pretreatment import crop_width

    store, _, test = run.subjects()
    item = int(store.select(subjects=test[:1])[index])
    label = f"{store.subjects[item]}/{store.conditions[item]}/{store.views[item]}"
    return _model_input(run, crop_width(store.frames_of(item))[:max_frames]), label


@dataclass(frozen=True)
class ShownSequence:
    """A sequence a page may draw: model-input ``frames`` (T, h, w), a ``label`` saying what it
    is, and ``source``, the dataset of the frames (what the figure functions check)."""

    frames: torch.Tensor
    label: str
    source: str


SYNTHETIC_STAND_IN = ("a synthetic walker's sequence (nm-01, 90°) through the model trained on "
                      "{data}: the book never shows frames of the real dataset")


def shown_sequence(run: Run, index: int = 0, max_frames: int = 30) -> ShownSequence:
    """A test sequence to draw: the run's own on synthetic data; on real data a sequence of the
    synthetic walker (rendered here, pretreated as real data), since no frame of a real dataset
    may be shown.  The model sees it as it sees its own test data."""
    from gaitlib.data.pretreatment import crop_width
    from gaitlib.data.store import Store
    from gaitlib.figures._common import is_synthetic_source

    dataset = Store(run.config.data.store).dataset
    if is_synthetic_source(dataset):
        frames, label = test_sequence(run, index, max_frames)
        return ShownSequence(frames, f"test sequence {label}", dataset)
    from gaitlib.data.pretreatment import pretreat_sequence
    from gaitlib.data.synthetic import render_sequence

    raw = render_sequence(seed=0, subject=1000 + index, condition="nm-01", view="090")
    frames = crop_width(pretreat_sequence(raw))[:max_frames]
    return ShownSequence(_model_input(run, frames),
                         SYNTHETIC_STAND_IN.format(data=DATASET_NAMES.get(dataset, dataset)),
                         "synthetic")


def _model_input(run: Run, frames: np.ndarray):
    import torch

    from gaitlib.data.sampling import to_model_input

    return to_model_input(torch.from_numpy(np.ascontiguousarray(frames)), "cpu",
                          run.config.data.resolution)


# --- notebook helpers -------------------------------------------------------------------------

def setup() -> None:
    """Notebook preamble: work from the repository root (so relative paths mean the same in
    JupyterLab, opened in ``notebooks/``, and under papermill), quiet warnings, plot defaults."""
    import warnings

    import matplotlib

    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / "_toc.yml").is_file() and (candidate / "gaitlib").is_dir():
            os.chdir(candidate)
            break
    warnings.filterwarnings("ignore", category=UserWarning)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.bbox": "tight"})
    pd.set_option("display.precision", 1)
    frames.install()  # every figure's output says what its images show (no real frames)


def scope(profile: str, data: str, data_root: str | os.PathLike | None = None) -> str:
    """One sentence saying which data and profile produced the numbers on a page (for real data
    with ``data_root``: whether the store is binarized, as the shared CASIA-B copy is)."""
    what = DATA_NOTES.get(data, data)
    if data != "synthetic" and data_root is not None:
        what = f"{data.upper() if data == 'oumvlp' else 'CASIA-B'}" + (
            " (a binarized copy: grey edge pixels thresholded, so numbers may differ slightly from "
            "the original silhouettes)" if is_binarized(Path(data_root) / data) else "")
    return (f"Reproduced on {what}, with {PROFILE_NOTES.get(profile, profile)}. "
            "The 95% CIs are bootstrap intervals over the test subjects.")
