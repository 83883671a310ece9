"""Drive the ``gaitlib`` command through the bad-input cases of book/reliability.md (second
round) and tally their outcomes per surface.

    python bench/bad_input [--code DIR] [--only SURFACE] [--json FILE] [-v]

Each case builds its input in a fresh directory (tiny stores and PNG/pkl trees drawn here, no
real data), runs the command line as a user would (a subprocess, ``PYTHONPATH=DIR``, default
this checkout) with a timeout, and classifies what happened:

- ``error``: exit status != 0 and one ``error:`` line naming what is wrong (no traceback);
- ``warning``: accepted, with the recorded warning or skip the case expects;
- ``accepted``: accepted, and the result checked correct;
- the failures: ``traceback``, ``unhelpful`` (an error that does not say what is wrong, or a
  valid input refused), ``wrong`` (accepted without a word, or a wrong result), ``loss`` (data
  that was there before is gone), ``hang`` (no answer within the timeout).

Disk-full and read-only cases mount a small tmpfs, which needs root; elsewhere they are
reported as ``not run``. ``--code`` points at another checkout to compare (e.g. one exported
with ``git archive``)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import evaluation  # noqa: F401, E402 (each module registers its cases, in this order)
import importers  # noqa: F401
import store  # noqa: F401
import training  # noqa: F401
from common import BAD, CASES, GOOD, REPO, Work, make_shared

SURFACES = ("importers", "store", "training", "evaluation", "reproduce", "checkpoint")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=REPO, help="checkout to test (PYTHONPATH)")
    parser.add_argument("--only", default=None, help="one surface")
    parser.add_argument("--json", type=Path, default=None, help="write the outcomes here")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each case's stderr")
    args = parser.parse_args()
    tally: dict[str, Counter] = defaultdict(Counter)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gaitlib-bad-input-") as tmp:
        root = Path(tmp)
        shared = make_shared(root / "shared", args.code.resolve())
        order = sorted(CASES, key=lambda c: SURFACES.index(c[0]))  # stable within a surface
        for i, (surface, name, fn) in enumerate(order):
            if args.only and surface != args.only:
                continue
            d = root / f"case{i:03d}"
            d.mkdir()
            w = Work(d, args.code.resolve(), shared)
            try:
                result = fn(w)
            except Exception as err:  # a broken case is reported, not fatal
                result = f"not run ({type(err).__name__}: {err})"
            outcome = result if isinstance(result, str) else result[0]
            tally[surface][outcome.split(" (")[0]] += 1
            rows.append({"surface": surface, "case": name, "outcome": outcome})
            print(f"{surface:12s} {outcome:10s} {name}", flush=True)
            if args.verbose and not isinstance(result, str):
                print("    " + result[1].strip().replace("\n", "\n    ")[-800:])
    print()
    kinds = [*GOOD, *BAD, "not run"]
    print(f"{'surface':14s}" + "".join(f"{k:>11s}" for k in kinds) + f"{'total':>8s}")
    for surface, counts in tally.items():
        print(f"{surface:14s}" + "".join(f"{counts[k]:11d}" for k in kinds)
              + f"{sum(counts.values()):8d}")
    total = sum(tally.values(), Counter())
    print(f"{'all':14s}" + "".join(f"{total[k]:11d}" for k in kinds) + f"{sum(total.values()):8d}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 1 if any(total[k] for k in BAD) else 0


if __name__ == "__main__":
    sys.exit(main())
