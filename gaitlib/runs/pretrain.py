"""Train every run a set of notebooks needs before the notebooks execute, costliest first.

Notebooks that share a run (the full model of an ablation is also the main table's model) used
to meet at the run's lock: one trained, the other waited, and a core stood idle.  Training the
distinct runs first, in a pool of single-run processes ordered by estimated cost (longest first,
so no long run starts last), keeps every worker busy; the notebooks then find every run in the
cache and only evaluate, plot and record.  The cache, keys and results are those of
:func:`gaitlib.runs.cache.ensure_run`, so a run trained here equals one a notebook would train.

    python -m gaitlib.runs.pretrain SPEC.json   # worker-process entry (one run)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gaitlib.report.artifacts import ARTIFACTS
from gaitlib.runs.cache import RunSpec


@dataclass
class Trained:
    """What happened to one planned run: 'cached' (already finished), 'trained' or 'failed'."""

    spec: RunSpec
    status: str
    seconds: float = 0.0
    message: str = ""


def planned_runs(notebooks: Sequence[str], profile: str, data: str, seed: int = 0,
                 extra_seeds: Sequence[int] = ()) -> list[RunSpec]:
    """The distinct runs the ``notebooks`` will ask for on ``data``: every row of every artifact
    (OU-MVLP rows on the OU-MVLP-shaped synthetic store when ``data`` is synthetic), and for each
    ablation its reference row and full model once more per extra seed (what
    :func:`gaitlib.report.study.seed_runs` asks for).  Artifacts that cannot run on ``data`` are
    left out, as the notebooks are."""
    specs: dict[RunSpec, None] = {}
    for aid in notebooks:
        art = ARTIFACTS.get(aid)
        if art is None:
            continue
        shapes = {row.shape for row in art.rows}
        if data != "synthetic" and shapes - {data}:
            continue
        for row in art.rows:
            specs.setdefault(RunSpec.of(row.model, data=data, profile=profile, seed=seed,
                                        shape=row.shape, **row.options))
        if art.kind == "ablation":
            for row in art.seeded_rows():
                for extra in extra_seeds:
                    specs.setdefault(RunSpec.of(row.model, data=data, profile=profile,
                                                seed=int(extra), shape=row.shape, **row.options))
    return list(specs)


def step_cost(spec: RunSpec, data_root: str | os.PathLike = "data") -> float:
    """Relative cost of a run: the forward FLOPs of one training clip at the run's scale.

    Every run of a profile trains the same number of iterations on the same batch shape and
    evaluates the same test set, so this orders runs by their time.  NaN when it cannot be
    counted (the run is then scheduled first, which is the safe side)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from gaitlib.runs.cache import resolve
    from gaitlib.training.trainer import build_model

    try:
        config = resolve(spec, data_root)
        model = build_model(config, num_classes=8).eval()
        height = config.data.resolution
        clip = torch.zeros(1, config.sampling.frames, height, height * 11 // 16)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(clip)
        return float(counter.get_total_flops())
    except Exception:  # a model that cannot take a dummy clip: schedule it first
        return float("nan")


def _is_finished(spec: RunSpec, runs_dir: Path, data_root: Path) -> bool:
    from gaitlib.runs.cache import resolve, run_key
    from gaitlib.training.rundir import is_finished

    config = resolve(spec, data_root)
    return is_finished(runs_dir / f"{spec.model}-{run_key(config)}")


def describe(spec: RunSpec) -> str:
    shape = " oumvlp" if spec.shape == "oumvlp" else ""
    return f"{spec.model}[{spec.options_text()}]{shape} seed {spec.seed}"


def _train_in_subprocess(spec: RunSpec, device: str, env: dict[str, str], runs_dir: Path,
                         data_root: Path) -> Trained:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "run.json"
        job.write_text(json.dumps({"spec": spec.to_dict(), "device": device,
                                   "runs_dir": str(runs_dir), "data_root": str(data_root)}))
        proc = subprocess.run([sys.executable, "-m", "gaitlib.runs.pretrain", str(job)],
                              env={**os.environ, **env}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode == 0:
        return Trained(spec, "trained", seconds)
    tail = (proc.stderr or proc.stdout).strip().splitlines()
    return Trained(spec, "failed", seconds, (tail[-1] if tail else f"exit code {proc.returncode}")[:200])


def pretrain(specs: Sequence[RunSpec], workers: Sequence, runs_dir: str | os.PathLike = "runs",
             data_root: str | os.PathLike = "data") -> list[Trained]:
    """Train the unfinished ``specs`` in parallel, one process per worker slot
    (:class:`gaitlib.runs.pool.Worker`: its device and environment), costliest first.
    A failed run is reported and never stops the others (its notebook reports it again)."""
    import queue

    runs_dir, data_root = Path(runs_dir), Path(data_root)
    results: list[Trained] = []
    todo = []
    for spec in specs:
        if _is_finished(spec, runs_dir, data_root):
            results.append(Trained(spec, "cached"))
        else:
            todo.append(spec)
    if not todo:
        return results
    costs = {spec: step_cost(spec, data_root) for spec in todo}
    todo.sort(key=lambda s: -costs[s] if costs[s] == costs[s] else float("-inf"))
    print(f"training {len(todo)} runs before the notebooks ({len(results)} already in {runs_dir}), "
          f"{len(workers)} at a time, costliest first", flush=True)
    free: queue.Queue = queue.Queue()
    for worker in workers:
        free.put(worker)
    done = [0]

    def one(spec: RunSpec) -> Trained:
        worker = free.get()
        try:
            out = _train_in_subprocess(spec, worker.device, worker.env, runs_dir, data_root)
        finally:
            free.put(worker)
        done[0] += 1
        extra = f": {out.message}" if out.message else ""
        print(f"[{done[0]}/{len(todo)}] {describe(spec)}: {out.status} ({out.seconds:.0f} s){extra}",
              flush=True)
        return out

    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        results.extend(pool.map(one, todo))
    return results


def training_summary(trained: Sequence, wall: float) -> str:
    """Where the training time went: runs trained, cached and failed, the sum of their times and
    the wall-clock time (the pool's parallelism is their ratio)."""
    by = {s: [t for t in trained if t.status == s] for s in ("trained", "cached", "failed")}
    busy = sum(t.seconds for t in trained)
    return (f"training before the notebooks: {len(by['trained'])} trained, {len(by['cached'])} "
            f"cached, {len(by['failed'])} failed; {busy:.0f} s of runs in {wall:.0f} s wall "
            f"({busy / wall if wall > 0 else 0:.2f} runs at a time on average)")


def _child(job_path: str) -> int:
    """Worker-process entry: train (or resume) one run in the cache."""
    from gaitlib.runs.cache import ensure_run

    job = json.loads(Path(job_path).read_text())
    spec = RunSpec.from_dict(job["spec"])
    ensure_run(spec, job["runs_dir"], job["data_root"], job["device"], progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
