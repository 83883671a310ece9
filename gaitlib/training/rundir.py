"""The run directory: what a run leaves behind, and the rules for reusing one.

Layout::

    RUN_DIR/config.json        the full TrainConfig
    RUN_DIR/store.json         the identity of the store it trains on (its meta.json, less the date)
    RUN_DIR/environment.json   package versions, torch/CUDA, git commit + dirty flag, host, command,
                               the device the run trained on (environment-resumed-*.json: resumes)
    RUN_DIR/metrics.jsonl      one JSON object per logged iteration
    RUN_DIR/checkpoints/       ckpt-NNNNNNNN.pt (the last one is the final model)
    RUN_DIR/eval.csv           rank-1 table (rows NM/BG/CL or miss/discard, views + Mean)
    RUN_DIR/eval.json          the table, per-row 95% CIs, probe counts
    RUN_DIR/results.json       written last: the run finished (summary)

A directory with ``results.json`` holds a finished run and is only replaced with ``force``; one
with a ``config.json`` but no results is an interrupted run and is resumed if its config matches
(:func:`result_fields`: where the store sits and the device do not count, the store's identity
does; the run cache's key is made of the same fields, so whatever resumes a run, ``gaitlib
train`` or ``gaitlib reproduce``, on any device or number of processes, agrees with it).
One process at a time writes a run directory: :func:`run_lock` holds ``RUN_DIR.lock`` beside it
(``gaitlib train``, ``gaitlib eval --write`` and the run cache of ``gaitlib reproduce``).
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from gaitlib.errors import GaitlibError, naming
from gaitlib.training.config import NON_RESULT_KEYS, ConfigError, TrainConfig, from_dict

CONFIG, ENVIRONMENT = "config.json", "environment.json"
METRICS, RESULTS = "metrics.jsonl", "results.json"
# Test-set rank-1 at the iterations of ``eval.curve`` (a learning curve), one JSON line each.
CURVE = "curve.jsonl"
CHECKPOINTS = "checkpoints"
STORE = "store.json"
# Where a run's data sits and what it runs on: not what it computes.  The store's identity
# (store_identity) stands for its path.
PLACE_KEYS = ("data.store", "device")


class RunDirError(GaitlibError, RuntimeError):
    """A run directory cannot be used for what was asked (locked, unfinished)."""


class RunLockedError(RunDirError):
    """Another process holds the run directory's lock."""


class UnfinishedRunError(RunDirError):
    """The run has not finished: its results must not be written or published."""


_held = threading.local()  # lock files this thread holds, for re-entry


def lock_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir).resolve()
    return run_dir.parent / f"{run_dir.name}.lock"


@contextmanager
def run_lock(run_dir: str | os.PathLike, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``<run_dir>.lock`` while the block runs.

    ``wait``: block until the lock is free; otherwise raise :class:`RunLockedError` naming the
    holder's pid. ``flock`` locks belong to the open file, so this also serialises threads of
    one process (``gaitlib reproduce --gpus`` runs notebooks in threads), and the kernel drops
    the lock of a process that dies, so a crashed run never leaves its directory locked. A
    thread that already holds the lock re-enters without waiting (the run cache locks a run and
    then trains it, and training locks it too).
    """
    path = lock_path(Path(run_dir))
    held = getattr(_held, "paths", None)
    if held is None:
        held = _held.paths = set()
    if path in held:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunLockedError(f"{run_dir} is in use by another gaitlib process ({holder}; lock "
                                 f"{path}); wait for it to end, or pass --wait to queue behind "
                                 "it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        held.add(path)
        try:
            yield
        finally:
            held.discard(path)
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (tmp + os.replace); a failed write (disk full) names ``path`` and
    leaves no temporary file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with naming(path):
            tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path, what: str) -> Any:
    """A JSON file of a run directory; unreadable or malformed is a RunDirError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirError(f"{path}: unreadable {what} ({type(err).__name__}: {err})") from err


def is_finished(run_dir: Path) -> bool:
    return (run_dir / RESULTS).is_file()


def load_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a gaitlib run directory (no {CONFIG})")
    try:
        return from_dict(read_json(path, "run config"))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def store_identity(store: str | os.PathLike) -> dict:
    """What identifies a store's content: its ``meta.json`` without the creation date (the
    dataset, frame shape, counts and checksums); a path that is not a store raises
    FileNotFoundError saying how to make one."""
    from gaitlib.data.store import read_meta

    meta = Path(store) / "meta.json"
    if not meta.is_file():
        raise FileNotFoundError(f"{store} is not a gaitlib store (no meta.json); create it with "
                                "`gaitlib data synth` or `gaitlib data import`")
    identity = read_meta(meta)
    identity.pop("created", None)
    return identity


def result_fields(config: dict) -> dict:
    """A config dict flattened to dotted keys (model options kept whole), without the keys that
    cannot change a result (``NON_RESULT_KEYS``) and where it runs (``PLACE_KEYS``)."""
    flat: dict[str, Any] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict) and k != "options":
                walk(v, f"{prefix}{k}.")
            else:
                flat[prefix + k] = v

    walk(config, "")
    return {k: v for k, v in flat.items() if k not in NON_RESULT_KEYS and k not in PLACE_KEYS}


