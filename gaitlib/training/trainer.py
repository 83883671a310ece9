"""The iteration-based trainer (papers count iterations, not epochs).

One function, :func:`train`, runs a :class:`TrainConfig` in a run directory: single process or
one rank of a torchrun DDP job (the same code; see :mod:`gaitlib.training.distributed`). It seeds
everything, composes the losses from the config (models never know their losses), checkpoints
atomically every ``checkpoint_every`` iterations, resumes an interrupted run bit-identically on
CPU, and ends with an evaluation under the dataset's protocol.

Distributed losses. Each rank holds P/W subjects of the same global P x K batch. A batch-all
triplet loss over a rank's shard alone would see only the triplets inside the shard, a different
(and weaker) loss than the paper's. With ``loss.gather`` (default) every rank all-gathers the
embeddings with ``torch.distributed.nn.functional.all_gather`` (differentiable) and computes the
triplet loss over the whole global batch. The backward pass of that gather hands each rank the
sum over ranks of the gradient for its own samples, i.e. W times the global loss's gradient;
DDP then averages over the W ranks, so every rank applies exactly the single-process gradient of
the global batch. The cross-entropy is a mean over each rank's samples and DDP's average makes it
the global mean. With ``sync_bn`` (default) every BatchNorm module normalises with the global
batch's statistics (:func:`~gaitlib.training.distributed.synchronise_batchnorm`), so a DDP step
equals the single-process step on the same global batch. Random draws inside the model
(dropout) come from a stream reseeded at every step from (seed, iteration, rank)
(:func:`~gaitlib.training.distributed.step_seed`): ranks draw different masks, and a run
resumes to the same result at any world size. Checkpoints are written every
``checkpoint_every`` iterations and, on the first log step after ``checkpoint_minutes`` have
passed since the last one, by time.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gaitlib.data import splits
from gaitlib.data.sampling import DeviceBatches, FrameSampling, to_model_input, train_loader
from gaitlib.data.store import Store
from gaitlib.errors import GaitlibError
from gaitlib.losses import batch_all_triplet, part_accuracy, part_cross_entropy
from gaitlib.training import checkpoint as ckpt
from gaitlib.training import distributed, precision, rundir
from gaitlib.training.checks import check_against_store
from gaitlib.training.config import LossConfig, TrainConfig, validate
from gaitlib.training.distributed import DistInfo
from gaitlib.training.progress import Progress


class NonFiniteLossError(GaitlibError, FloatingPointError):
    """The training loss became NaN or infinite: the run diverged and is stopped unpublished."""


@dataclass
class RunResult:
    run_dir: Path
    iteration: int
    finished: bool
    evaluation: object | None = None  # gaitlib.evaluation.EvaluationResult on the main rank


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_subjects(config: TrainConfig, store: Store) -> tuple[list[str], list[str]]:
    """A run's training and test subjects on ``store``, as the config's data section and test
    scale name them (:func:`gaitlib.data.splits.select_subjects`)."""
    return splits.select_subjects(store, config.data.split, config.data.train_subjects,
                                   config.data.test_subjects, config.eval.max_subjects)


def open_store(config: TrainConfig) -> Store:
    """The run's store, with the checks of the config that need it (the input resolution)."""
    store = Store(config.data.store)
    check_against_store(config, store.meta["frame_shape"][0])
    return store


def build_model(config: TrainConfig, num_classes: int) -> nn.Module:
    from gaitlib.models import build, options

    opts = dict(config.model.options)
    if "num_classes" in options(config.model.name) and "num_classes" not in opts:
        opts["num_classes"] = num_classes
    model = build(config.model.name, **opts)
    if config.recompute and hasattr(model, "recompute"):  # a memory switch, not a result
        model.recompute = True
    return model


def prepare_model(config: TrainConfig, num_classes: int, device) -> nn.Module:
    """The run's network as it trains and is scored: built from the config, on ``device``, in
    the config's memory layout (channels-last where the profile chose it)."""
    model = build_model(config, num_classes).to(device)
    if config.channels_last:
        precision.to_channels_last(model)
    return model


@dataclass
class TrainedModel:
    """A run's network with its weights from one checkpoint (in training mode: callers pick)."""

    model: nn.Module
    config: TrainConfig
    iteration: int
    checkpoint: Path


