"""How well the plan's memory estimate matches the dry run's measured peaks.

For every run measured by the dry run (``book/results/paper-dry-run.csv``: the peak of
``torch.cuda.max_memory_allocated`` over 3 training steps, a checkpoint, a resume and an
extraction, at the recipe's precision, on one GPU), the run's peak is estimated on fake tensors
(:func:`gaitlib.runs.memory.estimate`, no GPU, no data) and compared: the ratio measured /
estimated per run, its median (the calibration factor :data:`gaitlib.runs.memory.CALIBRATION`)
and the relative error of the calibrated estimates.

    PYTHONPATH=. python bench/plan_memory.py [--csv book/results/paper-dry-run.csv]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=REPO / "book/results/paper-dry-run.csv")
    args = parser.parse_args()
    from gaitlib.runs.budget import measured_rows
    from gaitlib.runs.cache import resolve
    from gaitlib.runs.memory import GIB, estimate

    rows = [(spec, row) for spec, row in measured_rows(args.csv).items()
            if row.peak_gib == row.peak_gib]
    ratios = []
    print(f"{'run':<62} {'measured':>9} {'estimate':>9} {'ratio':>6} {'s':>5}")
    for spec, row in rows:
        began = time.perf_counter()
        est = estimate(resolve(spec, "data")).peak_bytes / GIB
        ratios.append(row.peak_gib / est)
        name = f"{spec.model} {spec.shape} {spec.options_text()}"[:62]
        print(f"{name:<62} {row.peak_gib:9.2f} {est:9.2f} {ratios[-1]:6.3f} "
              f"{time.perf_counter() - began:5.1f}", flush=True)
    factor = statistics.median(ratios)
    errors = [abs(r / factor - 1) for r in ratios]
    print(f"{len(ratios)} runs: median ratio {factor:.3f} (min {min(ratios):.3f}, max "
          f"{max(ratios):.3f}); calibrated estimate error: median {statistics.median(errors):.1%}, "
          f"largest {max(errors):.1%}")


if __name__ == "__main__":
    main()
