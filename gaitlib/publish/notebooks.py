"""Execute one parameterised notebook with papermill and publish it into ``book/``; build the book.

A notebook is published only when it ran without error: a failing notebook is reported and the
previously published copy (if any) stays, so the book never shows a half-run notebook.  What
changes from one run to the next without the results changing (timings, random ids, machine
paths, widget state) is stripped or normalised (:func:`strip_volatile`), so rebuilding the same
commit with the same runs leaves ``git status`` clean.  A page made from more faithful data, a
more faithful profile or more seeds is never replaced by a cheaper one
(:func:`more_faithful_published`).  Only notebooks run here may record results into
``book/results`` (``GAITLIB_PUBLISH``, see :mod:`gaitlib.report.results`).  With workers, each
notebook runs in its own process that sees only its worker's device (:func:`execute_all`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gaitlib.errors import GaitlibError
from gaitlib.papers.artifacts import ARTIFACT_IDS
from gaitlib.provenance import SOURCE_ROOT
from gaitlib.report.results import PUBLISH_ENV
from gaitlib.runs.pool import Worker

REPO = SOURCE_ROOT  # the checkout: notebooks/ in, book/ out
KERNEL = "gaitlib"
# Notebook id -> source notebook (under notebooks/). The published copy is book/<id>.ipynb.
# The order is the running order; "scorecard" must stay last.
NOTEBOOKS = {nb_id: f"{nb_id}.ipynb" for nb_id in ("synthetic-data", *ARTIFACT_IDS, "scorecard")}
FINAL = "scorecard"
STATUSES = ("ok", "failed", "skipped", "missing")

class BookBuildError(GaitlibError, RuntimeError):
    """The Sphinx build of the book failed (Sphinx printed why)."""


@dataclass
class NotebookRun:
    notebook: str
    status: str  # "ok", "failed", "skipped" (cannot run on this data), "missing" (no source notebook)
    seconds: float
    message: str = ""


def ensure_kernel() -> None:
    """Register this environment's Python as the Jupyter kernel 'gaitlib' (inside the environment)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL in KernelSpecManager().find_kernel_specs():
        return
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL,
                    "--display-name", "Python (gaitlib)"], check=True, capture_output=True)


# A pandas Styler table's id: 'T_' and five random hex digits, new on every run.
_STYLER_ID = re.compile(r"\bT_([0-9a-f]{5})(?=[_\"\s{])")
_WIDGET = "application/vnd.jupyter.widget-view+json"
# An object's default repr ('<pandas...Styler at 0x7f0e554249d0>'): a memory address.
_ADDRESS = re.compile(r"(<[^<>\n]* at )0x[0-9a-f]+>")


def strip_volatile(path: Path) -> None:
    """Make an executed notebook depend only on its inputs and results, and ready to publish.

    Drops timings, papermill's paths and the widget state, and outputs that only a live kernel
    can show (progress-bar widgets); numbers the Styler tables' random ids in order of
    appearance; zeroes memory addresses in default reprs; writes paths inside the repository
    relative to it and the home directory as ``~``; removes the parameter cells from the page
    (the page says which data and profile produced it; the values stay in the metadata).
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    nb.metadata.get("language_info", {}).pop("version", None)  # the builder's patch release
    papermill = nb.metadata.get("papermill", {})
    for key in ("start_time", "end_time", "duration", "input_path", "output_path", "environment_variables"):
        papermill.pop(key, None)
    styler_ids: dict[str, str] = {}

    def normalise(text: str) -> str:
        text = _STYLER_ID.sub(lambda m: "T_" + styler_ids.setdefault(m.group(1), f"{len(styler_ids):05d}"),
                              text)
        text = _ADDRESS.sub(r"\g<1>0x0>", text)
        text = text.replace(f"{REPO}/", "").replace(str(REPO), ".")
        return text.replace(str(Path.home()), "~")

    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            cell.id = "injected-parameters"  # papermill gives it a random id on every run
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
        cell.metadata.pop("execution", None)
        pm = cell.metadata.get("papermill", {})
        for key in ("start_time", "end_time", "duration", "exception", "status"):
            pm.pop(key, None)
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            data = output.get("data")
            if data is not None:
                data.pop(_WIDGET, None)
                if not data:
                    continue
                for mime, value in data.items():
                    if isinstance(value, str) and mime.startswith("text/"):
                        data[mime] = normalise(value)
            if isinstance(output.get("text"), str):
                output["text"] = normalise(output["text"])
            kept.append(output)
        cell.outputs = kept
    nbformat.write(nb, path)


def declared_parameters(src: Path) -> set[str]:
    """Names in the notebook's ``parameters`` cell (empty when it has none)."""
    from papermill import inspect_notebook

    return set(inspect_notebook(str(src)))


