"""How close the cpu profile's training step runs to this CPU's fp32 peak, per model.

For every model: the FLOPs of one training step of its cpu-profile recipe (the forward of the
batch counted by ``torch.utils.flop_counter``, x3 for forward plus backward, as the cost page
counts them), the median step time of its default path (``bench/train.py``'s ``Stepper``), and
the achieved GFLOP/s.  The baseline, measured in the same run with the same threads, is a large
fp32 matrix product (``--gemm`` square), about the best this CPU sustains in fp32; the ratio says
how much a faster fp32 kernel could still give.

    .venv/bin/python bench/roofline.py [--models ...] [--steps 6] [--threads 1] [--gemm 1024]

Prints one line per model and ``fraction_of_gemm MODEL X.XX`` lines.  A fraction near 1 means the
step already runs at the fp32 matmul rate, so a >=2x speed-up on this CPU has to come from fewer
or cheaper FLOPs (bf16 hardware, smaller shapes), not from scheduling.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

MODELS = ("gaitset", "gaitpart", "gaitgl", "gaitmm", "local3d", "cstl")


def gemm_gflops(size: int, repeats: int = 8) -> float:
    """Median GFLOP/s of an fp32 ``size`` x ``size`` matrix product."""
    import torch

    a, b = torch.rand(size, size), torch.rand(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def step_rate(model_name: str, steps: int) -> dict:
    """FLOPs, median step time and GFLOP/s of ``model_name``'s cpu-profile training step."""
    import torch
    from train import Stepper, cpu_batch

    from gaitlib.runs.dryrun import step_tflop
    from gaitlib.training import recipe

    config = recipe(model_name, "cpu")
    torch.manual_seed(0)
    stepper = Stepper(config, num_classes=50)
    sils, labels = cpu_batch(config)
    tflop = step_tflop(stepper.model, config, "cpu")
    for _ in range(2):
        stepper.step(sils, labels)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        stepper.step(sils, labels)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"model": model_name, "gflop": tflop * 1e3, "ms": seconds * 1e3,
            "gflops": tflop * 1e3 / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model (median)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: one book worker's share of 2 cores)")
    parser.add_argument("--gemm", type=int, default=1024, help="side of the baseline matmul")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(MODELS)}")
    peak_before = gemm_gflops(args.gemm)
    rows = [step_rate(m, args.steps) for m in models]
    peak = max(peak_before, gemm_gflops(args.gemm))  # the better of two, around the models
    print(f"fp32 {args.gemm}x{args.gemm} matmul: {peak:.1f} GFLOP/s on {args.threads} thread(s)")
    print(f"{'model':<9} {'GFLOP/step':>10} {'ms/step':>8} {'GFLOP/s':>8} {'of matmul':>9}")
    for r in rows:
        print(f"{r['model']:<9} {r['gflop']:>10.2f} {r['ms']:>8.0f} {r['gflops']:>8.1f} "
              f"{r['gflops'] / peak:>9.2f}")
    for r in rows:
        print(f"fraction_of_gemm {r['model']} {r['gflops'] / peak:.2f}")


if __name__ == "__main__":
    main()