def load_trained_model(run_dir: str | Path, device="cpu",
                       checkpoint: str | Path | None = None) -> TrainedModel:
    """A run directory's network: its config, as many classes as its store's training subjects,
    :func:`prepare_model`'s device and layout, and the weights of ``checkpoint`` (default: the
    latest) loaded ``weights_only``.  The one way training, evaluation, the run cache and the dry
    run load a trained model."""
    run_dir = Path(run_dir)
    config = rundir.load_config(run_dir)
    path = Path(checkpoint) if checkpoint is not None else \
        ckpt.latest_checkpoint(run_dir / rundir.CHECKPOINTS)
    if path is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint")
    train_subjects, _ = resolve_subjects(config, open_store(config))
    model = prepare_model(config, len(train_subjects), device)
    state = ckpt.load_checkpoint(path, device)
    ckpt.load_model_state(model, state, config, path)
    return TrainedModel(model, config, int(state["iteration"]), path)


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = config.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum,
                               weight_decay=o.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)


class LossComposer:
    """Weighted sum of the configured losses on a model's output (see the module note on DDP).

    The logged quantities come back as detached tensors, not floats: reading a float forces the
    host to wait for the device, which the trainer does only on log steps (:func:`log_values`).
    """

    def __init__(self, config: LossConfig, info: DistInfo):
        self.config, self.info = config, info

    def __call__(self, out: dict, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        total = torch.zeros((), device=labels.device)
        logs: dict[str, torch.Tensor] = {}
        if c.triplet_weight > 0:
            emb, lab = out["embedding"], labels
            if self.info.enabled and c.gather:
                emb = distributed.gather_with_grad(emb, self.info)
                lab = distributed.gather_plain(labels, self.info)
            tri = batch_all_triplet(emb, lab, c.margin, c.triplet_self_pairs)
            total = total + c.triplet_weight * tri.loss
            logs.update(triplet=tri.loss.detach(), nonzero=tri.nonzero_fraction.detach(),
                        dist=tri.mean_dist.detach())
        if c.ce_weight > 0:
            if "logits" not in out:
                raise ValueError("loss.ce_weight > 0 but the model outputs no 'logits'; "
                                 "set loss.ce_weight=0")
            ce = part_cross_entropy(out["logits"], labels, c.label_smoothing, c.ce_scale)
            total = total + c.ce_weight * ce
            logs.update(ce=ce.detach(), acc=part_accuracy(out["logits"].detach(), labels))
        logs["loss"] = total.detach()
        return total, logs


def log_values(logs: dict[str, torch.Tensor]) -> dict[str, float]:
    """The composer's logged tensors as floats, with one host-device synchronisation."""
    names = list(logs)
    values = torch.stack([logs[n].float().reshape(()) for n in names]).tolist()
    return dict(zip(names, values, strict=True))


def _sampling(config: TrainConfig) -> FrameSampling:
    s = config.sampling
    window = s.window if s.mode == "ordered_window" else (s.frames, s.frames)
    return FrameSampling(s.mode, s.frames, tuple(window), s.padding, s.replace)


def wrap_model(model: nn.Module, config: TrainConfig, info: DistInfo) -> nn.Module:
    """The model as one rank of a DDP job trains it (``model`` itself in one process): its
    BatchNorms synchronised (``sync_bn``; converted in place, so ``model`` saves the same state
    dict), wrapped in DistributedDataParallel."""
    if not info.enabled:
        return model
    if config.sync_bn:
        model = distributed.synchronise_batchnorm(model, info.device)
    ids = [info.device.index] if info.device.type == "cuda" else None
    # find_unused_parameters: a model may output what no configured loss uses (GaitGL's logits
    # with loss.ce_weight=0); the extra graph traversal costs little next to the convolutions.
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def _main_rank_first(info: DistInfo, fn):
    """Run ``fn`` on the main rank; other ranks wait and fail too if it failed."""
    result, error = None, None
    if info.is_main:
        try:
            result = fn()
        except Exception as err:  # re-raised below, after telling the other ranks
            error = err
    ok = distributed.broadcast_flag(error is None, info)
    if error is not None:
        raise error
    if not ok:
        raise RuntimeError("the main rank failed to prepare the run directory (see its error)")
    return result


def train(config: TrainConfig, run_dir: str | Path, *, force: bool = False,
          stop_after: int | None = None, progress: bool = True,
          info: DistInfo | None = None, wait: bool = False) -> RunResult:
    """Train ``config`` in ``run_dir`` (resuming an interrupted run there) and evaluate.

    ``stop_after``: return after that many iterations (counted from 0, not from the resume
    point) as if interrupted; used by tests and for staged runs. ``info``: the distributed
    context (default: from the environment torchrun sets). The main rank holds the run
    directory's lock throughout; another process holding it raises
    :class:`~gaitlib.training.rundir.RunLockedError`, or is waited for with ``wait``.
    A loss that turns non-finite raises :class:`NonFiniteLossError` before the step is saved.
    """
    with contextlib.ExitStack() as lock:
        return _train(config, run_dir, force=force, stop_after=stop_after, progress=progress,
                      info=info, lock=lock, wait=wait)


@dataclass
class _Session:
    """What one training session (a fresh run, or the resumption of an interrupted one) holds
    between its steps."""

    config: TrainConfig
    run_dir: Path
    info: DistInfo
    store: Store
    train_subjects: list[str]
    test_subjects: list[str]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    resumes: bool = False  # the run directory holds an interrupted run of this config
    state: dict | None = None  # its latest checkpoint (None: it had none yet)
    start: int = 0  # the iteration the session starts after


def _train(config: TrainConfig, run_dir: str | Path, *, force: bool, stop_after: int | None,
           progress: bool, info: DistInfo | None, lock: contextlib.ExitStack,
           wait: bool) -> RunResult:
    session = _set_up(config, Path(run_dir), force=force, info=info, lock=lock, wait=wait)
    if session.resumes:
        _resume(session)
    _log_environment(session)
    iteration, began = _loop(session, stop_after, progress)
    if iteration != config.schedule.iterations:
        return RunResult(session.run_dir, iteration, False)
    return _finish(session, began)


def _set_up(config: TrainConfig, run_dir: Path, *, force: bool, info: DistInfo | None,
            lock: contextlib.ExitStack, wait: bool) -> _Session:
    """Check the config and its store, claim the run directory (its lock, and whether an
    interrupted run is there to resume), and build the seeded model, optimizer and schedule."""
    validate(config)
    info = info or distributed.init(config.device)
    store = open_store(config)  # the checks that need the store, before the run directory
    train_subjects, test_subjects = resolve_subjects(config, store)

    def prepare() -> bool:
        lock.enter_context(rundir.run_lock(run_dir, wait))
        return rundir.prepare(run_dir, config, force)

    resume = bool(distributed.broadcast_flag(bool(_main_rank_first(info, prepare)), info))
    distributed.barrier(info)

    seed_everything(config.seed)
    model = prepare_model(config, len(train_subjects), info.device)
    optimizer = build_optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, config.schedule.milestones,
                                                     config.schedule.gamma)
    latest = ckpt.latest_checkpoint(run_dir / rundir.CHECKPOINTS) if resume else None
    state = ckpt.load_checkpoint(latest) if latest is not None else None
    if state is not None:
        ckpt.load_model_state(model, state, config, latest)
    return _Session(config, run_dir, info, store, list(train_subjects), list(test_subjects), model,
                    optimizer, scheduler, resumes=resume, state=state)