def _error_message(err: Exception) -> str:
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename:  # PapermillExecutionError: the notebook's own exception
        cell = getattr(err, "exec_count", None)
        return f"{ename}: {evalue}" + (f" (cell [{cell}])" if cell is not None else "")
    text = str(err).strip()
    return text.splitlines()[-1] if text else type(err).__name__


def _faithfulness(parameters: dict) -> tuple[int, int, int]:
    """How faithful a page made with ``parameters`` is: data, then profile, then seeds."""
    from gaitlib.report.records import FAITHFULNESS

    seeds = 1 + len([s for s in str(parameters.get("extra_seeds", "")).split(",") if s.strip()])
    return (FAITHFULNESS["data"].get(parameters.get("data", ""), 0),
            FAITHFULNESS["profile"].get(parameters.get("profile", ""), 0), seeds)


def more_faithful_published(published: Path, parameters: dict, notebook_id: str) -> str:
    """A description ('<data>/<profile>', plus 'N seeds' when seeds decide) when ``published`` is
    an artifact page made from more faithful data, a more faithful profile (real data over
    synthetic, then paper over cpu-long over cpu over smoke) or, with both equal, more seeds than
    ``parameters``; else ''.  A cheap rebuild never replaces a result that took a GPU, real data
    or extra seeds."""
    if notebook_id not in ARTIFACT_IDS or not published.is_file():
        return ""
    import nbformat

    old = nbformat.read(published, as_version=4).metadata.get("papermill", {}).get("parameters", {})
    if "data" not in old or "profile" not in old:
        return ""
    mine, theirs = _faithfulness(parameters), _faithfulness(old)
    if theirs <= mine:
        return ""
    seeds = f", {theirs[2]} seeds" if theirs[:2] == mine[:2] else ""
    return f"{old['data']}/{old['profile']}{seeds}"


def run_notebook(notebook_id: str, parameters: dict, out_dir: Path, src: Path | None = None) -> NotebookRun:
    """Execute one notebook in this process; on success publish it to ``out_dir / <id>.ipynb``.

    Only the parameters that the notebook's ``parameters`` cell declares are passed.
    """
    import papermill

    src = Path(src) if src is not None else REPO / "notebooks" / NOTEBOOKS[notebook_id]
    start = time.perf_counter()
    previous = os.environ.get(PUBLISH_ENV)
    os.environ[PUBLISH_ENV] = "1"  # the kernel inherits it: this run may record results
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / f"{notebook_id}.ipynb"
        try:
            declared = declared_parameters(src)
            papermill.execute_notebook(str(src), str(executed),
                                       parameters={k: v for k, v in parameters.items() if k in declared},
                                       kernel_name=KERNEL, cwd=str(REPO), progress_bar=False)
        except Exception as err:  # papermill raises PapermillExecutionError and others
            return NotebookRun(notebook_id, "failed", time.perf_counter() - start, _error_message(err)[:200])
        finally:
            if previous is None:
                os.environ.pop(PUBLISH_ENV, None)
            else:
                os.environ[PUBLISH_ENV] = previous
        strip_volatile(executed)
        from gaitlib.report.frames import RealFramesError, check_page

        try:  # no page on real data may show its frames
            check_page(executed, {k: v for k, v in parameters.items() if k in declared})
        except RealFramesError as err:
            return NotebookRun(notebook_id, "failed", time.perf_counter() - start, str(err)[:300])
        kept = more_faithful_published(out_dir / f"{notebook_id}.ipynb",
                                       {k: v for k, v in parameters.items() if k in declared},
                                       notebook_id)
        if kept:
            return NotebookRun(notebook_id, "ok", time.perf_counter() - start,
                               f"not published: the book keeps its {kept} page")
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(executed, out_dir / f".{notebook_id}.ipynb.tmp")
        os.replace(out_dir / f".{notebook_id}.ipynb.tmp", out_dir / f"{notebook_id}.ipynb")
    return NotebookRun(notebook_id, "ok", time.perf_counter() - start)


