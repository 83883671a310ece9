"""Checkpoints: atomic writes, ``weights_only=True`` loads, and the RNG state of every generator.

A checkpoint holds what a resumed run needs to continue exactly where an uninterrupted one
would: model, optimizer and scheduler state, the iteration, the RNG states (torch CPU/CUDA,
numpy, python) and the config. The data sampler needs no state: its batches are pure functions of
(seed, iteration). RNG states are stored as tensors and plain Python values so the file loads
with ``torch.load(weights_only=True)``, which cannot execute code from a tampered file.
"""

from __future__ import annotations

import io
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gaitlib.errors import GaitlibError, naming

FORMAT = "gaitlib-checkpoint"
VERSION = 1
_NAME = re.compile(r"^ckpt-(\d{8})\.pt$")
REQUIRED = ("format", "version", "iteration", "model", "optimizer", "scheduler", "rng", "config")


class CheckpointError(GaitlibError, RuntimeError):
    """A checkpoint file is missing, unreadable or not a gaitlib checkpoint."""


def checkpoint_path(directory: str | os.PathLike, iteration: int) -> Path:
    return Path(directory) / f"ckpt-{iteration:08d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of the checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def capture_rng() -> dict[str, Any]:
    """Every RNG's state as tensors and plain values (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng` saved.  The CUDA states go to the GPUs visible now, as
    many as both have: a run saved with more visible GPUs resumes with fewer (the trainer
    reseeds its step stream every iteration, so the result does not depend on them)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss_next"]))


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically: a reader (or a crash) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    # Serialised in memory first: torch.save writing straight to a full disk loses the OS
    # error (it fails later on a file position), and the message must say the disk is full.
    data = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, data)
    try:
        with naming(path), open(tmp, "wb") as f:
            f.write(data.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; any problem raises :class:`CheckpointError`
    naming the file."""
    path = Path(path)
    check_regular_file(path, "checkpoint", CheckpointError)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable "
                              f"({describe_load_error(err)}); "
                              "delete it to resume from an earlier one") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gaitlib checkpoint")
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    if payload["version"] != VERSION:
        raise CheckpointError(f"checkpoint {path} has version {payload['version']}; this gaitlib "
                              f"reads version {VERSION}")
    return payload


def check_regular_file(path: Path, what: str, error: type[Exception]) -> None:
    """``path`` must be a regular file: a FIFO or device would block ``torch.load`` forever."""
    if not path.exists():
        raise error(f"{what} {path} does not exist")
    if not path.is_file():
        raise error(f"{what} {path} is not a regular file")


def describe_load_error(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's advice to load it
    with ``weights_only=False``: for a file of unknown origin that would let it run code."""
    text = str(err).strip()
    if "weights_only" in text or "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" (e.g. {found[1]})" if found else ""
        return (f"it holds Python objects other than tensors{what}: unpickling them could run "
                "code, so gaitlib's weights-only load refuses the file")
    return f"{type(err).__name__}: {(text.splitlines() or [''])[0][:200]}"


def prune(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` (>= 1) checkpoints."""
    for _, path in list_checkpoints(directory)[: -max(keep, 1)]:
        path.unlink(missing_ok=True)


def load_model_state(model: torch.nn.Module, state: dict, config, path: str | os.PathLike) -> None:
    """Load a checkpoint's weights into ``model`` (built from ``config``, a TrainConfig), after
    checking that the checkpoint was saved from the same model and options: a checkpoint of
    another model is a CheckpointError saying which model it holds, not a shape mismatch
    deep inside ``load_state_dict``."""
    import json

    def model_of(cfg: dict) -> dict:
        return json.loads(json.dumps(cfg.get("model", {}), default=str))  # tuples -> lists

    saved, wanted = model_of(state.get("config") or {}), model_of(config.to_dict())
    if saved != wanted:
        opts = saved.get("options", {})
        diff = sorted(k for k in opts.keys() | wanted.get("options", {}).keys()
                      if opts.get(k) != wanted.get("options", {}).get(k))
        detail = ", ".join(f"{k}={opts.get(k)!r} (run: {wanted['options'].get(k)!r})"
                           for k in diff[:6])
        raise CheckpointError(f"checkpoint {path} holds a {saved.get('name')!r} model"
                              + (f" with options {detail}" if detail else "")
                              + f"; this run's config is {wanted.get('name')!r}: the checkpoint "
                              "belongs to another run")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:  # same options, other data (e.g. num_classes from the store)
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"checkpoint {path} does not fit the model of this run's config "
                              f"({first})") from err
