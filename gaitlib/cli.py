"""The ``gaitlib`` command (also ``python -m gaitlib``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gaitlib.data.splits import CASIA_B_CONDITIONS, CASIA_B_VIEWS

DEFAULT_SYNTH_DIR = Path("data") / "synthetic"


def _csv_list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _cmd_synth(args: argparse.Namespace) -> int:
    from gaitlib.data.synthetic import generate

    stats = generate(args.out, n_subjects=args.subjects, seed=args.seed, views=args.views,
                     conditions=args.conditions, workers=args.workers, force=args.force)
    print(stats.summary())
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from gaitlib.data.importers import import_dataset

    out = args.out or Path("data") / args.dataset
    summary = import_dataset(args.dataset, args.src, out, workers=args.workers, force=args.force)
    print(summary.report())
    return 0 if summary.imported else 1


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from gaitlib.report.reproduce import reproduce

    runs = reproduce(profile=args.profile, data=args.data, data_root=args.data_root,
                     only=args.only, seed=args.seed, build=not args.no_build)
    return 0 if all(r.status == "ok" for r in runs) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gaitlib",
        description="Reproduce GaitMM, 3D Local CNN and CSTL: data, training, evaluation, the book.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="create or import a dataset store",
                               description="Create the synthetic dataset or import a real one into "
                                           "gaitlib's store (memory-mapped uint8 frames + index).")
    data_cmds = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    synth = data_cmds.add_parser(
        "synth", help="generate the synthetic CASIA-B-shaped dataset",
        description="Render a 3D articulated walker to silhouettes with CASIA-B's shape (subjects x "
                    "nm-01..06, bg-01..02, cl-01..02 x 11 views), pretreat them like real data and "
                    "write a store. Deterministic for a given seed and options.")
    synth.add_argument("--subjects", type=int, default=100,
                       help="number of subjects (default 100: 50 train, 50 test)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--views", type=_csv_list, default=CASIA_B_VIEWS,
                       help="comma-separated views in degrees, from 000,018,...,180 (default all 11)")
    synth.add_argument("--conditions", type=_csv_list, default=CASIA_B_CONDITIONS,
                       help="comma-separated conditions, e.g. nm-01,bg-01,cl-01 (default all 10)")
    synth.add_argument("--out", type=Path, default=DEFAULT_SYNTH_DIR,
                       help=f"store directory (default {DEFAULT_SYNTH_DIR})")
    synth.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="worker processes (default: all cores)")
    synth.add_argument("--force", action="store_true", help="replace an existing store")
    synth.set_defaults(func=_cmd_synth)

    imp = data_cmds.add_parser(
        "import", help="import CASIA-B or OU-MVLP from your own copy",
        description="Import a licensed copy of CASIA-B or OU-MVLP. SRC may be the official PNG tree "
                    "(raw silhouettes, run through OpenGait's pretreatment) or an OpenGait pkl tree "
                    "(already pretreated); the layout is detected. pkl files are read through a "
                    "restricted unpickler that accepts numpy arrays only.")
    imp.add_argument("dataset", choices=["casia-b", "oumvlp"], help="which dataset SRC holds")
    imp.add_argument("src", type=Path, help="root of the PNG or pkl tree")
    imp.add_argument("--out", type=Path, default=None, help="store directory (default data/DATASET)")
    imp.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                     help="worker processes (default: all cores)")
    imp.add_argument("--force", action="store_true", help="replace an existing store")
    imp.set_defaults(func=_cmd_import)

    from gaitlib.report.reproduce import DATASETS, NOTEBOOKS, PROFILES

    rep = commands.add_parser(
        "reproduce", help="run the study's notebooks (papermill) and build the book",
        description="Execute the parameterised notebooks with papermill for one profile and dataset, "
                    "publish those that succeed into book/ (a failing one is reported and never "
                    "published), print a table of artifacts with status and time, then build the "
                    "HTML book (warnings are errors) in _build/html.")
    rep.add_argument("--profile", choices=PROFILES, default="cpu",
                     help="scale of every run: smoke (seconds), cpu (default; the whole book on a "
                          "laptop), paper (the papers' recipes, for a GPU box)")
    rep.add_argument("--data", choices=DATASETS, default="synthetic",
                     help="dataset the runs use (default synthetic; real ones must be imported first)")
    rep.add_argument("--data-root", type=Path, default=Path("data"),
                     help="directory holding the dataset stores (default data)")
    rep.add_argument("--only", type=_csv_list, default=None,
                     help=f"comma-separated artifact ids (default all): {', '.join(NOTEBOOKS)}")
    rep.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    rep.add_argument("--no-build", action="store_true", help="run the notebooks, skip the HTML build")
    rep.set_defaults(func=_cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from gaitlib.data.store import StoreError
    from gaitlib.report.reproduce import BookBuildError

    try:
        return args.func(args)
    except (FileExistsError, FileNotFoundError, ValueError, StoreError, BookBuildError) as err:
        print(f"gaitlib: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
