"""`gaitlib reproduce --dry-run`: every run of the study at its profile's full scale, a few steps each.

For each distinct run of the selected artifacts (a run shared by several artifacts once), the
dry run builds the run's exact config against the store, then

1. trains ``steps`` iterations at the recipe's batch, resolution and frame count and saves a
   checkpoint, as the real run does;
2. resumes from that checkpoint for one more iteration (the resume path of a days-long run);
3. extracts the features of a few test sequences with all their frames and evaluates them under
   the dataset's protocol (the numbers are meaningless; the path is what is checked);

and measures the training step time (iterations 2..``steps``, after the first batch has warmed
the caches; batches from the recipe's loader, its ``workers`` processes preparing them ahead as
in the real run, so loading overlaps the steps as it will then) and the peak memory on the device used
(CUDA: ``torch.cuda.max_memory_allocated``; CPU: the process's peak resident set, reset before
each run, so it includes the ~0.5 GB of the Python process and its libraries).
``projected_hours`` = the recipe's iterations x the step time: training alone, one device.

OU-MVLP runs need OU-MVLP's shape, not its people: without an OU-MVLP store, a small
OU-MVLP-shaped synthetic store (64x64 frames, 14 views, enough subjects for P = 32) stands in,
and the classifier gets OU-MVLP's 5153 training classes whatever the store holds; CASIA-B runs
likewise get the recipe split's 74 (or 73) classes.  Only the class count and the widths change
the cost.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from gaitlib.runs.cache import RunSpec, resolve
from gaitlib.runs.plan import study_plan

COLUMNS = ("model", "dataset", "options", "artifacts", "iterations", "batch", "frames",
           "resolution", "classes", "step_tflop", "step_seconds", "peak_memory_mb", "device",
           "projected_hours",
           "extract_sequences", "extract_frames", "extract_seconds", "store", "status", "message",
           "git_commit", "precision", "loader_workers")
OUMVLP_CLASSES = 5153  # as gaitlib.runs.memory (imported lazily: it needs torch)
DRYRUN_OUMVLP_SUBJECTS = 34  # P = 32 training subjects and 2 to test


@dataclass
class DryRunRow:
    model: str
    dataset: str  # the run's setting: casia-b or oumvlp (its shape)
    options: str
    artifacts: str
    iterations: int
    batch: int
    frames: int
    resolution: int
    classes: int
    step_tflop: float = float("nan")  # forward + backward of one batch, ~3x the forward's FLOPs
    step_seconds: float = float("nan")
    peak_memory_mb: float = float("nan")
    device: str = ""
    projected_hours: float = float("nan")
    extract_sequences: int = 0
    extract_frames: int = 0
    extract_seconds: float = float("nan")
    store: str = ""
    status: str = "ok"
    message: str = ""
    git_commit: str = ""
    precision: str = ""  # the training arithmetic the step ran in
    loader_workers: int = 0  # DataLoader worker processes (0: batches drawn on the device)


def study_runs(only: Sequence[str] | None = None, profile: str = "paper", data: str = "casia-b",
               seed: int = 0) -> list[tuple[RunSpec, list[str]]]:
    """The distinct runs of the selected artifacts (all by default), each with the artifacts
    that use it, in artifact order (:func:`~gaitlib.runs.plan.study_plan`).  OU-MVLP rows are
    kept whatever ``data`` is: the dry run gives them an OU-MVLP-shaped store."""
    return [(p.spec, list(p.artifacts))
            for p in study_plan(only, profile, data, seed, every_setting=True)]


def _peak_reset() -> None:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process, where Linux allows it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _store_for(spec: RunSpec, data_root: Path, runs_dir: Path) -> tuple[Path, str]:
    """The store a run's dry run uses, and how the CSV describes it."""
    from gaitlib.data.store import Store, StoreError
    from gaitlib.runs.cache import check_real_store, ensure_synthetic

    if spec.shape == "casia-b":
        if spec.data == "synthetic":
            return ensure_synthetic(data_root, spec.profile, spec.seed), "synthetic"
        return check_real_store(spec.data, data_root), f"{spec.data} (real)"
    real = data_root / "oumvlp"
    try:
        if spec.data == "oumvlp" and Store(real).dataset == "oumvlp":
            return real, "oumvlp (real)"
    except StoreError:
        pass
    if spec.profile == "smoke":
        return ensure_synthetic(data_root, "smoke", spec.seed, shape="oumvlp"), \
            "synthetic, OU-MVLP-shaped"
    path = runs_dir / "dry-run-oumvlp-shaped"
    try:
        Store(path)
    except StoreError:
        from gaitlib.data.synthetic import generate

        print(f"generating a {DRYRUN_OUMVLP_SUBJECTS}-subject OU-MVLP-shaped store in {path} ...",
              flush=True)
        generate(path, n_subjects=DRYRUN_OUMVLP_SUBJECTS, seed=spec.seed, force=path.exists(),
                 shape="oumvlp", progress=False)
    return path, "synthetic, OU-MVLP-shaped"


