"""Per-model training recipes, one per profile (SPEC §4, §5).

``paper`` is each paper's recipe (the baselines' from OpenGait's CASIA-B configs). The cheaper
profiles keep a model's design (its modules and depth, frame-sampling mode, losses, optimizer
type) and shrink the scale:

- ``smoke``: seconds; proves the plumbing (tests, CI). Results are meaningless.
- ``cpu``: sized so that all 37 runs of the book's 17 artifacts fit in about 25 minutes on a
  2-core laptop: half input resolution, half channel widths and half as many horizontal strips
  (:func:`cheap_model_options`), (4, 4) batches of 8 frames, 60 iterations, tested on the first
  10 test subjects x 10 frames.  With so few iterations Adam's learning rate is raised 10x
  (1e-3).  The book states this next to every cpu-profile number.
- ``paper``: the published recipe, for a GPU box and the real data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from gaitlib.training.config import (
    EvalConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    SamplingConfig,
    ScheduleConfig,
    TrainConfig,
)

PROFILES = ("smoke", "cpu", "paper")


def _paper(model: str, p: int, k: int, mode: str, iterations: int, milestones: list[int],
           ce: bool, weight_decay: float = 0.0, window: tuple[int, int] = (30, 40),
           flip: bool = False) -> TrainConfig:
    return TrainConfig(
        profile="paper",
        model=ModelConfig(model),
        sampling=SamplingConfig(p=p, k=k, mode=mode, frames=30, window=window, flip=flip),
        optimizer=OptimizerConfig("adam", lr=1e-4, weight_decay=weight_decay),
        schedule=ScheduleConfig(iterations=iterations, milestones=milestones, gamma=0.1),
        loss=LossConfig(triplet_weight=1.0, margin=0.2, ce_weight=1.0 if ce else 0.0),
        eval=EvalConfig(sequences_per_batch=4),
        checkpoint_every=5000, log_every=100, workers=8)


# The papers' recipes. Baselines: OpenGait's CASIA-B configs (GaitSet 40k it, (8,16), 30
# unordered frames; GaitPart 120k, (8,16), 30 sorted frames of a 30-40 window, LR step at 100k;
# GaitGL 80k, (8,8), 30 consecutive frames, weight decay 5e-4, 1e-5 after 70k, triplet + CE).
# Study models: SPEC §4.
PAPER: dict[str, Callable[[], TrainConfig]] = {
    "gaitset": lambda: _paper("gaitset", 8, 16, "unordered", 40000, [], ce=False),
    "gaitpart": lambda: _paper("gaitpart", 8, 16, "ordered_window", 120000, [100000], ce=False),
    "gaitgl": lambda: _paper("gaitgl", 8, 8, "ordered", 80000, [70000], ce=True, weight_decay=5e-4),
    "gaitmm": lambda: _paper("gaitmm", 8, 8, "ordered", 80000, [70000], ce=True),
    "local3d": lambda: _paper("local3d", 8, 16, "ordered_window", 120000, [], ce=True, flip=True),
    "cstl": lambda: _paper("cstl", 8, 8, "ordered", 100000, [], ce=True),
}


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


def _variant_default(model: str, options: dict, key: str):
    """A model option's value: given explicitly, else the model's variant table or default."""
    if options.get(key) is not None:
        return options[key]
    import importlib

    from gaitlib.models import options as model_options

    module = importlib.import_module(f"gaitlib.models.{model}")
    variants = getattr(module, "VARIANTS", None)
    if variants is not None and key in variants[options.get("variant", "casia-b")]:
        return variants[options.get("variant", "casia-b")][key]
    return model_options(model)[key]


def _halve(values) -> tuple[int, ...]:
    return tuple(dict.fromkeys(max(1, int(v) // 2) for v in values))


def cheap_model_options(model: str, options: dict | None = None) -> tuple[dict, int]:
    """What the cheap profiles change in a model: ``(options, input height)``.

    Half the input resolution (a 64x44 row runs at 32x22, a 128x88 row at 64x44, so the papers'
    resolution comparisons keep their 2x ratio), half the channel widths, and half as many
    horizontal strips or pyramid bins, so each strip still covers the same body rows.  Depth,
    modules, losses and sampling stay the paper's.  The book states this beside every number.
    """
    opts = dict(options or {})
    height = int(opts.get("resolution", 64)) // 2
    if "resolution" in _model_option_names(model):
        opts["resolution"] = height
    widths = _variant_default(model, opts, "channels")
    opts["channels"] = tuple(max(1, int(c) // 2) for c in widths)
    strips = {"gaitset": "bins", "gaitpart": "parts", "gaitgl": "parts", "gaitmm": "parts",
              "local3d": "strips"}.get(model)
    if strips is not None:
        value = _variant_default(model, opts, strips)
        opts[strips] = _halve(value) if isinstance(value, (tuple, list)) else max(1, int(value) // 2)
    return opts, height


def _model_option_names(model: str) -> set[str]:
    from gaitlib.models import options as model_options

    return set(model_options(model))


def _scaled(config: TrainConfig, profile: str) -> TrainConfig:
    """The paper recipe shrunk to ``profile`` (the design fields kept)."""
    c = _CHEAP[profile]
    frames = c["frames"]
    options, height = cheap_model_options(config.model.name, config.model.options)
    return replace(
        config, profile=profile,
        model=replace(config.model, options=options),
        data=replace(config.data, resolution=height),
        sampling=replace(config.sampling, p=c["p"], k=c["k"], frames=frames,
                         window=(frames, frames + c["window_extra"])),
        schedule=ScheduleConfig(iterations=c["iterations"], milestones=[c["milestone"]], gamma=0.1),
        optimizer=replace(config.optimizer, lr=1e-3),
        eval=replace(c["eval"]),  # a copy: callers may edit the returned config
        checkpoint_every=c["checkpoint_every"], log_every=c["log_every"], workers=c["workers"],
        channels_last=config.model.name in c.get("channels_last", ()))


def _oumvlp(model: str, p: int, k: int, iterations: int, milestones: list[int], **kw) -> TrainConfig:
    config = PAPER[model]()
    config.model.options = {"variant": "oumvlp"}
    config.sampling = replace(config.sampling, p=p, k=k)
    config.schedule = ScheduleConfig(iterations=iterations, milestones=milestones, gamma=0.1)
    return replace(config, **kw)


# OU-MVLP recipes of the study's papers (SPEC §4): their OU-MVLP widths, larger batches, longer
# schedules. The baselines' OU-MVLP numbers are quoted from the papers, not retrained.
PAPER_OUMVLP: dict[str, Callable[[], TrainConfig]] = {
    "gaitmm": lambda: _oumvlp("gaitmm", 32, 8, 160000, [150000]),
    "local3d": lambda: _oumvlp("local3d", 32, 16, 250000, [150000]),
    "cstl": lambda: _oumvlp("cstl", 32, 8, 250000, [150000]),
}


def recipe(model: str, profile: str = "cpu", dataset: str = "casia-b",
           options: dict | None = None) -> TrainConfig:
    """The training config of ``model`` under ``profile`` for a store of ``dataset`` (a fresh
    object; edit freely). ``oumvlp`` takes the paper's OU-MVLP recipe (scaled for cheap profiles);
    ``casia-b`` and ``synthetic`` the CASIA-B one.  ``options`` are the model options of the run
    at the paper's scale (an ablation row, ``resolution=128``); cheap profiles scale them with
    :func:`cheap_model_options`."""
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
    if options:
        from gaitlib.models import options as model_options

        unknown = sorted(set(options) - set(model_options(model)))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for {model!r}; valid: "
                             f"{', '.join(model_options(model))}")
        config.model.options = {**config.model.options, **options}
    if model == "cstl" and config.model.options.get("ssfl") is False:
        config.loss.ce_weight = 0.0  # the CE of eq. 11 is SSFL's; without SSFL, triplet only
    return config if profile == "paper" else _scaled(config, profile)
