"""The ``gaitlib`` command (also ``python -m gaitlib``).

Start-up imports only the standard library and gaitlib's light modules (configs, recipes, the
artifact list): torch, pandas and matplotlib load inside the command that needs them, so
``gaitlib --help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_SYNTH_DIR = Path("data") / "synthetic"


def _csv_list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _ids(text: str) -> tuple[str, ...]:
    """A comma-separated list that names at least one item (``--only ,`` is not 'all')."""
    items = _csv_list(text)
    if not items:
        raise argparse.ArgumentTypeError(f"expected comma-separated ids, got {text!r}")
    return items


def _count(low: int):
    """An argparse type: an integer >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _seeds(text: str) -> tuple[int, ...]:
    seed = _count(0)
    return tuple(seed(x) for x in _ids(text))


def _cmd_synth(args: argparse.Namespace) -> int:
    from gaitlib.data.splits import CASIA_B_CONDITIONS, CASIA_B_VIEWS
    from gaitlib.data.synthetic import generate

    stats = generate(args.out, n_subjects=args.subjects, seed=args.seed,
                     views=args.views or CASIA_B_VIEWS,
                     conditions=args.conditions or CASIA_B_CONDITIONS, workers=args.workers, force=args.force)
    print(stats.summary())
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from gaitlib.data.importers import import_dataset

    out = args.out or Path("data") / args.dataset
    summary = import_dataset(args.dataset, args.src, out, workers=args.workers, force=args.force,
                             frame_size=args.size)
    print(summary.report())
    return 0 if summary.imported else 1