def _test_items(store, test_subjects: list[str], protocol: str, subjects: int = 2,
                views: int = 2):
    """A few test sequences that still form a gallery and probes: the first ``subjects`` test
    subjects, one gallery condition and one probe condition per protocol row, ``views`` views."""
    import numpy as np

    from gaitlib.evaluation.protocols import PROTOCOLS

    proto = PROTOCOLS[protocol]
    conds = [proto.gallery_conditions[0], *dict.fromkeys(r.probe_conditions[0] for r in proto.rows)]
    chosen = test_subjects[:subjects]
    items = store.select(subjects=chosen, conditions=conds)
    first_views = sorted(set(store.views[items].tolist()))[:views]
    return items[np.isin(store.views[items], first_views)]


def _enlarged_store(store, config, train_subjects: list[str], test_subjects: list[str],
                    runs_dir: Path) -> Path:
    """A small store of ``store``'s frames upsampled (nearest) to the run's input height: enough
    training subjects and sequences for one P x K batch and the few test sequences.  Only the
    cost is measured on it; real 128x128 frames come from ``gaitlib data import --size 128``."""
    import numpy as np

    from gaitlib.data.store import Store, StoreError, StoreWriter
    from gaitlib.evaluation import protocol_for

    height = config.data.resolution
    factor = height // store.meta["frame_shape"][0]
    path = runs_dir / f"dry-run-{store.dataset}-{height}"
    try:
        return Store(path).path
    except StoreError:
        pass
    p, k = config.sampling.p, config.sampling.k
    items = [store.select(subjects=[s])[: 2 * k] for s in train_subjects[:p]]
    items.append(_test_items(store, test_subjects, protocol_for(store.dataset)))
    print(f"writing a {height}-high copy of {sum(len(i) for i in items)} sequences to {path} ...",
          flush=True)
    with StoreWriter(path, store.dataset, frame_size=height, force=path.exists(),
                     extra_meta={"notes": {"dry_run": f"{factor}x nearest upsampling of {store.path}"}}) as w:
        for i in np.concatenate(items):
            seq = store[int(i)]
            frames = store.frames_of(int(i)).repeat(factor, axis=1).repeat(factor, axis=2)
            w.add(seq.subject, seq.condition, seq.view, frames)
    return path


