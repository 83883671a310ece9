"""Benchmark: generate the default synthetic dataset into a temporary directory.

    python bench/synthetic.py [--subjects 100] [--workers 2] [--views 000,090] [--keep DIR]

Prints the generator's summary (sequences, frames, seconds, frames/s). The default
(100 subjects x 10 conditions x 11 views) is the dataset the cpu profile trains on.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from gaitlib.data.splits import CASIA_B_CONDITIONS, CASIA_B_VIEWS
from gaitlib.data.synthetic import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time the synthetic dataset generator.")
    parser.add_argument("--subjects", type=int, default=100, help="subjects (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: all cores)")
    parser.add_argument("--views", default=",".join(CASIA_B_VIEWS),
                        help="comma-separated views (default all 11)")
    parser.add_argument("--conditions", default=",".join(CASIA_B_CONDITIONS),
                        help="comma-separated conditions (default all 10)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the store here and keep it (default: a temporary directory)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    kwargs = dict(n_subjects=args.subjects, seed=args.seed, views=args.views.split(","),
                  conditions=args.conditions.split(","), workers=args.workers,
                  progress=not args.no_progress)
    if args.keep is not None:
        stats = generate(args.keep, force=True, **kwargs)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            stats = generate(Path(tmp) / "synthetic", **kwargs)
    print(stats.summary())
    print(f"workers={args.workers}  total {stats.seconds:.1f} s  "
          f"{stats.frames / stats.seconds:.0f} frames/s  "
          f"{stats.sequences / stats.seconds:.1f} sequences/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
