"""Per-model training recipes, one per profile.

``paper`` is each paper's recipe, declared row by row with its source in
``recipe_sources.csv`` (GaitSet: its authors' code; GaitPart, GaitGL: OpenGait's CASIA-B
configs; the study's models: their papers, the reference code's differing values as
alternatives). The cheaper
profiles keep a model's design (its modules and depth, frame-sampling mode, losses, optimizer
type) and shrink the scale:

- ``smoke``: seconds; proves the plumbing (tests, CI). Results are meaningless.
- ``cpu``: sized so that all 37 runs of the book's 17 artifacts fit in about 25 minutes on a
  2-core laptop: half input resolution, half channel widths and half as many horizontal strips
  (:func:`cheap_model_options`), (4, 4) batches of 8 frames, 60 iterations, tested on the first
  10 frames of each test sequence: of the first 10 test subjects on the synthetic data, of all
  50 on real CASIA-B (:data:`REAL_DATA_EVAL`).  With so few iterations Adam's learning rate is
  raised 10x (1e-3; an SGD recipe keeps its own).  A fixed frame window (OpenGait's) stays
  fixed at the smaller frame count.  The book states the scale above every page's first table.
- ``cpu-long``: the cpu profile's shapes and test, trained 7-17x longer (:data:`LONG_ITERATIONS`:
  1,000 iterations for CSTL and the baselines, 120 for GaitMM, 200 for 3D Local, the lr drop at
  75%), for the real CASIA-B on a CPU: CSTL's and GaitMM's tables in about 1.5 hours on 2 cores,
  3D Local's four tables in about one more; a main-table run also scores the test set at
  25/50/75% of its iterations (a learning curve).
- ``paper``: the published recipe, for a GPU box and the real data.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path

from gaitlib.training.checks import PROFILES
from gaitlib.training.config import (
    EvalConfig,
    ModelConfig,
    ScheduleConfig,
    TrainConfig,
    set_value,
)

SOURCES_FILE = Path(__file__).with_name("recipe_sources.csv")
SOURCE_COLUMNS = ("model", "dataset", "key", "value", "source", "alternative",
                  "alternative_source", "note")
# Every paper recipe has a row for each of these keys (OU-MVLP rows add model.options.variant).
RECIPE_KEYS = (
    "data.split", "sampling.p", "sampling.k", "sampling.k_replace", "sampling.mode",
    "sampling.frames", "sampling.window", "sampling.padding", "sampling.replace",
    "sampling.min_frames", "sampling.flip", "optimizer.name", "optimizer.lr",
    "optimizer.momentum", "optimizer.weight_decay", "schedule.iterations", "schedule.milestones",
    "schedule.gamma", "loss.triplet_weight", "loss.margin", "loss.triplet_self_pairs",
    "loss.ce_weight", "loss.label_smoothing", "loss.ce_scale", "precision")


@dataclass(frozen=True)
class SourceRow:
    """One hyperparameter of one paper recipe, with where its value comes from.

    ``key`` is a dotted TrainConfig key; ``value`` as written
    on the command line; ``alternative`` the other source's value where paper and code disagree
    (train it with ``KEY=ALTERNATIVE`` overrides, see :func:`alternative_overrides`).
    """

    model: str
    dataset: str
    key: str
    value: str
    source: str
    alternative: str = ""
    alternative_source: str = ""
    note: str = ""


@cache
def recipe_sources() -> tuple[SourceRow, ...]:
    """Every row of ``recipe_sources.csv``, the single declaration of the paper recipes."""
    with SOURCES_FILE.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != SOURCE_COLUMNS:
            raise ValueError(f"{SOURCES_FILE}: columns {reader.fieldnames}, expected {SOURCE_COLUMNS}")
        return tuple(SourceRow(**row) for row in reader)


def source_rows(model: str, dataset: str = "casia-b") -> list[SourceRow]:
    """The sources-table rows of one paper recipe (``dataset`` 'casia-b' or 'oumvlp')."""
    return [r for r in recipe_sources() if r.model == model and r.dataset == dataset]


def _from_sources(model: str, dataset: str) -> TrainConfig:
    """The paper recipe of ``model`` on ``dataset``, built from its rows of the sources table.

    Fields with no row (evaluation batch size, checkpoint and log intervals, workers) do not
    change what a run computes and are set here."""
    rows = source_rows(model, dataset)
    if not rows:
        raise ValueError(f"no rows for ({model}, {dataset}) in {SOURCES_FILE.name}")
    config = TrainConfig(profile="paper", model=ModelConfig(model),
                         eval=EvalConfig(sequences_per_batch=4),
                         checkpoint_every=5000, log_every=100, workers=8)
    for row in rows:
        set_value(config, row.key, row.value)
    return config


def alternative_overrides(model: str, dataset: str = "casia-b") -> list[str]:
    """``KEY=VALUE`` overrides that turn the paper recipe into the other source's version (the
    reference code's where it differs from the paper; OpenGait's for GaitSet), e.g. for
    ``gaitlib train ... $(overrides)``."""
    return [f"{r.key}={r.alternative}" for r in source_rows(model, dataset)
            if r.alternative and not r.alternative_source.startswith("unused")]


def sources_markdown(models: tuple[str, ...] | None = None) -> str:
    """The sources table as markdown, one table per recipe (the book's reproduction notes)."""
    out = []
    seen = list(dict.fromkeys((r.model, r.dataset) for r in recipe_sources()))
    for model, dataset in seen:
        if models and model not in models:
            continue
        out += [f"### {model}, {dataset}", "",
                "| key | value | source | other source's value | note |", "|---|---|---|---|---|"]
        for r in source_rows(model, dataset):
            other = f"{r.alternative} ({r.alternative_source})" if r.alternative else ""
            cells = [f"`{r.key}`", f"`{r.value}`" if r.value else "", r.source, other, r.note]
            out.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        out.append("")
    return "\n".join(out)


BOOK_BEGIN = "<!-- recipe-sources:begin (generated: python -m gaitlib.training.recipes) -->"
BOOK_END = "<!-- recipe-sources:end -->"


def write_book_section(path: str | os.PathLike) -> bool:
    """Replace the generated part of ``path`` (between the recipe-sources markers) with
    :func:`sources_markdown`; returns whether the file changed."""
    path = Path(path)
    text = path.read_text()
    if BOOK_BEGIN not in text or BOOK_END not in text:
        raise ValueError(f"{path} has no {BOOK_BEGIN!r} ... {BOOK_END!r} section")
    head, rest = text.split(BOOK_BEGIN, 1)
    _, tail = rest.split(BOOK_END, 1)
    new = f"{head}{BOOK_BEGIN}\n\n{sources_markdown()}\n{BOOK_END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


_CASIA_MODELS = ("gaitset", "gaitpart", "gaitgl", "gaitmm", "local3d", "cstl")
_OUMVLP_MODELS = ("gaitmm", "local3d", "cstl")

# The papers' recipes, from the sources table (recipe_sources.csv): GaitSet follows its
# authors' code whole, GaitPart and GaitGL OpenGait's configs, the study's models their papers
# (the reference code's differing values are the table's alternatives).
PAPER: dict[str, Callable[[], TrainConfig]] = {
    m: partial(_from_sources, m, "casia-b") for m in _CASIA_MODELS}


# What the cheap profiles shrink; everything else (frame-sampling mode, losses, optimizer type)
# stays the paper's. Adam's lr is raised to 1e-3 in both so the short schedules get somewhere.
_CHEAP = {
    "smoke": dict(p=2, k=2, frames=6, window_extra=2, iterations=4, milestone=3,
                  eval=EvalConfig(bootstrap=50, sequences_per_batch=8, max_frames=6, max_subjects=2),
                  checkpoint_every=2, log_every=1, workers=0),
    # Testing is the bigger cost on a CPU: the first 10 test subjects, 15 frames a sequence.
    "cpu": dict(p=4, k=4, frames=8, window_extra=4, iterations=60, milestone=45,
                eval=EvalConfig(bootstrap=1000, sequences_per_batch=32, max_frames=10, max_subjects=10),
                checkpoint_every=50, log_every=10, workers=1,
                # The fastest setting per model on the 2-core AVX2 CPU (bench/train.py): channels-
                # last convolutions where they were faster (1.0-1.2x); fp32 throughout, since bf16
                # without AVX512-BF16 hardware ran 5-10x slower than fp32.
                channels_last=("gaitset", "gaitpart", "gaitgl", "local3d", "cstl")),
}
# cpu-long: the cpu profile's shapes (resolution, widths, strips, batch, frames) trained long
# enough to leave the early-training regime, and scored on every test subject at the cpu
# profile's 10 frames per sequence (REAL_DATA_EVAL).  Iterations per model family; an ablation
# table's rows are one model's, so they share one budget.  Seconds per iteration at these
# shapes, measured on the real copy as `gaitlib reproduce` runs them (two single-thread runs
# sharing 2 cores): CSTL 0.24 (0.8 at the 128x88 row's input), 3D Local 1.0, GaitMM 3.0; a test
# pass of all 50 subjects costs about 35 s of one core for CSTL, 140-170 s for 3D Local and
# GaitMM.  The costly families get what the budget allows, and say so.
LONG_ITERATIONS = {"gaitset": 1000, "gaitpart": 1000, "gaitgl": 1000, "cstl": 1000,
                   "gaitmm": 120, "local3d": 200}
_CHEAP["cpu-long"] = {**_CHEAP["cpu"], "iterations": LONG_ITERATIONS, "milestone": None,
                      "checkpoint_every": 250, "log_every": 50,
                      "eval": EvalConfig(bootstrap=1000, sequences_per_batch=32, max_frames=10,
                                         max_subjects=0)}
# The fractions of a cpu-long run at which a main-table run (no ablation options) also scores
# the test set: its learning curve (the run's curve.jsonl; the training is unchanged).
CURVE_FRACTIONS = (0.25, 0.5, 0.75)


def cheap_model_options(model: str, options: dict | None = None) -> tuple[dict, int]:
    """What the cheap profiles change in a model: ``(options, input height)``.

    Half the input resolution (a 64x44 row runs at 32x22, a 128x88 row at 64x44, so the papers'
    resolution comparisons keep their 2x ratio), and what the model itself declares
    (:func:`gaitlib.models.cheap_options`: half the channel widths and half as many horizontal
    strips or pyramid bins, so each strip still covers the same body rows).  Depth, modules,
    losses and sampling stay the paper's.  The book states this beside every number.
    """
    from gaitlib.models import cheap_options

    opts = dict(options or {})
    height = int(opts.get("resolution", 64)) // 2
    if "resolution" in _model_option_names(model):
        opts["resolution"] = height
    return cheap_options(model, opts), height


def _model_option_names(model: str) -> set[str]:
    from gaitlib.models import options as model_options

    return set(model_options(model))


# The test scale of a cheap profile on real CASIA-B (subjects and frames; 0 = all): test
# subjects buy resolution, frames hardly do (bench/eval_scale.py on the real copy, per run at the
# cpu profile: 50 subjects x 10 frames cost about 5x the evaluation of 10 x 10 and halve the 95%
# CI around a chance level of 2% instead of 10%; every frame costs 11x more again for no
# narrower CI).  The synthetic edition keeps 10 x 10, which the 30-minute `make book` affords.
# cpu-long keeps the 10 frames: more frames raise rank-1 (CSTL at 1,000 iterations, real copy,
# NM 39.5 / 52.9 / 59.2 / 73.0 at 10 / 20 / 30 / all frames) but not the CI's width, and 30
# frames cost GaitMM's and 3D Local's test pass 7-8 minutes of one core per run.
REAL_DATA_EVAL = {"cpu": dict(max_subjects=0, max_frames=10),
                  "cpu-long": dict(max_subjects=0, max_frames=10)}


def _scaled(config: TrainConfig, profile: str, real: bool = False) -> TrainConfig:
    """The paper recipe shrunk to ``profile`` (the design fields kept); ``real``: for real
    CASIA-B, tested at :data:`REAL_DATA_EVAL`'s scale."""
    c = _CHEAP[profile]
    test = replace(c["eval"], **(REAL_DATA_EVAL.get(profile, {}) if real else {}))
    frames = c["frames"]
    low, high = config.sampling.window
    # A fixed window (OpenGait's 40 for 30 frames) stays fixed; a random one stays random.
    window = (frames + c["window_extra"],) * 2 if low == high else (frames, frames + c["window_extra"])
    # Adam's lr is raised 10x for the short schedules; SGD (a non-default option) keeps its own.
    lr = 1e-3 if config.optimizer.name == "adam" else config.optimizer.lr
    options, height = cheap_model_options(config.model.name, config.model.options)
    iterations = c["iterations"]
    if isinstance(iterations, dict):  # per model family (cpu-long)
        iterations = iterations[config.model.name]
    milestone = c["milestone"] or iterations * 3 // 4  # cpu-long: the lr drops at 75%
    return replace(
        config, profile=profile,
        model=replace(config.model, options=options),
        data=replace(config.data, resolution=height),
        sampling=replace(config.sampling, p=c["p"], k=c["k"], frames=frames, window=window),
        schedule=ScheduleConfig(iterations=iterations, milestones=[milestone], gamma=0.1),
        optimizer=replace(config.optimizer, lr=lr),
        eval=test,  # a copy: callers may edit the returned config
        checkpoint_every=c["checkpoint_every"], log_every=c["log_every"], workers=c["workers"],
        channels_last=config.model.name in c.get("channels_last", ()),
        # fp32 on the CPU whatever the paper trains in (OpenGait's fp16 needs a GPU to pay).
        precision="fp32")


# OU-MVLP recipes of the study's papers: their OU-MVLP widths, larger batches, longer schedules.
# The baselines' OU-MVLP numbers are quoted from the papers, not retrained.
PAPER_OUMVLP: dict[str, Callable[[], TrainConfig]] = {
    m: partial(_from_sources, m, "oumvlp") for m in _OUMVLP_MODELS}


def recipe(model: str, profile: str = "cpu", dataset: str = "casia-b",
           options: dict | None = None, real: bool | None = None) -> TrainConfig:
    """The training config of ``model`` under ``profile`` for a store of ``dataset`` (a fresh
    object; edit freely). ``oumvlp`` takes the paper's OU-MVLP recipe (scaled for cheap profiles);
    ``casia-b`` and ``synthetic`` the CASIA-B one (``synthetic`` with the store's own split).
    ``options`` are the model options of the run
    at the paper's scale (an ablation row, ``resolution=128``); cheap profiles scale them with
    :func:`cheap_model_options`.  ``real``: the run's store holds real CASIA-B (default: when
    ``dataset`` is 'casia-b'), which a cheap profile tests at :data:`REAL_DATA_EVAL`'s scale."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    from gaitlib.models import available

    if model not in available():
        raise ValueError(f"unknown model {model!r}; available: {', '.join(available())}")
    if model not in PAPER:
        raise ValueError(f"no training recipe for model {model!r}; add one to "
                         f"gaitlib/training/recipes.py (recipes exist for: {', '.join(PAPER)})")
    if dataset == "oumvlp":
        if model not in PAPER_OUMVLP:
            raise ValueError(f"no OU-MVLP recipe for {model!r}; OU-MVLP recipes exist for: "
                             f"{', '.join(PAPER_OUMVLP)}")
        config = PAPER_OUMVLP[model]()
    else:
        config = PAPER[model]()
    if dataset.startswith("synthetic"):  # a synthetic store has its own split (its first half trains)
        config.data.split = ""
    if options:
        from gaitlib.models import options as model_options

        unknown = sorted(set(options) - set(model_options(model)))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for {model!r}; valid: "
                             f"{', '.join(model_options(model))}")
        config.model.options = {**config.model.options, **options}
    if model == "local3d" and config.model.options.get("head") == "compact":
        config.loss = replace(config.loss, ce_weight=1.0, ce_scale=1.0, label_smoothing=0.0)
    if model == "cstl" and config.model.options.get("ssfl") is False:
        config.loss.ce_weight = 0.0  # the CE of eq. 11 is SSFL's; without SSFL, triplet only
    if profile == "paper":
        # The input height the run needs: one 128x128 store then serves the 64x44 runs too
        # (shrunk by 2 at load time), and a 64x64 store fails clearly for a 128x88 run.
        config.data.resolution = int(config.model.options.get("resolution", 64))
        return config
    config = _scaled(config, profile, dataset == "casia-b" if real is None else real)
    if profile == "cpu-long" and not options:  # a main-table run records its learning curve
        total = config.schedule.iterations
        config.eval.curve = sorted({max(1, int(total * f)) for f in CURVE_FRACTIONS} - {total})
    return config


if __name__ == "__main__":  # regenerate the book's table: python -m gaitlib.training.recipes
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "book/reproduction-notes.md"
    print(f"{target}: {'updated' if write_book_section(target) else 'already up to date'}")