def step_tflop(model, config, device) -> float:
    """Floating-point operations of one training step, in TFLOP: the forward pass of one
    training clip (two clips counted by ``torch.utils.flop_counter``: convolutions and matrix products)
    x the batch size x 3 (the backward pass costs about twice the forward)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    height = config.data.resolution or int(config.model.options.get("resolution", 64))
    width = height * 11 // 16  # 64x44, 128x88, 32x22
    # two clips: BatchNorm in training mode needs more than one value per channel
    clip = torch.rand(2, config.sampling.frames, height, width, device=device)
    was_training = model.training
    model.train()
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            model(clip)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 2 * config.sampling.p * config.sampling.k * 3 / 1e12


def paper_classes(config, store) -> int | None:
    """The classifier size of the full run: the recipe split's training subjects (74 or 73 on
    CASIA-B, 5153 on OU-MVLP); ``None`` on a synthetic CASIA-B store (its own subjects)."""
    from gaitlib.runs.memory import paper_classes as classes

    variant = config.model.options.get("variant")
    if variant == "oumvlp" or store.dataset in ("oumvlp", "synthetic-oumvlp"):
        return OUMVLP_CLASSES
    return classes(config) if store.dataset == "casia-b" else None


def dry_run_one(spec: RunSpec, artifacts: list[str], data_root: Path, runs_dir: Path,
                device: str = "auto", steps: int = 3, workers: int | None = None) -> DryRunRow:
    """Dry-run one run (see the module note); failures become a row with status 'failed'."""
    import numpy as np
    import torch

    from gaitlib.data.store import Store
    from gaitlib.evaluation import evaluate, protocol_for
    from gaitlib.evaluation.extract import extract_features
    from gaitlib.models import options as model_options
    from gaitlib.provenance import git_commit
    from gaitlib.training import checkpoint as ckpt
    from gaitlib.training import rundir
    from gaitlib.training.trainer import load_trained_model, resolve_subjects, train

    config = resolve(spec, data_root, device, workers)
    row = DryRunRow(spec.model, spec.shape, spec.options_text(), " ".join(artifacts),
                    config.schedule.iterations, config.sampling.p * config.sampling.k,
                    config.sampling.frames, config.data.resolution or
                    int(config.model.options.get("resolution", 64)), 0, git_commit=git_commit(),
                    precision=config.precision,
                    loader_workers=0 if config.data.on_device else config.workers)
    try:
        store_path, row.store = _store_for(spec, data_root, runs_dir)
        config.data.store = str(store_path)
        store = Store(store_path)
        if store.dataset == "synthetic-oumvlp" and spec.profile != "smoke":
            # P = 32 distinct training subjects: all but the last two train
            subjects = sorted(set(store.subjects.tolist()))
            config.data.split = ""
            config.data.train_subjects, config.data.test_subjects = subjects[:-2], subjects[-2:]
        elif store.dataset.startswith("synthetic"):
            config.data.split = ""
        classes = paper_classes(config, store) if spec.profile == "paper" else None
        train_subjects, test_subjects = resolve_subjects(config, store)
        if config.data.resolution > store.meta["frame_shape"][0]:  # a 128x88 run on a 64x64 store
            store_path = _enlarged_store(store, config, train_subjects, test_subjects, runs_dir)
            row.store += f", {config.data.resolution}x{config.data.resolution} by 2x nearest upsampling"
            config.data.store = str(store_path)
            store = Store(store_path)
            config.data.split = ""
            config.data.train_subjects = sorted(set(store.subjects.tolist()) - set(test_subjects))
            config.data.test_subjects = test_subjects[:2]
            train_subjects, test_subjects = resolve_subjects(config, store)
        if classes is not None and "num_classes" in model_options(spec.model):
            config.model.options["num_classes"] = classes
        row.classes = classes or len(train_subjects)
        config.checkpoint_every, config.log_every = steps, 1
        config.eval.enabled = False
        dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available()
                           else "cpu")
        row.device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
            f"cpu ({torch.get_num_threads()} threads)"
        _peak_reset()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        with tempfile.TemporaryDirectory(dir=runs_dir, prefix=f"dry-{spec.model}-") as tmp:
            run_dir = Path(tmp) / "run"
            first = train(config, run_dir, stop_after=steps, progress=False)
            if first.iteration != steps or ckpt.latest_checkpoint(run_dir / "checkpoints") is None:
                raise RuntimeError(f"training stopped at {first.iteration}, no checkpoint at {steps}")
            resumed = train(config, run_dir, stop_after=steps + 1, progress=False)
            if resumed.iteration != steps + 1:
                raise RuntimeError(f"the resumed run ended at {resumed.iteration}, not {steps + 1}")
            records = rundir.read_metrics(run_dir)
            timed = [1.0 / r["it_per_s"] for r in records if 2 <= r["iteration"] <= steps]
            row.step_seconds = float(np.mean(timed)) if timed else float("nan")
            model = load_trained_model(run_dir, dev).model
            row.step_tflop = step_tflop(model, config, dev)
            items = _test_items(store, test_subjects, protocol_for(store.dataset))
            began = time.perf_counter()
            feats = extract_features(model, store, items, dev, workers=0, sequences_per_batch=1,
                                     precision=config.eval.precision,
                                     height=config.data.resolution)
            evaluate(feats.embeddings, feats.subjects, feats.conditions, feats.views,
                     protocol_for(store.dataset), bootstrap=0)
            row.extract_seconds = time.perf_counter() - began
            row.extract_sequences = len(items)
            row.extract_frames = int(store.lengths[items].sum())
        row.peak_memory_mb = (torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda"
                              else _peak_rss_mb())
        row.projected_hours = row.iterations * row.step_seconds / 3600
    except Exception as err:  # one failing run must not hide the others' measurements
        row.status, row.message = "failed", f"{type(err).__name__}: {err}"[:300]
    return row


def format_rows(rows: Sequence[DryRunRow]) -> str:
    """The dry run's table for the terminal, with totals."""
    head = (f"{'model':<8} {'data':<7} {'options':<34} {'iters':>7} {'batch':>5} {'step s':>8} "
            f"{'peak MB':>8} {'hours':>8}  status")
    lines = [head]
    for r in rows:
        lines.append(f"{r.model:<8} {r.dataset:<7} {r.options[:34]:<34} {r.iterations:>7} "
                     f"{r.batch:>5} {r.step_seconds:>8.2f} {r.peak_memory_mb:>8.0f} "
                     f"{r.projected_hours:>8.1f}  {r.status} {r.message[:60]}")
    ok = [r for r in rows if r.status == "ok"]
    total = sum(r.projected_hours for r in ok)
    lines.append(f"{len(rows)} runs ({len(ok)} ok); projected training time on "
                 f"{ok[0].device if ok else '-'}: {total:.1f} device-hours")
    return "\n".join(lines)


