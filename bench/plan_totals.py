"""The plan's wall-clock totals for 1, 4 and 8 GPUs of 40 and 80 GiB, per dataset and for the
whole study (``gaitlib reproduce --plan`` in a loop), or the runs each setting refuses.

``--scale MODEL=FACTOR`` plans as if a model's runs needed that fraction of their measured or
estimated peak memory (a leaner version not yet measured), e.g. ``--scale local3d=0.2``.

    PYTHONPATH=. python bench/plan_totals.py [--scale local3d=0.2] [--precision bf16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", action="append", default=[], metavar="MODEL=FACTOR")
    parser.add_argument("--precision", default="recipe")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs",
                        help="where the estimates are cached (default runs)")
    args = parser.parse_args()
    from gaitlib.runs.budget import ESTIMATES_FILE, Estimates, PlanError, make_plan
    from gaitlib.runs.plan import study_plan

    scale = {k: float(v) for k, v in (item.split("=") for item in args.scale)}
    estimates = Estimates(args.runs_dir / ESTIMATES_FILE)
    precision = "" if args.precision == "recipe" else args.precision
    for data, name in (("casia-b", "CASIA-B"), ("oumvlp", "OU-MVLP"), ("synthetic", "all")):
        planned = study_plan(None, "paper", data, precision=precision)
        for gib in (40, 80):
            cells = []
            for gpus in (1, 4, 8):
                try:
                    plan = make_plan(planned, gpus, gib, precision=args.precision,
                                     estimates=estimates, memory_scale=scale)
                    wide = sum(r.gpus > 1 for r in plan.runs)
                    cells.append(f"{plan.total_hours:.1f} h ({plan.gpu_hours:.0f} GPU-h, "
                                 f"{wide} wide)")
                except PlanError as err:
                    refused = [line.split(" [")[0].strip() for line in
                               str(err).splitlines()[1:-1]]
                    cells.append(f"refuses {len(refused)}: " + "; ".join(refused))
            print(f"{name} ({len(planned)} runs), {gib} GiB: " + " | ".join(
                f"{n} GPU{'s' if n > 1 else ''}: {c}" for n, c in zip((1, 4, 8), cells,
                                                                       strict=True)), flush=True)


if __name__ == "__main__":
    main()
