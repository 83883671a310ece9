"""Train every run a set of notebooks needs before the notebooks execute, on the plan's devices.

Notebooks that share a run (the full model of an ablation is also the main table's model) used
to meet at the run's lock: one trained, the other waited, and a device stood idle.  Training
the distinct runs first, in the order and on the GPUs the plan gives them
(:mod:`gaitlib.runs.budget`: longest projected first, a wide run on several GPUs), keeps every
device busy; the notebooks then find every run in the cache and only evaluate, plot and record.
The cache, keys and results are those of :func:`gaitlib.runs.cache.ensure_run`, so a run trained
here equals one a notebook would train, whatever the number of GPUs it trained on.

Each run trains in its own process (under torchrun on several GPUs) whose output goes to
``<runs_dir>/<run folder>.log``; the console shows the live progress of :mod:`gaitlib.runs.progress`.

    python -m gaitlib.runs.pretrain JOB.json   # the child (one run; see gaitlib.runs.runner)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gaitlib.runs.budget import ESTIMATES_FILE, Estimates, Placed, Plan, make_plan
from gaitlib.runs.cache import RunSpec
from gaitlib.runs.plan import PlannedRun, study_plan


@dataclass
class Trained:
    """What happened to one planned run: 'cached' (already finished), 'trained' or 'failed'
    (``message``: why, and where its log is)."""

    spec: RunSpec
    status: str
    seconds: float = 0.0
    message: str = ""


def planned_runs(notebooks: Sequence[str], profile: str, data: str, seed: int = 0,
                 extra_seeds: Sequence[int] = (), precision: str = "") -> list[RunSpec]:
    """The distinct runs the ``notebooks`` will ask for on ``data`` (:func:`~gaitlib.runs.plan.
    study_plan`): what ``study.runs_for`` and ``study.seed_runs`` ask for."""
    return [p.spec for p in study_plan(notebooks, profile, data, seed, extra_seeds, precision)]


def run_label(spec: RunSpec) -> str:
    shape = " oumvlp" if spec.shape == "oumvlp" else ""
    return f"{spec.model}[{spec.options_text()}]{shape} seed {spec.seed}"


def worker_plan(specs: Sequence[RunSpec], workers: int,
                runs_dir: str | os.PathLike = "runs") -> Plan:
    """A plan for CPU workers: one run each, longest first (by estimated work when the dry run
    has not timed them)."""
    return make_plan([PlannedRun(s, ()) for s in specs], workers, None,
                     estimates=Estimates(Path(runs_dir) / ESTIMATES_FILE))


def pretrain(runs: Plan | Sequence[RunSpec], workers: Sequence,
             runs_dir: str | os.PathLike = "runs", data_root: str | os.PathLike = "data",
             interval: float | None = None) -> list[Trained]:
    """Train the unfinished runs of ``runs`` (a plan, or specs planned here for CPU workers) in
    parallel on ``workers`` (:class:`gaitlib.runs.pool.Worker`: a device and its environment),
    in the plan's order, each on as many workers as the plan gives it.  A failed run is
    reported and never stops the others.  ``interval``: seconds between progress reports."""
    from gaitlib.runs.cache import resolve, run_dir_of
    from gaitlib.runs.pool import run_in_order
    from gaitlib.runs.progress import Active, Board
    from gaitlib.runs.runner import run_child
    from gaitlib.training.progress import duration_text
    from gaitlib.training.rundir import is_finished

    runs_dir, data_root = Path(runs_dir).resolve(), Path(data_root).resolve()
    plan = runs if isinstance(runs, Plan) else worker_plan(runs, len(workers), runs_dir)
    results: list[Trained] = []
    todo: list[tuple[Placed, Path, int]] = []
    for placed in plan.runs:
        config = resolve(placed.need.spec, data_root)
        run_dir = run_dir_of(config, runs_dir)
        if is_finished(run_dir):
            results.append(Trained(placed.need.spec, "cached"))
        else:
            todo.append((placed, run_dir, config.schedule.iterations))
    if not todo:
        return results
    print(f"training {len(todo)} runs before the notebooks ({len(results)} already in "
          f"{runs_dir}) on {len(workers)} workers, longest first; each run's output in "
          f"{runs_dir}/<run>.log", flush=True)

    def one(item: tuple[Placed, Path, int], slot) -> Trained:
        placed, run_dir, iterations = item
        spec = placed.need.spec
        board.started(run_dir.name, Active(run_label(spec), run_dir, iterations, placed.gpus,
                                           placed.hours, time.monotonic(), slot.name), placed)
        out = run_child("gaitlib.runs.pretrain",
                        {"spec": spec.to_dict(), "device": slot.device, "runs_dir": str(runs_dir),
                         "data_root": str(data_root), "recompute": placed.need.recompute},
                        slot.env,
                        log=runs_dir / f"{run_dir.name}.log", processes=placed.gpus)
        done = Trained(spec, "trained" if out.ok else "failed", out.seconds, out.message)
        board.finished(run_dir.name, f"{run_label(spec)}: {done.status} "
                       f"({duration_text(done.seconds)}){': ' + done.message if done.message else ''}")
        return done

    with Board(len(todo), len(workers), [t[0] for t in todo], interval) as board:
        results += run_in_order(todo, workers, one, width=lambda item: item[0].gpus)
    return results


def training_summary(trained: Sequence, wall: float) -> str:
    """Where the training time went: runs trained, cached and failed, the sum of their times and
    the wall-clock time (the pool's parallelism is their ratio)."""
    by = {s: [t for t in trained if t.status == s] for s in ("trained", "cached", "failed")}
    busy = sum(t.seconds for t in trained)
    return (f"training before the notebooks: {len(by['trained'])} trained, {len(by['cached'])} "
            f"cached, {len(by['failed'])} failed; {busy:.0f} s of runs in {wall:.0f} s wall "
            f"({busy / wall if wall > 0 else 0:.2f} runs at a time on average)")


def _train(job: dict) -> dict:
    """The child: train (or resume) one run in the cache, as one rank when under torchrun."""
    from gaitlib.runs.cache import ensure_run
    from gaitlib.training.distributed import shutdown

    try:
        run = ensure_run(RunSpec.from_dict(job["spec"]), job["runs_dir"], job["data_root"],
                         job["device"], progress=False, recompute=job.get("recompute", False))
    finally:
        shutdown()
    return {"run_dir": str(run.run_dir), "reused": run.reused}


if __name__ == "__main__":
    from gaitlib.runs.runner import child_main

    sys.exit(child_main(_train))
