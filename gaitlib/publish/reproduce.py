"""`gaitlib reproduce`: run the parameterised notebooks with papermill, publish them, build the book.

Each notebook is executed and published by :mod:`gaitlib.publish.notebooks` (a failing one is
reported and never published; a cheaper page never replaces a more faithful one).

The notebooks run in a fixed order: ``synthetic-data``, one notebook per artifact of
:data:`gaitlib.papers.artifacts.ARTIFACT_IDS`, then ``scorecard``, which reads the others' results
and so always runs after all of them have finished.  With GPUs (``gpus=``) the artifact notebooks
run in parallel, one per GPU at a time, each in its own process that sees only its GPU (on the
CPU, workers split the cores; the pool is :mod:`gaitlib.runs.pool`).  On GPUs, or with several
CPU workers, every run the notebooks need is planned (:mod:`gaitlib.runs.budget`: GPUs per run,
memory per GPU, hours, schedule; printed first, and a run that fits no card stops everything
before it starts) and trained first (:mod:`gaitlib.runs.pretrain`); the run cache
(:func:`gaitlib.runs.cache.ensure_run`) locks each run, so two processes asking for the same run
train it once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from gaitlib.publish.notebooks import (
    FINAL,
    NOTEBOOKS,
    REPO,
    BookBuildError,
    Job,
    NotebookRun,
    build_book,
    ensure_kernel,
    execute_all,
    format_runs,
)
from gaitlib.runs.cache import (
    PRECISION_ENV,
    check_real_store,
    ensure_synthetic,
    synthetic_store_path,
)
from gaitlib.runs.plan import skip_reason
from gaitlib.runs.pool import Worker, check_gpus, cpu_workers, gpu_memory_gib, gpu_workers
from gaitlib.training.recipes import PROFILES

DATASETS = ("synthetic", "casia-b", "oumvlp")
SHAPES = ("casia-b", "oumvlp")  # the layouts a run can need (see RunSpec.shape)


def _portable(path: Path) -> str:
    """A path as notebooks see it (they run in the repository): relative when inside it, so
    published notebooks do not carry one machine's absolute paths."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def select(only: Sequence[str] | None) -> list[str]:
    """The notebooks to run, in running order (``scorecard`` last): all for ``None``; a
    ValueError lists the valid ids for an unknown one or an empty selection."""
    if only is None:
        return list(NOTEBOOKS)
    if not only:
        raise ValueError(f"no artifact selected; valid: {', '.join(NOTEBOOKS)}")
    unknown = [n for n in only if n not in NOTEBOOKS]
    if unknown:
        raise ValueError(f"unknown artifact id(s) {', '.join(unknown)}; valid: {', '.join(NOTEBOOKS)}")
    return [n for n in NOTEBOOKS if n in set(only)]