@dataclass(frozen=True)
class Job:
    """One notebook to execute: its id, source, the parameters on offer (the device is added per
    worker) and where it is published."""

    notebook: str
    src: Path
    parameters: dict
    out_dir: Path


def _run_in_subprocess(job: Job, worker: Worker) -> NotebookRun:
    """Execute ``job`` in a fresh process with the worker's environment (its GPU only)."""
    from gaitlib.runs.runner import run_child

    out = run_child("gaitlib.publish.notebooks",
                    {"notebook": job.notebook, "src": str(job.src),
                     "parameters": {**job.parameters, "device": worker.device},
                     "out_dir": str(job.out_dir)}, worker.env, cwd=REPO)
    run = NotebookRun(**out.result) if out.ok else \
        NotebookRun(job.notebook, "failed", 0.0, f"worker {out.message}"[:200])
    run.seconds = out.seconds
    return run


def execute_all(jobs: Sequence[Job], workers: Sequence[Worker] | None = None,
                device: str = "auto") -> list[NotebookRun]:
    """Execute ``jobs``: in order in this process (no workers, every notebook gets ``device``), or
    in parallel with one job per worker at a time, each in its own process.  A failing notebook
    never stops the others.  Results come back in the order of ``jobs``."""
    if not workers:
        runs = []
        for job in jobs:
            print(f"running {job.notebook} ...", flush=True)
            runs.append(run_notebook(job.notebook, {**job.parameters, "device": device}, job.out_dir,
                                     job.src))
        return runs
    from gaitlib.runs.pool import run_in_order

    def one(job: Job, worker: Worker) -> NotebookRun:
        print(f"running {job.notebook} on {worker.name} ...", flush=True)
        run = _run_in_subprocess(job, worker)
        print(f"{job.notebook}: {run.status} ({run.seconds:.1f} s)", flush=True)
        return run

    return run_in_order(jobs, workers, one)


def build_book(root: Path = REPO) -> int:
    """Build the HTML with warnings as errors; returns the exit code."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "--warningiserror",
           "--keep-going"]
    return subprocess.run(cmd, cwd=root).returncode


def format_runs(runs: Sequence[NotebookRun], wall: float | None = None) -> str:
    """The status table: one line per notebook, then a total (wall-clock seconds when given)."""
    width = max([len(r.notebook) for r in runs] + [8])
    lines = [f"{'artifact':<{width}}  status   seconds  message"]
    lines += [f"{r.notebook:<{width}}  {r.status:<7} {r.seconds:8.1f}  {r.message}" for r in runs]
    counts = ", ".join(f"{sum(r.status == s for r in runs)} {s}" for s in STATUSES
                       if any(r.status == s for r in runs))
    total = sum(r.seconds for r in runs) if wall is None else wall
    lines.append(f"{'total':<{width}}  {'':<7} {total:8.1f}  {len(runs)} notebooks: {counts or 'none'}")
    return "\n".join(lines)


def _child(job: dict) -> dict:
    """Worker-process entry: execute one notebook (see ``_run_in_subprocess``)."""
    return asdict(run_notebook(job["notebook"], job["parameters"], Path(job["out_dir"]),
                               Path(job["src"])))


if __name__ == "__main__":
    from gaitlib.runs.runner import child_main

    sys.exit(child_main(_child))