def prepare(run_dir: Path, config: TrainConfig, force: bool) -> bool:
    """Make ``run_dir`` ready for ``config``; True when an interrupted run is to be resumed.

    Raises FileExistsError for a finished run (without ``force``), a run with another config
    (without ``force``), or a non-empty directory that is not a run directory (even with
    ``force``: it is not ours to delete).
    """
    run_dir = Path(run_dir)
    if (run_dir.exists() or run_dir.is_symlink()) and not run_dir.is_dir():
        raise FileExistsError(f"{run_dir} is a file, not a run directory; choose another --out")
    if run_dir.exists() and any(run_dir.iterdir()):
        if not (run_dir / CONFIG).is_file():
            raise FileExistsError(f"{run_dir} is not empty and is not a gaitlib run directory; "
                                  "choose another --out")
        if force:
            shutil.rmtree(run_dir)
        elif is_finished(run_dir):
            raise FileExistsError(f"{run_dir} already holds a finished run; pass --force to "
                                  "replace it, or `gaitlib eval` it")
        else:
            old = read_json(run_dir / CONFIG, "run config")
            new = json.loads(json.dumps(config.to_dict()))  # tuples -> lists, as on disk
            new_flat, old_flat = result_fields(new), result_fields(old)
            diff = sorted(k for k in new_flat.keys() | old_flat.keys()
                          if new_flat.get(k) != old_flat.get(k))
            if diff:
                changes = ", ".join(f"{k}: {old_flat.get(k)!r} -> {new_flat.get(k)!r}"
                                    for k in diff[:8])
                raise FileExistsError(f"{run_dir} holds an interrupted run with another config "
                                      f"({changes}); pass --force to start over")
            identity = store_identity(config.data.store)
            if (run_dir / STORE).is_file() and json.loads((run_dir / STORE).read_text()) != \
                    json.loads(json.dumps(identity, default=str)):
                raise FileExistsError(f"{run_dir} holds an interrupted run on another store than "
                                      f"{config.data.store} (see {run_dir / STORE}); pass --force "
                                      "to start over")
            write_json(run_dir / STORE, identity)
            write_json(run_dir / CONFIG, config.to_dict())  # non-result keys may have changed
            return True
    (run_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    write_json(run_dir / STORE, store_identity(config.data.store))
    write_json(run_dir / CONFIG, config.to_dict())
    return False


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def environment(world_size: int = 1) -> dict[str, Any]:
    """What produced a run: code version, packages, hardware."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    packages = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name] = dist.version
    cuda = torch.cuda.is_available()
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "command": sys.argv,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda else [],
        "cpu_threads": torch.get_num_threads(),
        "world_size": world_size,
        "git": {"commit": commit, "dirty": bool(status) if commit else None},
        "packages": dict(sorted(packages.items(), key=lambda kv: kv[0].lower())),
    }


def write_environment(run_dir: Path, world_size: int, resumed_at: int | None,
                      device: torch.device | str | None = None) -> None:
    """environment.json (or, for a resumed run, environment-resumed-<iteration>.json) with the
    device this process trains on: what the book reports, whatever device was asked for."""
    name = ENVIRONMENT if resumed_at is None else f"environment-resumed-{resumed_at:08d}.json"
    env = environment(world_size)
    if device is not None:
        device = torch.device(device)
        env["device"] = str(device)
        env["device_name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    write_json(Path(run_dir) / name, env)


def trained_devices(run_dir: Path) -> list[str]:
    """The devices a run trained on, one label per training session (first, then each resume),
    without repeats, e.g. ``['cpu']`` or ``['cuda:0 (NVIDIA H200), 4 processes']``.

    Runs written before the device was recorded: 'cpu' when no GPU was visible to them, else
    'unknown (not recorded)'.
    """
    labels: list[str] = []
    files = sorted(Path(run_dir).glob("environment-resumed-*.json"))
    for path in [Path(run_dir) / ENVIRONMENT, *files]:
        if not path.is_file():
            continue
        env = json.loads(path.read_text())
        if "device" in env:
            label = env["device"] + (f" ({env['device_name']})" if env.get("device_name")
                                     and env["device"] != "cpu" else "")
        else:
            label = "cpu" if not env.get("gpus") else "unknown (not recorded)"
        if env.get("world_size", 1) > 1:
            label += f", {env['world_size']} processes"
        if label not in labels:
            labels.append(label)
    return labels


def read_metrics(run_dir: Path, name: str = METRICS) -> list[dict]:
    """The records of ``metrics.jsonl`` (or of another log of the run, ``name``: :data:`CURVE`).
    A last line cut short (a crash or a full disk during its append) is dropped with a warning;
    a malformed line before the last is corruption, a RunDirError naming the file and the
    line."""
    path = Path(run_dir) / name
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            if number == len(lines):  # the append that was interrupted
                warnings.warn(f"{path}, line {number}: dropped a torn last line (a write cut "
                              f"short by a crash): {line[:60]!r}", stacklevel=2)
                continue
            raise RunDirError(f"{path}, line {number}: not a JSON record ({err}); the log is "
                              "corrupt (only its last line can be torn by a crash); remove the "
                              "line or start over with --force") from None
        records.append(record)
    return records


def truncate_metrics(run_dir: Path, iteration: int, name: str = METRICS) -> None:
    """Drop log lines past ``iteration`` (written after the checkpoint an interrupted run
    resumes from) and a torn last line, so the log reads as one uninterrupted run."""
    path = Path(run_dir) / name
    if not path.is_file():
        return
    keep = [r for r in read_metrics(run_dir, name) if r.get("iteration", 0) <= iteration]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with naming(path):
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def append_metrics(run_dir: Path, record: dict, name: str = METRICS) -> None:
    """Append one record as one ``write`` of one line (``O_APPEND``): a crash leaves at most a
    torn last line, which :func:`read_metrics` drops."""
    path = Path(run_dir) / name
    line = (json.dumps(record) + "\n").encode()
    with naming(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def write_evaluation(run_dir: Path, result) -> dict:
    """eval.csv and eval.json from an EvaluationResult; returns the JSON summary."""
    run_dir = Path(run_dir)
    with naming(run_dir / "eval.csv"):
        result.table.to_csv(run_dir / "eval.csv", float_format="%.4f")
    summary = {
        "protocol": result.protocol,
        "metric": result.metric,
        "table": {row: {col: _num(v) for col, v in values.items()}
                  for row, values in result.table.to_dict(orient="index").items()},
        "ci95": {row: {"low": _num(v["low"]), "high": _num(v["high"])}
                 for row, v in result.ci.to_dict(orient="index").items()},
        "bootstrap": result.bootstrap,
        "n_subjects": result.n_subjects,
        "n_probes": result.n_probes,
        # cells with no probe or no gallery sequence: the per-view numbers and Means they touch
        # are NaN (null), never means over fewer cells
        "undefined": list(getattr(result, "undefined", [])),
        # probe view x gallery view accuracies per row, for the heatmaps
        "view_accuracy": {row: json.loads(frame.to_json(orient="split"))
                          for row, frame in result.view_accuracy.items()},
    }
    counts = getattr(result, "subject_counts", None)
    if counts is not None:  # per test subject hit/probe counts, for paired comparisons of runs
        summary["subject_counts"] = counts.to_json()
    map_table = getattr(result, "map_table", None)
    if map_table is not None:  # mAP per row and probe view (OpenGait's cross-view protocol)
        summary["map"] = {row: {col: _num(v) for col, v in values.items()}
                          for row, values in map_table.to_dict(orient="index").items()}
    write_json(run_dir / "eval.json", summary)
    return summary


def read_evaluation(run_dir: Path):
    """The :class:`~gaitlib.evaluation.EvaluationResult` a run wrote to ``eval.json``."""
    import pandas as pd

    from gaitlib.evaluation.protocols import EvaluationResult, SubjectCounts

    data = json.loads((Path(run_dir) / "eval.json").read_text())
    table = pd.DataFrame.from_dict(data["table"], orient="index").astype(float)
    ci = pd.DataFrame.from_dict(data["ci95"], orient="index").astype(float)
    views = {row: pd.DataFrame(v["data"], index=[str(i) for i in v["index"]],
                               columns=[str(c) for c in v["columns"]]).astype(float)
             for row, v in data.get("view_accuracy", {}).items()}
    counts = SubjectCounts.from_json(data["subject_counts"]) if "subject_counts" in data else None
    map_table = (pd.DataFrame.from_dict(data["map"], orient="index").astype(float)
                 if "map" in data else None)
    return EvaluationResult(data["protocol"], data["metric"], table, views, ci,
                            data["bootstrap"], data["n_subjects"], data["n_probes"],
                            data.get("undefined", []), counts, map_table)


def _num(value) -> float | None:
    value = float(value)
    return None if value != value else round(value, 4)
