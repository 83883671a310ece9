"""The book's CPU workers' malloc settings against glibc's defaults, per model.

``gaitlib reproduce`` starts its CPU workers with ``gaitlib.runs.pool.CPU_MALLOC`` (blocks
up to 32 MB stay on the heap, the heap is never trimmed), because with glibc's defaults every
training step faults its activations' pages in again.  For every model this runs its cpu-profile
training step (``bench/train.py``'s ``Stepper``, one thread) in two fresh processes, one with the
default environment and one with those settings, alternating which goes first, ``--rounds``
times, and prints per model the median step time and the system-time share of each, then
``malloc_speedup MODEL X.XX`` (default step time / tuned step time, median over rounds).

    .venv/bin/python bench/malloc.py [--models ...] [--steps 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("gaitset", "gaitpart", "gaitgl", "gaitmm", "local3d", "cstl")


def _one(model: str, steps: int) -> dict:
    """Child: time ``steps`` training steps after one warm-up step; report wall and CPU times."""
    import resource
    import time

    import torch

    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(REPO))
    from train import Stepper, cpu_batch

    from gaitlib.training import recipe

    torch.set_num_threads(1)
    config = recipe(model, "cpu")
    torch.manual_seed(0)
    stepper = Stepper(config, num_classes=50)
    sils, labels = cpu_batch(config)
    stepper.step(sils, labels)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        stepper.step(sils, labels)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"step_s": (time.perf_counter() - start) / steps,
            "user_s": (after.ru_utime - before.ru_utime) / steps,
            "sys_s": (after.ru_stime - before.ru_stime) / steps}


def _run(model: str, steps: int, tuned: bool) -> dict:
    sys.path.insert(0, str(REPO))
    from gaitlib.runs.pool import CPU_MALLOC

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update({"OMP_NUM_THREADS": "1", **(CPU_MALLOC if tuned else {})})
    out = subprocess.run([sys.executable, __file__, "--child", model, "--steps", str(steps)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sys_share(pairs: list[tuple[dict, dict]], side: int) -> float:
    """Median share (%) of system time in a step's CPU time, default (0) or tuned (1) side."""
    return 100 * statistics.median(p[side]["sys_s"] / (p[side]["sys_s"] + p[side]["user_s"]) for p in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=4, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=3, help="process pairs per model")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one(args.child, args.steps)))
        return
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(MODELS)}")
    print(f"{'model':<9} {'default ms':>10} {'sys %':>6} {'tuned ms':>9} {'sys %':>6}")
    lines = []
    for model in models:
        pairs = []
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            got = {tuned: _run(model, args.steps, tuned) for tuned in order}
            pairs.append((got[False], got[True]))
        default = statistics.median(p[0]["step_s"] for p in pairs)
        tuned = statistics.median(p[1]["step_s"] for p in pairs)
        print(f"{model:<9} {1000 * default:>10.0f} {_sys_share(pairs, 0):>6.1f} {1000 * tuned:>9.0f} "
              f"{_sys_share(pairs, 1):>6.1f}", flush=True)
        lines.append(f"malloc_speedup {model} "
                     f"{statistics.median(p[0]['step_s'] / p[1]['step_s'] for p in pairs):.2f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