def _resume(session: _Session) -> None:
    """Continue an interrupted run from its latest checkpoint (the optimizer and schedule where
    they were), with its logs cut back to it: what it logged after it is redone."""
    state = session.state
    if state is not None:
        session.optimizer.load_state_dict(state["optimizer"])
        session.scheduler.load_state_dict(state["scheduler"])
        session.start = int(state["iteration"])
    if session.info.is_main:
        rundir.truncate_metrics(session.run_dir, session.start)
        rundir.truncate_metrics(session.run_dir, session.start, rundir.CURVE)


def _log_environment(session: _Session) -> None:
    if session.info.is_main:
        rundir.write_environment(session.run_dir, session.info.world_size,
                                 session.start if session.start else None, session.info.device)


def _loop(session: _Session, stop_after: int | None, progress: bool) -> tuple[int, float]:
    """Train from ``session.start`` to the end of the schedule (or ``stop_after``), logging,
    scoring the learning-curve points and checkpointing; returns the last iteration done and
    when the loop began."""
    config, info, run_dir, model = session.config, session.info, session.run_dir, session.model
    optimizer, scheduler, state, start = session.optimizer, session.scheduler, session.state, \
        session.start
    total = config.schedule.iterations
    net = wrap_model(model, config, info)
    if config.compile:
        net = torch.compile(net, mode=config.compile)
    losses = LossComposer(config.loss, info)
    autocast = precision.autocast(info.device, config.precision)
    scaler = precision.grad_scaler(info.device, config.precision)
    if state is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    sampler_args = dict(seed=config.seed, start_iteration=start, flip=config.sampling.flip,
                        rank=info.rank, world_size=info.world_size,
                        k_replace=config.sampling.k_replace, min_frames=config.sampling.min_frames)
    if config.data.on_device:
        loader = DeviceBatches(session.store, session.train_subjects, config.sampling.p,
                               config.sampling.k, _sampling(config), device=info.device,
                               **sampler_args)
    else:
        loader = train_loader(session.store, session.train_subjects, config.sampling.p,
                              config.sampling.k, _sampling(config), workers=config.workers,
                              **sampler_args)
    batches = iter(loader)  # draws the DataLoader's base seed: before the RNG restore
    if state is not None:
        ckpt.restore_rng(state["rng"])
    end = total if stop_after is None else min(total, max(stop_after, start))
    bar = Progress(f"train {config.model.name}", total, start, enabled=progress and info.is_main)
    ckpt_dir = run_dir / rundir.CHECKPOINTS
    net.train()
    began = tick = saved_at = time.perf_counter()
    tick_it = start
    iteration = start
    curve_points = set(config.eval.curve) if config.eval.enabled else set()
    try:
        for iteration in range(start + 1, end + 1):
            batch = next(batches)
            torch.manual_seed(distributed.step_seed(config.seed, iteration, info.rank))
            sils = to_model_input(batch["frames"], info.device, config.data.resolution)
            labels = batch["labels"].to(info.device, non_blocking=True)
            with autocast:
                out = net(sils)
            loss, logs = losses(out, labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            bar.update(1)
            # Reading the loss waits for the device: only on log and checkpoint steps (a
            # non-finite loss stops the run there, before a checkpoint could keep it).
            log_step = iteration % config.log_every == 0 or iteration == end
            save_step = iteration % config.checkpoint_every == 0 or iteration == total
            if log_step and not save_step and config.checkpoint_minutes > 0:  # by time
                due = time.perf_counter() - saved_at >= 60 * config.checkpoint_minutes
                save_step = distributed.broadcast_flag(due and info.is_main, info)
            if log_step or save_step:
                values = log_values(logs)
                if not np.isfinite(values["loss"]):
                    terms = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
                    raise NonFiniteLossError(
                        f"{run_dir}: the loss is {values['loss']} at iteration {iteration} "
                        f"({terms}): training diverged and stopped; nothing is evaluated or "
                        f"published. Try a lower optimizer.lr (now {lr:g}) and --force to "
                        f"restart the run")
            if log_step:
                now = time.perf_counter()
                speed = (iteration - tick_it) / max(now - tick, 1e-9)
                tick, tick_it = now, iteration
                means = {k: round(distributed.reduce_mean(v, info), 6) for k, v in values.items()}
                record = {"iteration": iteration, "lr": lr, "it_per_s": round(speed, 4), **means}
                bar.log(iteration, speed, record["loss"], lr)
                if info.is_main:
                    rundir.append_metrics(run_dir, record)
            if iteration in curve_points:  # before the checkpoint: a resume redoes it
                _score_curve_point(config, model, session.store, session.test_subjects, info,
                                   run_dir, iteration)
            if save_step:
                _save(ckpt_dir, iteration, model, optimizer, scheduler, config, info, scaler)
                saved_at = time.perf_counter()
    finally:
        bar.close()
        del batches, loader  # stop the persistent workers now, not at garbage collection
    return iteration, began


def _finish(session: _Session, began: float) -> RunResult:
    """Score the finished run's test set and write its results (the main rank)."""
    config, info = session.config, session.info
    trained = time.perf_counter()
    result = _final_evaluation(config, session.model, session.store, session.test_subjects, info,
                               session.run_dir) if config.eval.enabled else None
    if info.is_main:
        summary = {"iterations": config.schedule.iterations, "finished": True,
                   "mean": None if result is None else result.table["Mean"].round(4).to_dict(),
                   # this session's share (a resumed run counts from its resume point)
                   "train_seconds": round(trained - began, 1),
                   "eval_seconds": round(time.perf_counter() - trained, 1)}
        rundir.write_json(session.run_dir / rundir.RESULTS, summary)
    distributed.barrier(info)
    return RunResult(session.run_dir, config.schedule.iterations, True, result)


def _save(ckpt_dir: Path, iteration: int, model, optimizer, scheduler, config, info,
          scaler=None) -> None:
    if info.is_main:
        state = {"iteration": iteration, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "rng": ckpt.capture_rng(), "config": config.to_dict()}
        if scaler is not None and scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        ckpt.save_checkpoint(ckpt.checkpoint_path(ckpt_dir, iteration), state)
        ckpt.prune(ckpt_dir, config.keep_checkpoints)
    distributed.barrier(info)


def _score_curve_point(config, model, store, test_subjects, info, run_dir, iteration) -> None:
    """Score the test set at ``iteration`` as the final evaluation would, append rank-1 (Mean per
    condition) to the run's curve.jsonl, and leave the training where it was (RNG states
    restored, the model back in training mode)."""
    rng = ckpt.capture_rng()
    began = time.perf_counter()
    result = evaluate_model(config, model, store, test_subjects, info)
    ckpt.restore_rng(rng)
    if info.is_main:
        point = {"iteration": iteration, "seconds": round(time.perf_counter() - began, 1),
                 "rank1": result.table["Mean"].round(4).to_dict()}
        rundir.append_metrics(run_dir, point, rundir.CURVE)


def _final_evaluation(config, model, store, test_subjects, info, run_dir):
    result = evaluate_model(config, model, store, test_subjects, info)
    if info.is_main and result is not None:
        rundir.write_evaluation(run_dir, result)
    return result


def evaluate_model(config: TrainConfig, model: nn.Module, store: Store, test_subjects: list[str],
                   info: DistInfo, bootstrap: int | None = None, metric: str | None = None,
                   progress: bool = False):
    """Extract the test features (sharded over ranks) and score them on the main rank."""
    from gaitlib.evaluation import evaluate, protocol_for
    from gaitlib.evaluation.extract import extract_features

    items = store.select(subjects=test_subjects)
    if len(items) == 0:
        raise ValueError(f"{store.path}: no test sequences to evaluate")
    feats = extract_features(model, store, items, info.device, workers=config.workers,
                             sequences_per_batch=config.eval.sequences_per_batch,
                             max_frames=config.eval.max_frames, precision=config.eval.precision,
                             dist_info=info,
                             progress=progress, height=config.data.resolution)
    if not info.is_main:
        return None
    return evaluate(feats.embeddings, feats.subjects, feats.conditions, feats.views,
                    protocol_for(store.dataset), metric=metric or config.eval.metric,
                    bootstrap=config.eval.bootstrap if bootstrap is None else bootstrap,
                    seed=config.seed)


def evaluate_run(run_dir: str | Path, *, bootstrap: int | None = None, metric: str | None = None,
                 write: bool = False, progress: bool = True, info: DistInfo | None = None,
                 wait: bool = False):
    """Re-evaluate the final checkpoint of a run directory (``gaitlib eval``).

    ``write`` rewrites eval.csv/eval.json: only for a finished run (an unfinished one raises
    :class:`~gaitlib.training.rundir.UnfinishedRunError`), under the run directory's lock
    (``wait``: wait for another holder instead of raising). Scoring an unfinished run without
    ``write`` warns that the checkpoint is not the final model.
    """
    import warnings

    run_dir = Path(run_dir)
    config = rundir.load_config(run_dir)
    info = info or distributed.init(config.device)
    with (rundir.run_lock(run_dir, wait) if write and info.is_main else contextlib.nullcontext()):
        found = ckpt.list_checkpoints(run_dir / rundir.CHECKPOINTS)
        if not rundir.is_finished(run_dir):
            what = (f"{run_dir} is an unfinished run (" + (f"checkpoint at iteration "
                    f"{found[-1][0]} of {config.schedule.iterations}" if found else "no checkpoint")
                    + "; interrupted, diverged or still training)")
            if write:
                raise rundir.UnfinishedRunError(f"{what}: its evaluation is not written; finish "
                                                "it with `gaitlib train` first")
            if found:
                warnings.warn(f"{what}: scoring that checkpoint, not a final model",
                              stacklevel=2)
        if not found:
            raise FileNotFoundError(f"{run_dir} has no checkpoint to evaluate")
        trained = load_trained_model(run_dir, info.device, found[-1][1])
        store = open_store(config)
        _, test_subjects = resolve_subjects(config, store)
        result = evaluate_model(config, trained.model, store, test_subjects, info, bootstrap,
                                metric, progress)
        if write and info.is_main:
            rundir.write_evaluation(run_dir, result)
    return result, trained.iteration
