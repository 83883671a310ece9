"""`gaitlib reproduce`: run the parameterised notebooks with papermill, publish them, build the book.

A notebook is published into ``book/`` only when it ran without error: a failing notebook is
reported and the previously published copy (if any) stays, so the book never shows a half-run
notebook. Volatile metadata (timings, kernel paths) is stripped so published notebooks diff cleanly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROFILES = ("smoke", "cpu", "paper")
DATASETS = ("synthetic", "casia-b", "oumvlp")
KERNEL = "gaitlib"

# Synthetic dataset per profile: smoke is tiny (plumbing only); cpu and paper use the default set.
SYNTH_OPTIONS = {
    "smoke": dict(n_subjects=8, views=("000", "054", "090", "126", "180")),
    "cpu": dict(n_subjects=100),
    "paper": dict(n_subjects=100),
}

# Notebook id -> source notebook (under notebooks/). The published copy is book/<id>.ipynb.
NOTEBOOKS = {
    "synthetic-data": "synthetic-data.ipynb",
}


class BookBuildError(RuntimeError):
    """The Sphinx build of the book failed (Sphinx printed why)."""


@dataclass
class NotebookRun:
    notebook: str
    status: str  # "ok", "failed", "skipped"
    seconds: float
    message: str = ""


def synthetic_store_path(data_root: Path, profile: str) -> Path:
    return Path(data_root) / ("synthetic-smoke" if profile == "smoke" else "synthetic")


def ensure_synthetic(data_root: Path, profile: str, seed: int = 0) -> Path:
    """Generate the profile's synthetic store unless it is already there."""
    from gaitlib.data.store import Store, StoreError
    from gaitlib.data.synthetic import generate

    path = synthetic_store_path(data_root, profile)
    try:
        Store(path)
        return path
    except StoreError:
        pass
    print(f"generating the {profile} synthetic dataset in {path} ...", flush=True)
    stats = generate(path, seed=seed, force=path.exists(), **SYNTH_OPTIONS[profile])
    print(stats.summary(), flush=True)
    return path


def ensure_kernel() -> None:
    """Register this environment's Python as the Jupyter kernel 'gaitlib' (inside the environment)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL in KernelSpecManager().find_kernel_specs():
        return
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL,
                    "--display-name", "Python (gaitlib)"], check=True, capture_output=True)


def strip_volatile(path: Path) -> None:
    """Drop timings and machine-specific metadata from an executed notebook."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    papermill = nb.metadata.get("papermill", {})
    for key in ("start_time", "end_time", "duration", "input_path", "output_path", "environment_variables"):
        papermill.pop(key, None)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill gives it a random id on every run
        cell.metadata.pop("execution", None)
        pm = cell.metadata.get("papermill", {})
        for key in ("start_time", "end_time", "duration", "exception", "status"):
            pm.pop(key, None)
    nbformat.write(nb, path)


def _portable(path: Path) -> str:
    """A path as notebooks see it (they run in the repository): relative when inside it, so
    published notebooks do not carry one machine's absolute paths."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def run_notebook(notebook_id: str, parameters: dict, out_dir: Path) -> NotebookRun:
    """Execute one notebook; on success publish it to ``out_dir / <id>.ipynb``."""
    import papermill

    src = REPO / "notebooks" / NOTEBOOKS[notebook_id]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / f"{notebook_id}.ipynb"
        try:
            papermill.execute_notebook(str(src), str(executed), parameters=parameters,
                                       kernel_name=KERNEL, cwd=str(REPO), progress_bar=False)
        except Exception as err:  # papermill raises PapermillExecutionError and others
            first_line = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            return NotebookRun(notebook_id, "failed", time.perf_counter() - start, first_line[:200])
        strip_volatile(executed)
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(executed, out_dir / f".{notebook_id}.ipynb.tmp")
        os.replace(out_dir / f".{notebook_id}.ipynb.tmp", out_dir / f"{notebook_id}.ipynb")
    return NotebookRun(notebook_id, "ok", time.perf_counter() - start)


def build_book(root: Path = REPO) -> int:
    """Build the HTML with warnings as errors; returns the exit code."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "--warningiserror",
           "--keep-going"]
    return subprocess.run(cmd, cwd=root).returncode


def reproduce(profile: str = "cpu", data: str = "synthetic", data_root: str | Path = "data",
              only: list[str] | None = None, seed: int = 0, build: bool = True,
              root: Path = REPO) -> list[NotebookRun]:
    """Run the selected notebooks for a profile and dataset, publish the ones that pass, build the book.

    ``root`` holds ``_config.yml``, ``_toc.yml`` and ``book/``: the repository by default; tests
    point it at a copy so a smoke build never overwrites the published notebooks.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    if data not in DATASETS:
        raise ValueError(f"unknown dataset {data!r}; valid: {', '.join(DATASETS)}")
    selected = list(only) if only else list(NOTEBOOKS)
    unknown = [n for n in selected if n not in NOTEBOOKS]
    if unknown:
        raise ValueError(f"unknown artifact id(s) {', '.join(unknown)}; valid: {', '.join(NOTEBOOKS)}")
    data_root = Path(data_root)
    synthetic = ensure_synthetic(data_root, profile, seed)
    ensure_kernel()
    parameters = dict(profile=profile, data=data, data_root=_portable(data_root),
                      synthetic_store=_portable(synthetic), seed=seed,
                      real_store=_portable(data_root / "casia-b"),
                      results_dir=_portable(Path(root) / "book" / "results"))
    out_dir = Path(root) / "book"
    runs = []
    for notebook_id in selected:
        print(f"running {notebook_id} ...", flush=True)
        runs.append(run_notebook(notebook_id, parameters, out_dir))
    print(format_runs(runs))
    if build:
        code = build_book(Path(root))
        if code:
            raise BookBuildError(f"the book build failed (exit code {code}); see the Sphinx output above")
    return runs


def format_runs(runs: list[NotebookRun]) -> str:
    width = max([len(r.notebook) for r in runs] + [8])
    lines = [f"{'artifact':<{width}}  status   seconds  message"]
    lines += [f"{r.notebook:<{width}}  {r.status:<7} {r.seconds:8.1f}  {r.message}" for r in runs]
    return "\n".join(lines)