def _cmd_check(args: argparse.Namespace) -> int:
    from gaitlib.data.store import Store

    store = Store(args.store)  # the index is validated against the frames on opening
    checked = store.verify()
    verified = [name for name, how in checked.items() if how == "verified"]
    unverified = [name for name, how in checked.items() if how != "verified"]
    how = (f"checksums of {', '.join(verified)} verified" if verified
           else "no checksums in meta.json (written by an older gaitlib): structure checked only")
    if verified and unverified:
        how += f"; {', '.join(unverified)} unverified (no checksum in meta.json)"
    subjects = len(set(store.subjects.tolist()))  # from the index, which was checked
    print(f"{args.store}: ok: {len(store)} sequences, {store.meta['n_frames']} frames, "
          f"{subjects} subjects; {how}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from gaitlib.publish.reproduce import reproduce

    if args.gpu_memory is not None and not args.gpus:
        raise ValueError("--gpu-memory GIB plans for GPUs: give their ids with --gpus, e.g. "
                         "--gpus 0,1,2,3 --gpu-memory 40")
    if args.plan:
        return _plan(args)
    if args.dry_run:
        from gaitlib.runs.dryrun import default_csv, dry_run

        out = args.dry_run_csv or default_csv(args.profile, args.runs_dir)
        rows = dry_run(profile=args.profile, data=args.data, data_root=args.data_root,
                       only=args.only, runs_dir=args.runs_dir, seed=args.seed,
                       device="cuda" if args.gpus else "auto", steps=args.steps, out=out,
                       allow_dirty=args.allow_dirty)
        print(f"wrote {out}")
        return 1 if any(r.status != "ok" for r in rows) else 0

    runs = reproduce(profile=args.profile, data=args.data, data_root=args.data_root,
                     only=args.only, seed=args.seed, build=not args.no_build,
                     runs_dir=args.runs_dir, gpus=args.gpus, jobs=args.jobs,
                     extra_seeds=list(args.extra_seeds),
                     allow_dirty=args.allow_dirty, precision=args.precision,
                     gpu_gib=args.gpu_memory)
    # 'skipped' (needs other data) and 'missing' (notebook not written yet) are not failures.
    return 1 if any(r.status == "failed" for r in runs) else 0


def _plan(args: argparse.Namespace) -> int:
    """``gaitlib reproduce --plan``: print the plan (no store, no GPU needed with --gpu-memory)."""
    from gaitlib.publish.reproduce import select
    from gaitlib.runs.budget import format_plan, plan_csv, study_budget
    from gaitlib.runs.pool import check_gpus, cpu_workers, gpu_memory_gib

    gib = args.gpu_memory
    if args.gpus and gib is None:
        try:
            check_gpus(args.gpus)
        except ValueError as err:
            raise ValueError(f"{err}; to plan for cards that are not here, give their memory: "
                             f"--gpu-memory GIB") from None
        gib = gpu_memory_gib(args.gpus)
    devices = len(args.gpus) if args.gpus else len(cpu_workers(args.jobs))
    plan = study_budget(select(args.only), args.profile, args.data, args.seed,
                        [int(x) for x in args.extra_seeds], args.precision, devices,
                        gib if args.gpus else None, args.runs_dir)
    print(plan_csv(plan) if args.format == "csv" else format_plan(plan), end="\n"
          if args.format != "csv" else "")
    return 0


def _gpu_list(text: str) -> tuple[str, ...]:
    ids = _csv_list(text)
    bad = [g for g in ids if not g.isdigit()]
    if bad or not ids:
        raise argparse.ArgumentTypeError(f"expected comma-separated GPU ids such as 0,1,2,3, got {text!r}")
    return ids


DATASET_NAMES = ("synthetic", "casia-b", "oumvlp")


def _resolve_store(data: str, data_root: Path) -> Path:
    """A store path, or a dataset name looked up under ``data_root``."""
    path = Path(data)
    if (path / "meta.json").is_file():
        return path.resolve()
    if data in DATASET_NAMES:
        named = data_root / data
        if (named / "meta.json").is_file():
            return named.resolve()
        how = "gaitlib data synth" if data == "synthetic" else f"gaitlib data import {data} SRC"
        raise FileNotFoundError(f"no {data} store at {named}; create it with `{how}`")
    if path.exists():
        raise FileNotFoundError(f"{path} is not a gaitlib store (no meta.json)")
    if os.sep in data or data.startswith("."):
        raise FileNotFoundError(f"no store at {path}: no such directory")
    raise ValueError(f"unknown dataset {data!r}; valid: {', '.join(DATASET_NAMES)} (under "
                     f"{data_root}/) or the path of a store")


def _cmd_train(args: argparse.Namespace) -> int:
    import json

    from gaitlib.data.store import Store
    from gaitlib.runs.cache import run_dir_of
    from gaitlib.training import apply_overrides, recipe, train
    from gaitlib.training.distributed import init, shutdown

    store = _resolve_store(args.data, args.data_root)
    config = recipe(args.model, args.profile, dataset=Store(store).dataset)
    config.data.store = str(store)
    apply_overrides(config, args.overrides)
    if args.show_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    out = args.out or run_dir_of(config, args.runs_dir)
    info = init(config.device)
    try:  # a bad checkpoint, a diverged loss, a locked --out: one line (see main)
        result = train(config, out, force=args.force, progress=not args.no_progress, info=info,
                       wait=args.wait)
    finally:
        shutdown()
    if info.is_main:
        print(f"run directory: {result.run_dir}")
        if result.evaluation is not None:
            print(result.evaluation.to_string())
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from gaitlib.training import evaluate_run
    from gaitlib.training.distributed import shutdown

    try:
        result, iteration = evaluate_run(args.run_dir, bootstrap=args.bootstrap, metric=args.metric,
                                         write=args.write, progress=not args.no_progress,
                                         wait=args.wait)
    finally:
        shutdown()
    if result is not None:  # None on the other ranks of a torchrun job
        print(f"{args.run_dir}: checkpoint at iteration {iteration}")
        print(result.to_string())
    return 0


def _cmd_checkpoint_import(args: argparse.Namespace) -> int:
    from gaitlib.training.import_checkpoint import import_checkpoint

    store = _resolve_store(args.data, args.data_root) if args.data else None
    out = import_checkpoint(args.source, args.src, args.model, args.out, store=store,
                            force=args.force)  # a checkpoint that does not fit: ValueError
    print(f"run directory: {out}")
    print(f"evaluate it with: gaitlib eval {out}" + ("" if store else
          "  (after setting data.store in config.json, or import again with --data)"))
    return 0


CHECKPOINT_SOURCES = {"opengait": ("gaitset", "gaitpart", "gaitgl"), "cstl-official": ("cstl",)}


def _add_checkpoint_parsers(commands) -> None:
    ck = commands.add_parser("checkpoint", help="import a reference implementation's checkpoint",
                             description="Work with checkpoints of other implementations.")
    ck_cmds = ck.add_subparsers(dest="checkpoint_command", required=True, metavar="ACTION")
    imp = ck_cmds.add_parser(
        "import", help="convert an OpenGait or CSTL-authors' checkpoint into a gaitlib run",
        description="Convert a checkpoint of OpenGait (GaitSet, GaitPart, GaitGL; CASIA-B and "
                    "OU-MVLP configurations) or of the CSTL authors' code into a gaitlib run "
                    "directory that `gaitlib eval RUN_DIR` evaluates. The file is read with "
                    "torch.load(weights_only=True); a checkpoint of another model or shape fails "
                    "naming the first tensor that does not fit. See book/fidelity.md.")
    imp.add_argument("--from", dest="source", required=True, choices=list(CHECKPOINT_SOURCES),
                     help="who wrote the checkpoint: opengait ({'model': state_dict, ...}) or "
                          "cstl-official (the authors' *-encoder.ptm)")
    imp.add_argument("src", type=Path, metavar="SRC", help="the checkpoint file")
    imp.add_argument("--model", required=True,
                     choices=sorted({m for ms in CHECKPOINT_SOURCES.values() for m in ms}),
                     help="the network in the checkpoint")
    imp.add_argument("--out", type=Path, required=True, metavar="RUN_DIR",
                     help="run directory to create")
    imp.add_argument("--data", default=None, metavar="STORE",
                     help="dataset store `gaitlib eval` will use: a store path or a dataset name "
                          "under --data-root (can be set later in RUN_DIR/config.json)")
    imp.add_argument("--data-root", type=Path, default=Path("data"),
                     help="directory of named stores (default data)")
    imp.add_argument("--force", action="store_true", help="replace an existing run directory")
    imp.set_defaults(func=_cmd_checkpoint_import)


def _add_train_parsers(commands) -> None:
    from gaitlib.models import available  # the registry: names only, no model and no torch
    from gaitlib.training.config import flat_keys
    from gaitlib.training.recipes import PROFILES

    models = available()
    train = commands.add_parser(
        "train", help="train a model (one process, or DDP under torchrun)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train MODEL on a dataset store with the recipe of a profile, then evaluate it "
                    "under the dataset's protocol. The run directory gets config.json, "
                    "environment.json, metrics.jsonl, checkpoints/ and eval.csv/eval.json; an "
                    "interrupted run in it is resumed, a finished one is kept unless --force. "
                    "Multi-process: torchrun --nproc_per_node=N -m gaitlib train ... (NCCL on "
                    "GPUs, gloo on CPU).",
        epilog="overrides (KEY=VALUE, dotted keys, converted to the field's type):\n  "
               + "\n  ".join(flat_keys())
               + "\n\nexamples:\n  gaitlib train --model gaitgl --data synthetic --profile smoke\n"
                 "  gaitlib train --model gaitset --data casia-b --profile paper "
                 "optimizer.lr=2e-4\n"
                 "  gaitlib train --model gaitpart --data data/mystore sampling.p=4 seed=1")
    train.add_argument("--model", required=True, choices=models, metavar="MODEL",
                       help=f"model name: {', '.join(models)}")
    train.add_argument("--data", required=True, metavar="D",
                       help=f"a store path, or a dataset name under --data-root: "
                            f"{', '.join(DATASET_NAMES)}")
    train.add_argument("--data-root", type=Path, default=Path("data"),
                       help="directory holding named stores (default data)")
    train.add_argument("--profile", choices=PROFILES, default="cpu",
                       help="scale: smoke (seconds), cpu (default; minutes on a laptop), paper "
                            "(the papers' recipes)")
    train.add_argument("--out", type=Path, default=None,
                       help="run directory (default: the run's folder in the cache that "
                            "`gaitlib reproduce` reads, RUNS_DIR/MODEL-KEY, KEY a hash of what "
                            "determines the result; whatever the number of processes)")
    train.add_argument("--runs-dir", type=Path, default=Path("runs"),
                       help="the run cache (default runs)")
    train.add_argument("--force", action="store_true",
                       help="replace a finished run (or one with another config) in --out")
    train.add_argument("--show-config", action="store_true",
                       help="print the resulting config as JSON and exit")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--wait", action="store_true",
                       help="if another process is using --out, wait for it instead of exiting")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="config overrides, e.g. optimizer.lr=3e-4 sampling.p=4")
    train.set_defaults(func=_cmd_train)

    ev = commands.add_parser(
        "eval", help="re-evaluate the final checkpoint of a run",
        description="Load RUN_DIR's config and its latest checkpoint, extract the test features "
                    "and print the rank-1 table with bootstrap 95% CIs.")
    ev.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                    help="a directory made by gaitlib train")
    ev.add_argument("--bootstrap", type=_count(0), default=None,
                    help="bootstrap resamples for the CIs (default: the run's eval.bootstrap)")
    ev.add_argument("--metric", choices=("euc", "cos"), default=None,
                    help="distance (default: the run's eval.metric)")
    ev.add_argument("--write", action="store_true",
                    help="also rewrite RUN_DIR/eval.csv and eval.json (finished runs only)")
    ev.add_argument("--wait", action="store_true",
                    help="with --write: if another process is using RUN_DIR, wait for it")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(func=_cmd_eval)


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
    synth.add_argument("--subjects", type=_count(2), default=100,
                       help="number of subjects (default 100: 50 train, 50 test)")
    synth.add_argument("--seed", type=_count(0), default=0, help="random seed (default 0)")
    synth.add_argument("--views", type=_csv_list, default=None,
                       help="comma-separated views in degrees, from 000,018,...,180 (default all 11)")
    synth.add_argument("--conditions", type=_csv_list, default=None,
                       help="comma-separated conditions, e.g. nm-01,bg-01,cl-01 (default all 10)")
    synth.add_argument("--out", type=Path, default=DEFAULT_SYNTH_DIR,
                       help=f"store directory (default {DEFAULT_SYNTH_DIR})")
    synth.add_argument("--workers", type=_count(1), default=os.cpu_count() or 1,
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
    imp.add_argument("--workers", type=_count(1), default=os.cpu_count() or 1,
                     help="worker processes (default: all cores)")
    imp.add_argument("--size", type=int, choices=(64, 128), default=64,
                     help="frame side: 64 (default; 64x44 model input) or 128 (128x88 input)")
    imp.add_argument("--force", action="store_true", help="replace an existing store")
    imp.set_defaults(func=_cmd_import)

    check = data_cmds.add_parser(
        "check", help="verify a store: index against frames, checksums",
        description="Open STORE (its index is checked against the frames: labels unique, starts "
                    "contiguous, lengths positive, shape consistent) and verify index.csv and "
                    "frames.u8 against the checksums in meta.json, reading every byte.")
    check.add_argument("store", type=Path, metavar="STORE", help="a store directory")
    check.set_defaults(func=_cmd_check)

    _add_train_parsers(commands)
    _add_checkpoint_parsers(commands)

    from gaitlib.publish.reproduce import DATASETS, FINAL, NOTEBOOKS, PROFILES

    rep = commands.add_parser(
        "reproduce", help="run the study's notebooks (papermill) and build the book",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Execute the study's parameterised notebooks with papermill for one profile and\n"
                    "dataset, publish those that succeed into book/ (a failing one is reported and\n"
                    "never published), print a table of artifacts with status and time, then build\n"
                    "the HTML book (warnings are errors) in _build/html.\n\n"
                    "Order: synthetic-data, the artifacts, then " + FINAL + " (it reads the others'\n"
                    "results). Status: ok; failed; skipped (the artifact needs another dataset);\n"
                    "missing (no notebook yet). Training runs are cached in --runs-dir and shared\n"
                    "between artifacts; an interrupted run resumes where it stopped. On GPUs\n"
                    "(--gpus) or several CPU workers (--jobs) every run the selected notebooks\n"
                    "need is planned (printed: GPUs, memory per GPU, hours, schedule; a run\n"
                    "that fits no card stops everything first; see --plan) and trained first,\n"
                    "longest first, wide runs with DDP, then the notebooks execute; a page made\n"
                    "with real data or more seeds is kept over a cheaper rebuild.\n"
                    "Exit code: 0, 1 when a notebook failed, 2 on bad input or a failed book build.",
        epilog="examples:\n"
               "  gaitlib reproduce --profile smoke           # plumbing check, minutes\n"
               "  gaitlib reproduce                           # the whole book on a CPU\n"
               "  gaitlib reproduce --only cstl-t3,cstl-t5 --no-build\n"
               "  gaitlib reproduce --profile cpu-long --data casia-b  # real data, 2 cores, hours\n"
               "  gaitlib reproduce --profile paper --data casia-b --data-root /data --gpus 0,1,2,3\n"
               "  gaitlib reproduce --profile paper --data casia-b --dry-run  # cost of every run\n"
               "  gaitlib reproduce --profile paper --data casia-b --plan --gpus 0,1,2,3 "
               "--gpu-memory 40\n"
               "\nreal data is imported once beforehand, e.g.\n"
               "  gaitlib data import casia-b SRC --out /data/casia-b")
    rep.add_argument("--profile", choices=PROFILES, default="cpu",
                     help="scale of every run: smoke (seconds per run), cpu (default; the whole book "
                          "on a laptop), cpu-long (real CASIA-B on a CPU in an afternoon: the cpu "
                          "shapes trained 120-1000 iterations, every test subject), paper (the "
                          "papers' recipes, for a GPU box)")
    rep.add_argument("--data", choices=DATASETS, default="synthetic",
                     help="dataset of the runs: synthetic (default; generated on first use, with an "
                          "OU-MVLP-shaped set for the OU-MVLP tables), casia-b or oumvlp (imported "
                          "beforehand into DATA_ROOT/casia-b or DATA_ROOT/oumvlp; on casia-b the "
                          "OU-MVLP tables are skipped, on oumvlp the CASIA-B ones)")
    rep.add_argument("--data-root", type=Path, default=Path("data"), metavar="DATA_ROOT",
                     help="directory holding the dataset stores (default data)")
    rep.add_argument("--runs-dir", type=Path, default=Path("runs"),
                     help="training-run cache shared by all artifacts (default runs)")
    rep.add_argument("--gpus", type=_gpu_list, default=None, metavar="IDS",
                     help="comma-separated GPU ids, e.g. 0,1,2,3: run notebooks in parallel, one "
                          "per GPU at a time (default: on the CPU, see --jobs)")
    rep.add_argument("--jobs", type=_count(1), default=None, metavar="N",
                     help="without --gpus: notebooks run N at a time on the CPU, sharing the cores "
                          "(default: one per core up to 3 cores, else one per two cores; 1 = one "
                          "after another)")
    rep.add_argument("--only", type=_ids, default=None, metavar="IDS",
                     help=f"comma-separated artifact ids (default all): {', '.join(NOTEBOOKS)}")
    rep.add_argument("--seed", type=_count(0), default=0, help="seed of every run (default 0)")
    rep.add_argument("--extra-seeds", type=_seeds, default=(), metavar="SEEDS",
                     help="comma-separated further seeds of each ablation's reference row and full "
                          "model, e.g. 1,2,3,4: the ablation pages add their seed-to-seed SD and a "
                          "verdict on each claimed delta (make evidence)")
    rep.add_argument("--no-build", action="store_true", help="run the notebooks, skip the HTML build")
    rep.add_argument("--allow-dirty", action="store_true",
                     help="publish even from a checkout with uncommitted source changes (results "
                          "are then marked COMMIT+dirty); by default publishing refuses")
    rep.add_argument("--dry-run", action="store_true",
                     help="no notebooks: every run of the selected artifacts trains --steps "
                          "iterations at the profile's full scale, checkpoints, resumes one more, "
                          "extracts and evaluates a few test sequences; prints step time, peak "
                          "memory and projected hours and writes a CSV (paper profile: "
                          "book/results/paper-dry-run.csv)")
    rep.add_argument("--steps", type=_count(1), default=3, metavar="N",
                     help="--dry-run: training iterations before the checkpoint (default 3; the "
                          "first is a warm-up, the rest are timed)")
    rep.add_argument("--dry-run-csv", type=Path, default=None, metavar="PATH",
                     help="--dry-run: where to write the CSV")
    rep.add_argument("--plan", action="store_true",
                     help="print the plan and exit: every run with its GPUs (world size), peak "
                          "memory per GPU, projected hours, start and end hour in the schedule, "
                          "then the wall-clock total (needs no store; every reproduce on GPUs "
                          "prints it first and refuses runs that fit no card)")
    rep.add_argument("--gpu-memory", type=float, default=None, metavar="GIB",
                     help="with --gpus: plan for cards of GIB GiB (default: the GPUs' own "
                          "memory), e.g. --gpus 0,1,2,3 --gpu-memory 40 on a laptop")
    rep.add_argument("--format", choices=("text", "csv"), default="text",
                     help="--plan: a table (default) or CSV (model,dataset,options,gpus,"
                          "gib_per_gpu,hours,start_hour,end_hour,precision,memory,artifacts)")
    rep.add_argument("--precision", choices=("recipe", "bf16", "fp16", "fp32"), default="recipe",
                     help="training arithmetic of the paper runs: recipe (default: each recipe's "
                          "own, fp32 or OpenGait's fp16), or one for all, e.g. bf16 to trade the "
                          "papers' fp32 for memory and speed; the plan and the pages say which")
    rep.set_defaults(func=_cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    shown = warnings.showwarning

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        """gaitlib's own warnings as one line each, like its errors; others as Python shows them."""
        if "gaitlib" in Path(str(filename)).parts:
            print(f"gaitlib: warning: {message}", file=file or sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show_warning
    from gaitlib.errors import GaitlibError, describe_os_error

    try:
        return args.func(args)
    except (GaitlibError, ValueError) as err:  # bad input: the message names what is wrong
        print(f"gaitlib: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # on a user's path (full disk, read-only, a file for a folder)
        described = describe_os_error(err)
        if described is None and not isinstance(err, (FileExistsError, FileNotFoundError)):
            raise  # no path to name: a bug, keep the traceback
        print(f"gaitlib: error: {described or err}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    sys.exit(main())