def reproduce(profile: str = "cpu", data: str = "synthetic", data_root: str | Path = "data",
              only: Sequence[str] | None = None, seed: int = 0, build: bool = True,
              root: Path = REPO, runs_dir: str | Path = "runs", gpus: Sequence[int | str] | None = None,
              notebooks_dir: Path | None = None, workers: Sequence[Worker] | None = None,
              jobs: int | None = None, extra_seeds: Sequence[int] = (),
              allow_dirty: bool = False, train_first: bool = True, precision: str = "recipe",
              gpu_gib: float | None = None) -> list[NotebookRun]:
    """Run the selected notebooks for a profile and dataset, publish the ones that pass, build the book.

    ``root`` holds ``_config.yml``, ``_toc.yml`` and ``book/``: the repository by default; tests
    point it at a copy so a smoke build never overwrites the published notebooks.  Source notebooks
    are ``notebooks_dir/<id>.ipynb`` (default the repository's ``notebooks/``); a missing one is
    reported as 'missing'.  ``gpus`` (ids) runs the notebooks in parallel, one per GPU;
    without GPUs, ``jobs`` notebooks run at once on the CPU (default: see :func:`cpu_workers`;
    ``jobs=1`` runs them one by one in this process).  ``workers`` overrides the pool (tests).
    ``extra_seeds``: further seeds of each ablation's reference row and full model (their
    seed-to-seed SDs join the ablation pages).  On GPUs or with a pool of several workers and
    ``train_first``, every run the selected notebooks need is planned (printed; a run that fits
    no allowed number of ``gpu_gib``-GiB cards, default the GPUs' own memory, raises
    :class:`~gaitlib.runs.budget.PlanError` before anything trains) and trained first
    (:mod:`gaitlib.runs.pretrain`), so the notebooks only evaluate and plot; a notebook whose
    run failed there is reported failed without training it again.  ``precision``: 'recipe'
    (each recipe's own), or bf16 / fp16 / fp32 for every paper-profile run.
    Raises ValueError for unknown names and FileNotFoundError / ValueError when a real dataset's
    store is absent or of another dataset, before any notebook runs; BookBuildError when the build
    fails.  Publishing into the repository's own book from a checkout with uncommitted source
    changes raises :class:`~gaitlib.provenance.DirtyTreeError` unless ``allow_dirty`` (then
    every result is marked ``COMMIT+dirty``).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    if data not in DATASETS:
        raise ValueError(f"unknown dataset {data!r}; valid: {', '.join(DATASETS)}")
    selected = select(only)
    if Path(runs_dir).exists() and not Path(runs_dir).is_dir():
        raise FileExistsError(f"--runs-dir {runs_dir} is a file, not a directory of runs")
    _choose_precision(precision, profile)
    if workers is None and gpus:
        workers = gpu_workers(gpus)
        check_gpus(gpus)
        gpu_gib = gpu_gib or gpu_memory_gib(gpus)
    elif workers is None and jobs != 1:
        workers = cpu_workers(jobs)
        if len(workers) == 1:
            workers = None
    data_root = Path(data_root)
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else REPO / "notebooks"

    # Data first, so a wrong --data-root fails before hours of notebooks.
    if data != "synthetic":
        check_real_store(data, data_root)
    if Path(root).resolve() == REPO:  # publishing into the repository's book: from a clean tree
        from gaitlib.provenance import require_clean

        require_clean(REPO, allow_dirty)
    synthetic = synthetic_store_path(data_root, profile)
    if data == "synthetic" or "synthetic-data" in selected:
        synthetic = ensure_synthetic(data_root, profile, seed)
    if data == "synthetic":
        ensure_synthetic(data_root, profile, seed, shape="oumvlp")
    ensure_kernel()

    # Everything a notebook may declare; each gets only the names its parameters cell has.
    parameters = dict(profile=profile, data=data, data_root=_portable(data_root),
                      runs_dir=_portable(Path(runs_dir)), seed=seed,
                      results_dir=_portable(Path(root) / "book" / "results"),
                      synthetic_store=_portable(synthetic),
                      real_store=_portable(data_root / "casia-b"),
                      extra_seeds=",".join(str(int(s)) for s in extra_seeds))
    out_dir = Path(root) / "book"
    started = time.perf_counter()
    failed_runs: dict = {}
    if train_first and workers and (gpus or len(workers) > 1):  # no worker waits on a run lock
        failed_runs = _train_first([n for n in selected if not skip_reason(n, data)
                                    and (notebooks_dir / NOTEBOOKS[n]).is_file()],
                                   profile, data, seed, extra_seeds, precision, workers,
                                   gpu_gib if gpus else None, runs_dir, data_root, started)
    results: dict[str, NotebookRun] = {}
    pages: list[Job] = []
    for notebook_id in selected:
        src = notebooks_dir / NOTEBOOKS[notebook_id]
        reason = skip_reason(notebook_id, data)
        if reason:
            results[notebook_id] = NotebookRun(notebook_id, "skipped", 0.0, reason)
        elif not src.is_file():
            results[notebook_id] = NotebookRun(notebook_id, "missing", 0.0, f"no notebook {_portable(src)}")
        elif notebook_id in failed_runs:
            results[notebook_id] = NotebookRun(notebook_id, "failed", 0.0, failed_runs[notebook_id])
        else:
            pages.append(Job(notebook_id, src, parameters, out_dir))
    # The scorecard reads every other artifact's results: it starts when all of them are done.
    first = [j for j in pages if j.notebook != FINAL]
    last = [j for j in pages if j.notebook == FINAL]
    for batch in (first, last):
        for run in execute_all(batch, workers):
            results[run.notebook] = run
    runs = [results[n] for n in selected]
    print(format_runs(runs, time.perf_counter() - started))
    if build:
        from gaitlib.report.frames import unpublishable

        shown = unpublishable(out_dir)  # pages kept from earlier builds are checked too
        if shown:
            raise BookBuildError(f"refusing to build the book: {len(shown)} page(s) made from real "
                                 f"data hold images that may show its frames ({', '.join(shown)}); "
                                 "rebuild them with this version of gaitlib")
        build_start = time.perf_counter()
        code = build_book(Path(root))
        if code:
            raise BookBuildError(f"the book build failed (exit code {code}); see the Sphinx output above")
        print(f"book build: {time.perf_counter() - build_start:.0f} s; everything: "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    return runs


def _choose_precision(precision: str, profile: str) -> None:
    """Check ``--precision`` and hand it to the notebooks' processes (:data:`PRECISION_ENV`)."""
    from gaitlib.training.config import PRECISIONS

    if precision not in ("recipe", *PRECISIONS):
        raise ValueError(f"--precision {precision!r}; valid: recipe, {', '.join(PRECISIONS)}")
    if precision != "recipe" and profile != "paper":
        raise ValueError(f"--precision {precision} applies to the paper profile; the {profile} "
                         "profile trains in fp32")
    if precision == "recipe":
        os.environ.pop(PRECISION_ENV, None)
    else:
        os.environ[PRECISION_ENV] = precision


def _train_first(notebooks: list[str], profile: str, data: str, seed: int,
                 extra_seeds: Sequence[int], precision: str, workers: Sequence[Worker],
                 gpu_gib: float | None, runs_dir, data_root: Path, started: float) -> dict:
    """Plan the unfinished runs of ``notebooks`` (printed; PlanError when one fits no card),
    train them; returns notebook id -> why it cannot run (one of its runs failed)."""
    from gaitlib.runs.budget import format_plan, study_budget
    from gaitlib.runs.cache import resolve, run_dir_of
    from gaitlib.runs.plan import study_plan
    from gaitlib.runs.pretrain import pretrain, run_label, training_summary
    from gaitlib.training.rundir import is_finished

    def finished(spec) -> bool:
        return is_finished(run_dir_of(resolve(spec, data_root), runs_dir))

    plan = study_budget(notebooks, profile, data, seed, extra_seeds, precision, len(workers),
                        gpu_gib, runs_dir, leave_out=finished)
    if plan.runs:
        print(format_plan(plan), flush=True)
    trained = pretrain(plan, workers, runs_dir, data_root)
    if trained:
        print(training_summary(trained, time.perf_counter() - started), flush=True)
    failed = {t.spec: t.message for t in trained if t.status == "failed"}
    blocked = {}
    for notebook in notebooks:
        bad = [p.spec for p in study_plan([notebook], profile, data, seed, extra_seeds,
                                          "" if precision == "recipe" else precision)
               if p.spec in failed]
        if bad:
            blocked[notebook] = (f"its run {run_label(bad[0])} failed in training, not retried: "
                                 f"{failed[bad[0]]}")[:300]
    return blocked
