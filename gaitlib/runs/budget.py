"""The plan of ``gaitlib reproduce``: for every run its GPUs, memory per GPU, projected hours and
its place in the schedule, checked before anything trains.

**Memory.**  A run's peak on one GPU is the dry run's measurement (``book/results/
paper-dry-run.csv``: ``torch.cuda.max_memory_allocated``) when the run is there at the
precision it will train in; otherwise the fake-tensor estimate of :mod:`gaitlib.runs.memory`
(calibrated against the measured rows), or a measured peak scaled by the model's bf16/fp32
peak ratio measured by ``bench/device_check.py`` (``book/results/device_check.json``) when only
the precision differs.  On ``n`` GPUs (DDP, P/n subjects per GPU) a GPU holds the
replicated part (parameters, gradients, optimizer state, and under DDP its gradient buckets)
and 1/n of the rest (the activations), plus :data:`CUDA_OVERHEAD_GIB` for the CUDA context,
cuDNN workspaces and the caching allocator's slack.

**World size.**  The smallest number of GPUs that divides P (the subjects of a batch, split
across ranks) and fits the card; a run is widened further only where that shortens the
wall-clock total.  A run that fits no allowed world size is refused before anything trains
(:class:`PlanError` names it, its need and what would make it fit).

**Hours.**  The dry run's projection (iterations x measured step time, on its device) at the
run's precision (the recipe's; another precision scales it by that model's bf16/fp32 step-time
ratio from the device check; fp16 is taken as bf16); a run the dry run did not measure takes a
measured run of the same model scaled by the FLOPs and iterations of the two (estimated); on
``n`` GPUs, the hours / (``n`` x :data:`SCALING`).

**Schedule.**  Longest projected first; a run starts as soon as its GPUs are free and not
before the run ahead of it (the pool of :mod:`gaitlib.runs.pretrain` runs them so), and the
plan replays that order to place every run.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from gaitlib.runs.cache import RunSpec, code_version, resolve
from gaitlib.runs.plan import PlannedRun, study_plan

CUDA_OVERHEAD_GIB = 1.5
SCALING = 0.9  # assumed efficiency of a wide run's GPUs (DDP communication), not yet measured
DRY_RUN_CSV = Path(__file__).resolve().parents[2] / "book" / "results" / "paper-dry-run.csv"
DEVICE_CHECK = DRY_RUN_CSV.with_name("device_check.json")
ESTIMATES_FILE = ".plan-estimates.json"  # in the runs folder: estimates, per code version
CSV_COLUMNS = ("model", "dataset", "options", "gpus", "gib_per_gpu", "hours", "start_hour",
               "end_hour", "precision", "memory", "artifacts")


class PlanError(ValueError):
    """Some runs fit no allowed world size on the cards at hand."""


@dataclass(frozen=True)
class Measured:
    """A run as the dry run measured it (one GPU, the recipe's precision then)."""

    peak_gib: float
    hours: float
    iterations: int
    precision: str
    device: str


def _options(text: str) -> dict:
    out = {}
    for part in filter(None, (p.strip() for p in str(text or "").split(";"))):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def _key(spec: RunSpec) -> tuple:
    return spec.model, spec.shape, spec.options


def measured_rows(path: str | os.PathLike = DRY_RUN_CSV) -> dict[RunSpec, Measured]:
    """The dry run's rows that finished ('ok'), as specs (paper profile, seed 0) -> measurement;
    empty when there is no such file."""
    path = Path(path)
    if not path.is_file():
        return {}
    out = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("status", "ok") != "ok":
                continue
            spec = RunSpec.of(row["model"], data=row["dataset"], profile="paper",
                              shape=row["dataset"], **_options(row["options"]))
            precision = row.get("precision") or resolve(spec).precision
            out[spec] = Measured(float(row["peak_memory_mb"]) / 1024,
                                 float(row["projected_hours"]), int(row["iterations"]), precision,
                                 row.get("device", ""))
    return out


@cache
def _half_precision(path: Path = DEVICE_CHECK) -> dict[str, tuple[float, float]]:
    """Per model, from the device check's step section: (peak memory in bf16 / in fp32, step
    time in fp32 / in bf16), measured on one GPU at the model's paper batch."""
    if not path.is_file():
        return {}
    steps = {(row["model"], row["variant"]): row for row in json.loads(path.read_text())
             .get("sections", {}).get("steps", {}).get("rows", []) if "step_ms" in row}
    return {m: (steps[m, "bf16"]["peak_gib"] / steps[m, "fp32"]["peak_gib"],
                steps[m, "fp32"]["step_ms"] / steps[m, "bf16"]["step_ms"])
            for m, v in steps if v == "fp32" and (m, "bf16") in steps}


def precision_factors(model: str, source: str, target: str) -> tuple[float, float]:
    """(memory, speed) of ``model`` in ``target`` precision relative to ``source``: 1 within
    fp32 or within the half precisions (fp16 taken as bf16), else the device check's measured
    ratios (NaN when it has none for the model)."""
    half = ("bf16", "fp16")
    if (source in half) == (target in half):
        return 1.0, 1.0
    memory, speed = _half_precision().get(model, (math.nan, math.nan))
    return (memory, speed) if target in half else (1 / memory, 1 / speed)


@dataclass
class RunNeed:
    """One run's demands: peak GiB on one GPU (tensors only), the replicated part of it, the
    parameters' GiB, projected hours on one GPU, and where each number comes from."""

    spec: RunSpec
    artifacts: tuple[str, ...]
    precision: str
    p: int
    peak_gib: float
    replicated_gib: float
    parameter_gib: float
    hours: float
    memory_from: str
    hours_from: str
    cost: float = math.nan  # what orders the runs: hours, or TFLOP x iterations when not timed
    recompute: bool = False  # trains with activation checkpointing (the model's memory switch)

    def gib_per_gpu(self, gpus: int) -> float:
        ddp = self.parameter_gib if gpus > 1 else 0.0
        return (self.replicated_gib + max(self.peak_gib - self.replicated_gib, 0.0) / gpus
                + ddp + CUDA_OVERHEAD_GIB)

    def hours_on(self, gpus: int) -> float:
        return self.hours if gpus == 1 else self.hours / (gpus * SCALING)

    def widths(self, most: int) -> list[int]:
        """The world sizes this run may train at: divisors of P, at most ``most``."""
        return [n for n in range(1, min(most, self.p) + 1) if self.p % n == 0]

    def name(self) -> str:
        options = f" {self.spec.options_text()}" if self.spec.options else ""
        seed = f" seed {self.spec.seed}" if self.spec.seed else ""
        return f"{self.spec.model} {self.spec.shape}{options}{seed}"


class Estimates:
    """Fake-tensor estimates (:func:`gaitlib.runs.memory.estimate`), computed once per run and
    precision and kept in ``cache_file`` (JSON, keyed by the code version too) when given."""

    def __init__(self, cache_file: str | os.PathLike | None = None):
        self.path = Path(cache_file) if cache_file else None
        self.known: dict[str, dict] = {}
        if self.path is not None and self.path.is_file():
            try:
                self.known = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                self.known = {}

    def __call__(self, spec: RunSpec, precision: str, recompute: bool = False) -> dict:
        from gaitlib.runs import memory

        spec = replace(spec, data=spec.shape, seed=0, precision="")
        key = json.dumps([spec.to_dict(), precision, code_version(), _estimator_version()]
                         + (["recompute"] if recompute else []), sort_keys=True)
        if key not in self.known:
            config = resolve(spec)
            config.precision = precision
            config.recompute = recompute
            est = memory.estimate(config)
            self.known[key] = {"raw_peak_gib": est.peak_bytes / memory.GIB,
                               "tflop": est.flops / 1e12}
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
                tmp.write_text(json.dumps(self.known, indent=1))
                os.replace(tmp, self.path)
        known = self.known[key]
        return {"peak_gib": memory.CALIBRATION * known["raw_peak_gib"], "tflop": known["tflop"]}


@cache
def _estimator_version() -> str:
    """A hash of the estimator's source: a cached estimate made by another version is redone."""
    import hashlib

    from gaitlib.runs import memory

    return hashlib.sha256(Path(memory.__file__).read_bytes()).hexdigest()[:12]


def _sibling(spec: RunSpec, measured: dict[RunSpec, Measured]) -> RunSpec | None:
    """A measured run of the same model to scale hours from: same setting first, then fewest
    options."""
    same = [s for s in measured if s.model == spec.model]
    same.sort(key=lambda s: (s.shape != spec.shape, len(s.options)))
    return same[0] if same else None


def run_need(planned: PlannedRun, measured: dict[RunSpec, Measured],
             estimates: Estimates) -> RunNeed:
    """Memory and hours of one planned run (see the module note)."""
    spec = planned.spec
    config = resolve(spec)
    precision = config.precision
    if spec.profile != "paper":  # the dry run measured the paper runs: order by work alone
        est = estimates(spec, precision)
        fixed = _replicated(config)
        return RunNeed(spec, planned.artifacts, precision, config.sampling.p, est["peak_gib"],
                       fixed[0], fixed[1], math.nan, "estimated", "not measured",
                       est["tflop"] * config.schedule.iterations)
    found = measured.get(next((s for s in measured if _key(s) == _key(spec)), None))
    if found is not None and found.precision == precision:
        peak, memory_from = found.peak_gib, "measured"
    elif found is not None:
        memory = precision_factors(spec.model, found.precision, precision)[0]
        if math.isnan(memory):
            memory = estimates(spec, precision)["peak_gib"] / \
                estimates(spec, found.precision)["peak_gib"]
        peak, memory_from = found.peak_gib * memory, f"measured in {found.precision}, scaled"
    else:
        peak, memory_from = estimates(spec, precision)["peak_gib"], "estimated"
    fixed = _replicated(config)
    if found is not None:
        hours = found.hours / precision_factors(spec.model, found.precision, precision)[1]
        hours_from = "dry run" if found.precision == precision else \
            f"dry run in {found.precision}, scaled"
    else:
        sibling = _sibling(spec, measured)
        if sibling is None:
            hours, hours_from = math.nan, "not measured"
        else:
            ref = measured[sibling]
            ratio = (estimates(spec, precision)["tflop"] * config.schedule.iterations) / \
                (estimates(sibling, ref.precision)["tflop"] * ref.iterations)
            hours = ref.hours * ratio / precision_factors(spec.model, ref.precision,
                                                          precision)[1]
            hours_from = "estimated from FLOPs"
    return RunNeed(spec, planned.artifacts, precision, config.sampling.p, peak, fixed[0],
                   fixed[1], hours, memory_from, hours_from, hours)


def _replicated(config) -> tuple[float, float]:
    """(parameters + gradients + optimizer state, parameters) in GiB, from a meta-device build."""
    model = {"name": config.model.name, "options": config.model.options}
    return _replicated_of(json.dumps(model, sort_keys=True, default=list), config.optimizer.name)


@cache
def _replicated_of(model_json: str, optimizer: str) -> tuple[float, float]:
    import torch

    from gaitlib.models import build
    from gaitlib.models import options as model_options
    from gaitlib.runs.memory import GIB, paper_classes
    from gaitlib.training.config import TrainConfig

    model = json.loads(model_json)
    opts = dict(model["options"])
    config = TrainConfig()
    config.model.options = opts
    if "num_classes" in model_options(model["name"]) and "num_classes" not in opts:
        opts["num_classes"] = paper_classes(config)
    with torch.device("meta"):
        net = build(model["name"], **opts)
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    states = 2 if optimizer == "adam" else 1
    return (2 + states) * params / GIB, params / GIB


@dataclass
class Placed:
    """A run in the schedule."""

    need: RunNeed
    gpus: int
    start: float = 0.0
    end: float = 0.0

    @property
    def gib_per_gpu(self) -> float:
        return self.need.gib_per_gpu(self.gpus)

    @property
    def hours(self) -> float:
        return self.need.hours_on(self.gpus)


def simulate(placed: Sequence[Placed], devices: int,
             busy: Sequence[float] = ()) -> float:
    """Give every run its start and end hour as the pool runs them: in order, each as soon as
    its GPUs are free and not before the run ahead of it; ``busy``: hours until which devices
    are taken already.  Returns the wall-clock total (unknown hours count as 0)."""
    free = sorted([*busy, *[0.0] * (devices - len(busy))])
    ahead = 0.0
    for run in placed:
        free.sort()
        start = max(free[run.gpus - 1], ahead)
        hours = run.hours if math.isfinite(run.hours) else 0.0
        run.start, run.end = start, start + hours
        free[: run.gpus] = [run.end] * run.gpus
        ahead = start
    return max([0.0, *free])


def longest_first(placed: list[Placed]) -> list[Placed]:
    """Longest projected first (by work where hours are not projected; unknown first: the safe
    side)."""
    def key(run: Placed) -> float:
        cost = run.hours if math.isfinite(run.hours) else run.need.cost
        return -cost if math.isfinite(cost) else -math.inf

    return sorted(placed, key=key)


@dataclass
class Plan:
    """The schedule of a set of runs on ``devices`` GPUs of ``gpu_gib`` (None: CPU workers)."""

    runs: list[Placed]
    devices: int
    gpu_gib: float | None
    precision: str = "recipe"
    notes: list[str] = field(default_factory=list)

    @property
    def total_hours(self) -> float:
        return max([0.0, *(r.end for r in self.runs)])

    @property
    def gpu_hours(self) -> float:
        return sum(r.hours * r.gpus for r in self.runs if math.isfinite(r.hours))


def make_plan(planned: Sequence[PlannedRun], devices: int, gpu_gib: float | None,
              dry_run_csv: str | os.PathLike = DRY_RUN_CSV, precision: str = "recipe",
              estimates: Estimates | None = None,
              memory_scale: dict[str, float] | None = None) -> Plan:
    """Place ``planned`` on ``devices`` GPUs of ``gpu_gib`` GiB (``None``: CPU workers, one run
    each, memory not checked); :class:`PlanError` when a run fits no allowed world size.
    ``memory_scale``: model -> factor on its runs' peaks, to plan for a leaner version of a
    model before it is measured (``bench/plan_totals.py``)."""
    estimates = estimates or Estimates()
    measured = measured_rows(dry_run_csv)
    needs = [run_need(p, measured, estimates) for p in planned]
    for need in needs:
        factor = (memory_scale or {}).get(need.spec.model)
        if factor is not None:
            need.peak_gib *= factor
            need.memory_from += f" x {factor:g}"
    placed, refused = [], []
    for need in needs:
        if gpu_gib is None:
            placed.append(Placed(need, 1))
            continue
        fitting = [n for n in need.widths(devices) if need.gib_per_gpu(n) <= gpu_gib]
        if not fitting and offers_recompute(need.spec.model):
            need = with_recompute(need, estimates, (memory_scale or {}).get(need.spec.model))
            fitting = [n for n in need.widths(devices) if need.gib_per_gpu(n) <= gpu_gib]
        if fitting:
            placed.append(Placed(need, fitting[0]))
        else:
            refused.append(need)
    if refused:
        raise PlanError(_refusal(refused, devices, gpu_gib, estimates))
    order = longest_first(placed)
    total = simulate(order, devices)
    if gpu_gib is not None:
        total = _widen(order, devices, gpu_gib, total)
    plan = Plan(order, devices, gpu_gib, precision)
    devices_seen = sorted({m.device for m in measured.values() if m.device})
    if any(math.isfinite(r.hours) for r in order):
        plan.notes.append(f"hours: the dry run's projections on "
                          f"{', '.join(devices_seen) or 'its GPU'} (training only); wide runs "
                          f"assumed {SCALING:.0%} efficient")
    else:
        plan.notes.append("no projected hours (the dry run times the paper profile): runs go "
                          "in order of estimated work, FLOPs x iterations")
    if gpu_gib is not None:
        from gaitlib.runs.memory import CALIBRATION_NOTE

        plan.notes.append(f"memory: peak per GPU + {CUDA_OVERHEAD_GIB} GiB (CUDA context, "
                          f"allocator); estimated rows: {CALIBRATION_NOTE}")
    return plan


def offers_recompute(model: str) -> bool:
    """Whether ``model`` has the activation-checkpointing switch (a ``recompute`` option)."""
    from gaitlib.models import options

    return "recompute" in options(model)


def with_recompute(need: RunNeed, estimates: Estimates, scale: float | None = None) -> RunNeed:
    """``need`` trained with the model's ``recompute`` switch on: the peak is the fake-tensor
    estimate with recomputation (a measured row holds the run without it); the hours grow by the
    estimated FLOPs of the recomputation."""
    plain = estimates(need.spec, need.precision)
    lean = estimates(need.spec, need.precision, recompute=True)
    peak = lean["peak_gib"] * (scale if scale is not None else 1.0)
    slower = lean["tflop"] / plain["tflop"] if plain["tflop"] else 1.0
    return replace(need, peak_gib=peak, hours=need.hours * slower, cost=need.cost * slower,
                   memory_from=f"estimated with recompute (x{slower:.2f} FLOPs)", recompute=True)


def _widen(order: list[Placed], devices: int, gpu_gib: float, total: float) -> float:
    """Give runs more GPUs where that shortens the wall-clock total (longest runs first)."""
    improved = True
    while improved:
        improved = False
        for run in order:
            wider = [n for n in run.need.widths(devices) if n > run.gpus]
            if not wider or not math.isfinite(run.hours):
                continue
            narrow = run.gpus
            run.gpus = wider[0]
            trial = longest_first(order)
            new_total = simulate(trial, devices)
            if new_total < total - 1e-9:
                order[:] = trial
                total, improved = new_total, True
                break
            run.gpus = narrow
            simulate(order, devices)
    return total


def _refusal(refused: Sequence[RunNeed], devices: int, gpu_gib: float,
             estimates: Estimates) -> str:
    cards = f"{devices} GPU{'s' if devices > 1 else ''} of {gpu_gib:g} GiB"
    lines = [f"{len(refused)} run{'s' if len(refused) > 1 else ''} cannot train on {cards} "
             "(nothing was started):"]
    for need in refused:
        widths = need.widths(devices)
        at = ", ".join(f"{need.gib_per_gpu(n):.1f} GiB on {n}" for n in widths)
        advice = []
        more = [n for n in need.widths(need.p) if n > devices and need.gib_per_gpu(n) <= gpu_gib]
        if more:
            advice.append(f"{more[0]} GPUs of this size")
        if need.precision == "fp32":
            memory = precision_factors(need.spec.model, "fp32", "bf16")[0]
            if math.isnan(memory):
                memory = estimates(need.spec, "bf16")["peak_gib"] / \
                    estimates(need.spec, "fp32")["peak_gib"]
            bf16 = replace(need, peak_gib=need.peak_gib * memory)
            fit = [n for n in need.widths(need.p) if bf16.gib_per_gpu(n) <= gpu_gib]
            if fit:
                advice.append(f"--precision bf16 ({bf16.gib_per_gpu(fit[0]):.1f} GiB on "
                              f"{fit[0]} GPU{'s' if fit[0] > 1 else ''})")
        advice.append(f"cards of >= {math.ceil(need.gib_per_gpu(widths[-1]))} GiB")
        widest = need.widths(need.p)[-1]
        if widest > widths[-1] and not more:
            advice.append(f"{widest} GPUs of >= {math.ceil(need.gib_per_gpu(widest))} GiB")
        lines.append(f"  {need.name()} [{' '.join(need.artifacts)}]: needs {at} GPU(s) "
                     f"(P={need.p} splits over {', '.join(map(str, need.widths(need.p)))}); "
                     f"would fit with: {'; or '.join(advice)}")
    lines.append("leave such artifacts out with --only, or change what the lines above say")
    return "\n".join(lines)


def study_budget(notebooks: Sequence[str] | None, profile: str, data: str, seed: int = 0,
                 extra_seeds: Sequence[int] = (), precision: str = "recipe", devices: int = 1,
                 gpu_gib: float | None = None, runs_dir: str | os.PathLike = "runs",
                 dry_run_csv: str | os.PathLike = DRY_RUN_CSV, leave_out=None) -> Plan:
    """The plan of ``gaitlib reproduce``: every run the selected notebooks need
    (:func:`~gaitlib.runs.plan.study_plan`) but those ``leave_out(spec)`` is true for (finished
    ones), placed on ``devices`` GPUs of ``gpu_gib`` GiB (``None``: CPU workers)."""
    planned = study_plan(notebooks, profile, data, seed, extra_seeds,
                         "" if precision == "recipe" else precision)
    if leave_out is not None:
        planned = [p for p in planned if not leave_out(p.spec)]
    return make_plan(planned, devices, gpu_gib, dry_run_csv, precision,
                     Estimates(Path(runs_dir) / ESTIMATES_FILE))


def _number(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"


def format_plan(plan: Plan) -> str:
    """The plan for the terminal: one line per run in schedule order, then the totals."""
    head = (f"{'model':<8} {'data':<7} {'options':<38} {'gpus':>4} {'GiB/GPU':>7} {'hours':>6} "
            f"{'start':>6} {'end':>6}  memory")
    lines = [head]
    for r in plan.runs:
        gib = _number(r.gib_per_gpu) if plan.gpu_gib is not None else "-"
        seed = f" seed={r.need.spec.seed}" if r.need.spec.seed else ""
        options = (r.need.spec.options_text() + seed).strip(";")[:38]
        timed = math.isfinite(r.hours)
        lines.append(f"{r.need.spec.model:<8} {r.need.spec.shape:<7} {options or '-':<38} "
                     f"{r.gpus:>4} {gib:>7} {_number(r.hours):>6} "
                     f"{_number(r.start if timed else math.nan):>6} "
                     f"{_number(r.end if timed else math.nan):>6}  "
                     f"{r.need.memory_from if plan.gpu_gib is not None else ''}")
    where = (f"{plan.devices} GPU{'s' if plan.devices > 1 else ''} of {plan.gpu_gib:g} GiB"
             if plan.gpu_gib is not None else f"{plan.devices} CPU worker(s)")
    precisions = sorted({r.need.precision for r in plan.runs})
    timed = any(math.isfinite(r.hours) for r in plan.runs)
    lines.append(f"{len(plan.runs)} runs on {where}, precision {plan.precision} "
                 f"({', '.join(precisions) or '-'})" + (
                     f": wall-clock {_number(plan.total_hours)} h, {_number(plan.gpu_hours)} "
                     "GPU-hours" if timed else ""))
    lines += [f"  {note}" for note in plan.notes]
    return "\n".join(lines)


def plan_csv(plan: Plan) -> str:
    """The plan as CSV (columns :data:`CSV_COLUMNS`)."""
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in plan.runs:
        gib = round(r.gib_per_gpu, 2) if plan.gpu_gib is not None else ""
        writer.writerow([r.need.spec.model, r.need.spec.shape, r.need.spec.options_text(),
                         r.gpus, gib, round(r.hours, 3), round(r.start, 3), round(r.end, 3),
                         r.need.precision, r.need.memory_from, " ".join(r.need.artifacts)])
    return out.getvalue()