def write_csv(rows: Sequence[DryRunRow], path: str | os.PathLike) -> Path:
    """Write the rows (columns :data:`COLUMNS`) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(DryRunRow)],
                                lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (round(v, 4) if isinstance(v, float) else v)
                             for k, v in asdict(r).items()})
    os.replace(tmp, path)
    return path


def default_csv(profile: str, runs_dir: str | Path = "runs") -> Path:
    """Where the dry run's CSV goes: the paper profile's is published in the book."""
    from gaitlib.runs.runner import SOURCE_ROOT

    return SOURCE_ROOT / "book" / "results" / "paper-dry-run.csv" if profile == "paper" else \
        Path(runs_dir) / f"{profile}-dry-run.csv"


def dry_run(profile: str = "paper", data: str = "casia-b", data_root: str | Path = "data",
            only: Sequence[str] | None = None, runs_dir: str | Path = "runs", seed: int = 0,
            device: str = "auto", steps: int = 3, workers: int | None = None,
            out: str | Path | None = None, allow_dirty: bool = False,
            isolate: bool = True) -> list[DryRunRow]:
    """Dry-run every distinct run of the selected artifacts (see the module note), print the
    table and write it to ``out`` (a CSV) when given.  ``steps`` >= 2 (one warm-up step).
    Writing into the repository's ``book/`` is publishing: it refuses a checkout with
    uncommitted source changes unless ``allow_dirty``.  ``isolate``: each run in a fresh
    process, so its peak memory is its own (a process keeps the memory it once used).
    ``workers``: DataLoader workers (default the recipe's)."""
    from gaitlib.runs.runner import SOURCE_ROOT as REPO

    if steps < 2:
        raise ValueError(f"--steps must be >= 2 (the first step warms up), got {steps}")
    if out is not None and Path(out).resolve().is_relative_to(REPO / "book"):
        from gaitlib.provenance import require_clean

        require_clean(REPO, allow_dirty)
    data_root, runs_dir = Path(data_root), Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    runs = study_runs(only, profile, data, seed)
    rows = []
    for i, (spec, artifacts) in enumerate(runs, 1):
        began = time.perf_counter()
        if isolate:
            row = _in_child(spec, artifacts, data_root, runs_dir, device, steps, workers)
        else:
            row = dry_run_one(spec, artifacts, data_root, runs_dir, device, steps, workers)
        print(f"[{i}/{len(runs)}] {row.model} {row.dataset} {row.options or '-'}: {row.status}, "
              f"step {row.step_seconds:.2f} s, peak {row.peak_memory_mb:.0f} MB "
              f"({time.perf_counter() - began:.0f} s) {row.message}", flush=True)
        rows.append(row)
        if out is not None:  # keep what is measured if a later run is interrupted
            write_csv(rows, out)
    print(format_rows(rows))
    return rows


def _in_child(spec: RunSpec, artifacts: list[str], data_root: Path, runs_dir: Path, device: str,
              steps: int, workers: int | None) -> DryRunRow:
    """:func:`dry_run_one` in a fresh Python process; a crash becomes a 'failed' row."""
    from gaitlib.runs.runner import run_child

    out = run_child("gaitlib.runs.dryrun", {
        "spec": spec.to_dict(), "artifacts": artifacts,
        "data_root": str(Path(data_root).resolve()), "runs_dir": str(Path(runs_dir).resolve()),
        "device": device, "steps": steps, "workers": workers})
    if out.ok:
        return DryRunRow(**out.result)
    return DryRunRow(spec.model, spec.shape, spec.options_text(), " ".join(artifacts), 0, 0, 0, 0, 0,
                     status="failed", message=out.message)


def _child(job: dict) -> dict:
    row = dry_run_one(RunSpec.from_dict(job["spec"]), job["artifacts"], Path(job["data_root"]),
                      Path(job["runs_dir"]), job["device"], job["steps"], job["workers"])
    return asdict(row)


if __name__ == "__main__":
    import sys

    from gaitlib.runs.runner import child_main

    sys.exit(child_main(_child))
