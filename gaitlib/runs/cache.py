"""The run cache: every training run the artifacts need, keyed by what determines its result.

A run is asked for by a :class:`RunSpec` (model, its options at the paper's scale, dataset,
profile, seed).  The spec resolves to a full :class:`~gaitlib.training.TrainConfig` through the
model's recipe; the run's key hashes that config (minus fields that do not change results, such
as worker counts), the dataset store's identity (its ``meta.json``) and the code version (a hash
of the package sources that training and evaluation execute).  The run lives in
``<runs_dir>/<model>-<key>/``, so

* a run one artifact finished is reused by every other artifact that asks for the same spec
  (the full model of an ablation table is the main table's run);
* an interrupted run is resumed from its last checkpoint (the trainer guarantees it ends where
  an uninterrupted run would);
* editing the model or training code changes the key, so stale results are never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import gaitlib
from gaitlib.training.config import PRECISIONS, TrainConfig

PACKAGE = Path(gaitlib.__file__).resolve().parent
# Sources that cannot change a training or evaluation result (the pages, the runs layer that
# schedules the runs, the command line): left out of the code version.
NOT_IN_CODE_VERSION = ("analysis", "report", "publish", "runs", "figures", "cli.py", "__main__.py")
DATASETS = ("synthetic", "casia-b", "oumvlp")
DATASET_NAMES = {"synthetic": "synthetic", "casia-b": "CASIA-B", "oumvlp": "OU-MVLP"}  # in prose
# `gaitlib reproduce --precision` tells its notebook processes the precision of their runs here.
PRECISION_ENV = "GAITLIB_PRECISION"


@cache
def code_version() -> str:
    """A short hash of the package's model, data, training and evaluation sources."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.split("/")[0] in NOT_IN_CODE_VERSION:
            continue
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class RunSpec:
    """One training run as an artifact names it.

    ``options`` are the model's build options at the paper's scale (an ablation row's switches,
    ``resolution=128``); cheap profiles scale them (see ``gaitlib.training.recipes``).
    ``data`` is 'synthetic', 'casia-b' or 'oumvlp'; ``shape`` 'oumvlp' asks for the OU-MVLP
    setting (the OU-MVLP recipe; on synthetic data the OU-MVLP-shaped synthetic store).
    ``precision``: the training arithmetic, '' for the recipe's (see :func:`resolve`).
    """

    model: str
    options: tuple[tuple[str, Any], ...] = ()
    data: str = "synthetic"
    profile: str = "cpu"
    seed: int = 0
    shape: str = "casia-b"
    precision: str = ""

    @classmethod
    def of(cls, model: str, data: str = "synthetic", profile: str = "cpu", seed: int = 0,
           shape: str = "casia-b", precision: str = "", **options: Any) -> RunSpec:
        return cls(model, tuple(sorted((k, _frozen(v)) for k, v in options.items())), data,
                   profile, seed, shape, "" if precision == "recipe" else precision)

    @property
    def option_dict(self) -> dict[str, Any]:
        return dict(self.options)

    def options_text(self) -> str:
        """The options as ``key=value`` pairs joined by ';' (lists as lists), for tables and logs."""
        return ";".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in self.options)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON values (the options a dict); :meth:`from_dict` reads it back."""
        return {"model": self.model,
                "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options},
                "data": self.data, "profile": self.profile, "seed": self.seed, "shape": self.shape,
                "precision": self.precision}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunSpec:
        return cls.of(raw["model"], data=raw["data"], profile=raw["profile"], seed=raw["seed"],
                      shape=raw["shape"], precision=raw.get("precision", ""), **raw["options"])


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def store_path(data: str, data_root: str | os.PathLike, profile: str, shape: str = "casia-b") -> Path:
    """Where the store of ``data`` lives under ``data_root`` (see ``gaitlib data``)."""
    if data not in DATASETS:
        raise ValueError(f"unknown dataset {data!r}; valid: {', '.join(DATASETS)}")
    root = Path(data_root)
    if data == "synthetic":
        name = "synthetic-smoke" if profile == "smoke" else "synthetic"
        return root / (name + ("-oumvlp" if shape == "oumvlp" else ""))
    if shape == "oumvlp" and data != "oumvlp":
        raise ValueError(f"an OU-MVLP run needs OU-MVLP data, not {data!r}")
    return root / data


def chosen_precision(spec: RunSpec) -> str:
    """The precision ``spec`` trains in when it differs from its recipe's: the spec's own, else
    the one ``gaitlib reproduce --precision`` hands its notebooks (:data:`PRECISION_ENV`), else
    '' (the recipe's).  Only the paper profile may change it: the cheap profiles stay fp32."""
    precision = spec.precision or os.environ.get(PRECISION_ENV, "")
    precision = "" if precision == "recipe" else precision
    if precision and precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; valid: recipe, {', '.join(PRECISIONS)}")
    if precision and spec.profile != "paper":
        raise ValueError(f"--precision {precision} applies to the paper profile; the "
                         f"{spec.profile} profile trains in fp32")
    return precision


def resolve(spec: RunSpec, data_root: str | os.PathLike = "data", device: str = "auto",
            workers: int | None = None) -> TrainConfig:
    """The full training config of ``spec``: its model's recipe for the profile and setting,
    its options, store, seed and precision (:func:`chosen_precision`)."""
    from gaitlib.training import recipe

    dataset = "oumvlp" if spec.shape == "oumvlp" else "casia-b"
    config = recipe(spec.model, spec.profile, dataset, options=spec.option_dict,
                    real=spec.data == "casia-b")
    config.precision = chosen_precision(spec) or config.precision
    if spec.data == "synthetic":  # the recipe's split names real subjects; a synthetic store has its own
        config.data.split = ""
    config.data.store = str(store_path(spec.data, data_root, spec.profile, spec.shape))
    config.seed = spec.seed
    config.device = device
    if workers is not None:
        config.workers = workers
    return config


def run_key(config: TrainConfig) -> str:
    """Hash of the result-determining config, the store's identity and the code version: the
    fields the trainer's resume check compares (:func:`gaitlib.training.rundir.result_fields`),
    so a run folder resumes whatever device, world size or store path resumes it."""
    from gaitlib.training.rundir import result_fields, store_identity

    payload = json.dumps({"config": result_fields(json.loads(json.dumps(config.to_dict()))),
                          "store": store_identity(config.data.store), "code": code_version()},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def run_dir_of(config: TrainConfig, runs_dir: str | os.PathLike = "runs") -> Path:
    """The cache folder of a run: ``<runs_dir>/<model>-<key>`` (``gaitlib train`` writes there
    too by default, so ``gaitlib reproduce`` finds what it trained)."""
    return Path(runs_dir) / f"{config.model.name}-{run_key(config)}"


@dataclass
class Run:
    """A finished run: where it is, its config and evaluation, and how long it took here."""

    spec: RunSpec
    config: TrainConfig
    run_dir: Path
    reused: bool
    seconds: float
    evaluation: dict = field(default_factory=dict)

    def result(self):
        """The run's :class:`~gaitlib.evaluation.EvaluationResult` (table, CIs, view x view)."""
        from gaitlib.training.rundir import read_evaluation

        return read_evaluation(self.run_dir)

    def subjects(self):
        """``(store, train subjects, test subjects)`` of the run, as its trainer resolved them."""
        from gaitlib.data.store import Store
        from gaitlib.training.trainer import resolve_subjects

        store = Store(self.config.data.store)
        train_subjects, test_subjects = resolve_subjects(self.config, store)
        return store, list(train_subjects), list(test_subjects)

    def load_model(self, device: str = "cpu"):
        """The trained model (final checkpoint, ``weights_only`` loading, the run's memory
        layout), in eval mode."""
        from gaitlib.training.trainer import load_trained_model

        return load_trained_model(self.run_dir, device).model.eval()

    def curve(self) -> list[dict]:
        """The run's learning curve: test-set rank-1 (Mean per condition, in %) at each
        ``eval.curve`` iteration and at the end, ``[{"iteration", "rank1": {cond: value}}]``;
        empty for a run that scored only its end."""
        from gaitlib.training.rundir import CURVE, read_metrics

        points = [{"iteration": p["iteration"], "rank1": p["rank1"]}
                  for p in read_metrics(self.run_dir, CURVE)]
        if not points:
            return []
        final = self.result().table["Mean"].round(4).to_dict()
        return [*points, {"iteration": self.config.schedule.iterations, "rank1": final}]

    def devices(self) -> list[str]:
        """The device(s) the run trained on, from its environment records (see
        :func:`gaitlib.training.rundir.trained_devices`)."""
        from gaitlib.training.rundir import trained_devices

        return trained_devices(self.run_dir)

    def parameters(self) -> int:
        from gaitlib.models import count_parameters

        return count_parameters(self.load_model())


def ensure_run(spec: RunSpec, runs_dir: str | os.PathLike = "runs",
               data_root: str | os.PathLike = "data", device: str = "auto",
               workers: int | None = None, progress: bool = True,
               recompute: bool = False) -> Run:
    """The finished run of ``spec``: reused from the cache, resumed, or trained now.

    Safe to call for the same spec from several processes or threads at once: one trains, the
    others wait for it and reuse its result.  Under torchrun (``WORLD_SIZE`` > 1) every rank
    calls it and the run trains with DDP into the same folder; the trainer's main rank holds
    the run's lock.  ``recompute`` trains with activation checkpointing where the model offers
    it (the plan's choice for a run too large for its cards; the run and its results are the same).
    """
    import contextlib

    from gaitlib.training.rundir import is_finished, run_lock
    from gaitlib.training.trainer import train

    config = resolve(spec, data_root, device, workers)
    config.recompute = recompute
    run_dir = run_dir_of(config, runs_dir)
    start = time.perf_counter()
    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    # Notebooks run in parallel may ask for the same run: the second waits, then reuses it.
    with run_lock(run_dir, wait=True) if ranks == 1 else contextlib.nullcontext():
        reused = is_finished(run_dir)
        if not reused:
            if int(os.environ.get("RANK", "0")) == 0:
                run_dir.parent.mkdir(parents=True, exist_ok=True)
                (run_dir.parent / f"{run_dir.name}.spec.json").write_text(
                    json.dumps(spec.to_dict(), indent=2, default=str) + "\n")
            train(config, run_dir, progress=progress, wait=True)
    evaluation = json.loads((run_dir / "eval.json").read_text())
    return Run(spec, config, run_dir, reused, time.perf_counter() - start, evaluation)


# Synthetic dataset per profile and shape: smoke is tiny (plumbing only); cpu and paper use the
# default set.  The OU-MVLP-shaped set ignores views (it always has OU-MVLP's 14).
SYNTH_OPTIONS = {
    ("smoke", "casia-b"): dict(n_subjects=8, views=("000", "054", "090", "126", "180")),
    ("cpu", "casia-b"): dict(n_subjects=100),
    ("cpu-long", "casia-b"): dict(n_subjects=100),
    ("paper", "casia-b"): dict(n_subjects=100),
    ("smoke", "oumvlp"): dict(n_subjects=8),
    ("cpu", "oumvlp"): dict(n_subjects=100),
    ("cpu-long", "oumvlp"): dict(n_subjects=100),
    ("paper", "oumvlp"): dict(n_subjects=100),
}


def synthetic_store_path(data_root: Path, profile: str, shape: str = "casia-b") -> Path:
    return store_path("synthetic", data_root, profile, shape)


def ensure_synthetic(data_root: Path, profile: str, seed: int = 0, shape: str = "casia-b") -> Path:
    """Generate the profile's synthetic store of ``shape`` unless it is already there."""
    from gaitlib.data.store import Store, StoreError
    from gaitlib.data.synthetic import generate

    path = synthetic_store_path(data_root, profile, shape)
    try:
        Store(path)
        return path
    except StoreError:
        pass
    print(f"generating the {profile} {DATASET_NAMES.get(shape, shape)}-shaped synthetic dataset in "
          f"{path} ...", flush=True)
    stats = generate(path, seed=seed, force=path.exists(), shape=shape, **SYNTH_OPTIONS[profile, shape])
    print(stats.summary(), flush=True)
    return path


def check_real_store(data: str, data_root: Path) -> Path:
    """The imported store of real dataset ``data`` under ``data_root``; raises with how to make it."""
    from gaitlib.data.store import Store, StoreError

    path = store_path(data, data_root, "cpu")
    how = f"import your copy with `gaitlib data import {data} SRC --out {path}`"
    if not (path / "meta.json").is_file():
        raise FileNotFoundError(f"--data {data} expects a {DATASET_NAMES[data]} store at {path} "
                                f"(no {path / 'meta.json'}); {how}")
    try:
        dataset = Store(path).dataset
    except StoreError as err:
        raise ValueError(f"{path} is not a readable gaitlib store ({err}); {how}") from err
    if dataset != data:
        raise ValueError(f"--data {data} expects a {DATASET_NAMES[data]} store at {path}, but it "
                         f"holds a {dataset!r} store; {how}")
    return path
