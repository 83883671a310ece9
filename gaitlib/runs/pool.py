"""The pool that runs notebooks and training runs in parallel: one :class:`Worker` per GPU, or
CPU workers that split the cores, each with the environment of its processes.  A task may take
several workers at once (a run on several GPUs, :func:`join`); :func:`run_in_order` starts the
tasks in the order given, each as soon as enough workers are free."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

Task = TypeVar("Task")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Worker:
    """One slot of the parallel pool: the ``device`` parameter its notebooks get and the extra
    environment of their process (``CUDA_VISIBLE_DEVICES`` for a GPU)."""

    name: str
    device: str
    env: dict[str, str] = field(default_factory=dict)


def gpu_workers(gpus: Sequence[int | str]) -> list[Worker]:
    """One worker per GPU id; its process sees only that GPU, so the notebooks use device 'cuda'
    (the training code maps 'cuda' to the first visible GPU)."""
    workers = []
    for gpu in gpus:
        text = str(gpu).strip()
        if not text.isdigit():
            raise ValueError(f"GPU ids are non-negative integers (e.g. 0,1,2,3), got {gpu!r}")
        workers.append(Worker(f"gpu{text}", "cuda", {"CUDA_VISIBLE_DEVICES": text}))
    if not workers:
        raise ValueError("--gpus needs at least one GPU id, e.g. --gpus 0,1")
    return workers


def check_gpus(gpus: Sequence[int | str]) -> None:
    """Refuse GPU ids that torch cannot see here (no CUDA at all, or ids past the last GPU), so a
    CPU-only machine never runs a 'GPU' build that silently trains on the CPU."""
    import torch

    ids = [int(str(g).strip()) for g in gpus]
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    asked = ",".join(str(i) for i in ids)
    if count == 0:
        raise ValueError(f"--gpus {asked}: torch sees no CUDA GPU on this machine (torch "
                         f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); run "
                         "without --gpus to use the CPU, or install the CUDA build of PyTorch "
                         "(see the README)")
    beyond = [i for i in ids if i >= count]
    if beyond:
        raise ValueError(f"--gpus {asked}: no GPU {', '.join(map(str, beyond))} here; torch sees "
                         f"{count} GPU(s), ids 0-{count - 1}")


def gpu_memory_gib(gpus: Sequence[int | str]) -> float:
    """The memory of the smallest of these GPUs, in GiB (:func:`check_gpus` first)."""
    import torch

    return min(torch.cuda.get_device_properties(int(str(g).strip())).total_memory
               for g in gpus) / 2**30


# glibc's malloc hands blocks over its (dynamic) mmap threshold back to the kernel on free and
# trims the heap top, so every training step faults its activations' pages in again: 7-15% of a
# cpu-profile step went to system time (measured per model with getrusage, 1 thread).  Keeping
# blocks up to 32 MB on the heap and never trimming it cut that to ~1% and the CPU time of a step
# by 6-14%.  Allocation only: results are unchanged.
CPU_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
              "MALLOC_TOP_PAD_": str(256 << 20)}


def cpu_workers(jobs: int | None = None) -> list[Worker]:
    """``jobs`` CPU workers splitting the cores between them (``None``: as many jobs as cores on a
    small machine, two cores per job from 4 cores up). Small convolutions use two threads poorly,
    so two single-thread notebooks finish sooner than one two-thread notebook at a time."""
    cores = os.cpu_count() or 1
    if jobs is None:
        jobs = cores if cores < 4 else cores // 2
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    threads = str(max(1, cores // jobs))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, **CPU_MALLOC}
    return [Worker(f"cpu{i}", "cpu", env) for i in range(jobs)]


def join(workers: Sequence[Worker]) -> Worker:
    """Several workers as one slot (a run on several GPUs): their GPUs visible together, in
    order, so the run's ranks 0..n-1 map to them."""
    if len(workers) == 1:
        return workers[0]
    env = dict(workers[0].env)
    gpus = [w.env["CUDA_VISIBLE_DEVICES"] for w in workers if "CUDA_VISIBLE_DEVICES" in w.env]
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return Worker("+".join(w.name for w in workers), workers[0].device, env)


def run_in_order(tasks: Sequence[Task], workers: Sequence[Worker],
                 work: Callable[[Task, Worker], Result],
                 width: Callable[[Task], int] = lambda task: 1) -> list[Result]:
    """``work(task, slot)`` for every task, in parallel on ``workers``: in the order given, each
    task starts as soon as ``width(task)`` workers are free (never before the task ahead of it,
    so a wide task is not starved by narrow ones behind it); ``slot`` is those workers
    :func:`join`-ed.  Results come back in the order of ``tasks``."""
    free = list(workers)
    changed = threading.Condition()
    for task in tasks:
        if width(task) > len(workers):
            raise ValueError(f"a task needs {width(task)} workers; the pool has {len(workers)}")

    def run(task: Task, taken: list[Worker]) -> Result:
        try:
            return work(task, join(taken))
        finally:
            with changed:
                free.extend(taken)
                free.sort(key=list(workers).index)
                changed.notify_all()

    futures = []
    with ThreadPoolExecutor(max_workers=max(1, len(workers))) as pool:
        for task in tasks:
            n = width(task)
            with changed:
                changed.wait_for(lambda n=n: len(free) >= n)
                taken, free[:] = free[:n], free[n:]
            futures.append(pool.submit(run, task, taken))
        return [f.result() for f in futures]
