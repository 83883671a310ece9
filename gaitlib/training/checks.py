"""Every value of a :class:`~gaitlib.training.config.TrainConfig` checked against its domain.

:func:`validate` runs when a config is built (``apply_overrides``, ``from_dict``) and when a
run starts, before any data is read or a step is taken: a value out of its range, a model option
the model cannot be built with, or a combination whose loss is identically zero is a
:class:`ConfigError` naming the key and the valid range, never an error after hours of training
or a run that "finishes" having learnt nothing. What needs the store (the input resolution, the
subjects it holds) is checked by :func:`check_against_store` as soon as the store is open.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from gaitlib.data.splits import check_disjoint, expand_subjects  # noqa: F401 (re-exported)
from gaitlib.errors import ConfigError

if TYPE_CHECKING:
    from gaitlib.training.config import TrainConfig

PRECISIONS = ("fp32", "bf16", "fp16")
# The recipe scales (gaitlib.training.recipes), in order of faithfulness: a page of a later
# profile replaces one of an earlier profile.
PROFILES = ("smoke", "cpu", "cpu-long", "paper")
COMPILE_MODES = ("", "default", "reduce-overhead", "max-autotune")
# Subject ids as the stores write them ("001", "00042", "A"), or an inclusive range "075-124".
MAX_SEED = 2**63 - 1


def _need(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is out of range; valid: {valid}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _within(key: str, value: Any, low: float, high: float = math.inf, *, open_low: bool = False,
            open_high: bool = False) -> None:
    """``value`` a finite number in [low, high] (or open at either end)."""
    ok = _number(value) and (value > low if open_low else value >= low) and \
        (value < high if open_high else value <= high)
    left, right = "(" if open_low else "[", ")" if open_high or high == math.inf else "]"
    _need(ok, key, value, f"a finite number in {left}{low:g}, {high:g}{right}"
          if high != math.inf else f"a finite number {'>' if open_low else '>='} {low:g}")


def _choice(key: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{key}={value!r}; valid: {', '.join(v or repr(v) for v in valid)}")


def validate(config: TrainConfig) -> None:
    """Check every value of ``config`` and the combinations that need several; raises
    :class:`ConfigError` naming the key and its valid range."""
    from gaitlib.data.sampling import FRAME_MODES
    from gaitlib.data.splits import SPLITS
    from gaitlib.models import available

    c = config
    _choice("profile", c.profile, PROFILES)
    _choice("model.name", c.model.name, tuple(available()))
    _choice("data.split", c.data.split, ("", *SPLITS))
    train = expand_subjects(c.data.train_subjects, "data.train_subjects")
    test = expand_subjects(c.data.test_subjects, "data.test_subjects")
    check_disjoint(train, test, "data.train_subjects and data.test_subjects")
    _need(c.data.resolution >= 0, "data.resolution", c.data.resolution,
          "0 (the store's own) or a height that divides the store's frames, e.g. 32 for 64x64")

    s = c.sampling
    for key, value in (("sampling.p", s.p), ("sampling.k", s.k), ("sampling.frames", s.frames),
                       ("sampling.min_frames", s.min_frames)):
        _need(value >= 1, key, value, "an integer >= 1")
    _choice("sampling.mode", s.mode, tuple(m for m in FRAME_MODES if m != "all"))
    _choice("sampling.padding", s.padding, ("repeat", "cyclic"))
    if s.mode == "ordered_window":
        _need(s.frames <= s.window[0] <= s.window[1], "sampling.window", list(s.window),
              f"two frame counts low <= high, low >= sampling.frames ({s.frames})")

    o = c.optimizer
    _choice("optimizer.name", o.name, ("adam", "sgd"))
    _within("optimizer.lr", o.lr, 0, open_low=True)
    _within("optimizer.weight_decay", o.weight_decay, 0)
    _within("optimizer.momentum", o.momentum, 0, 1)

    sch = c.schedule
    _need(sch.iterations >= 1, "schedule.iterations", sch.iterations, "an integer >= 1")
    # a milestone past the last iteration is allowed: a recipe cut short keeps its schedule
    _need(all(m >= 1 for m in sch.milestones), "schedule.milestones", sch.milestones,
          "iterations >= 1 (the learning rate drops after that many steps)")
    _within("schedule.gamma", sch.gamma, 0, open_low=True)

    loss = c.loss
    for key, value in (("loss.triplet_weight", loss.triplet_weight),
                       ("loss.ce_weight", loss.ce_weight)):
        _within(key, value, 0)
    if loss.triplet_weight <= 0 and loss.ce_weight <= 0:
        raise ConfigError("no loss: loss.triplet_weight and loss.ce_weight are both 0")
    # margin <= 0: embeddings that collapse to one point score a triplet loss of 0, so the loss
    # has a trivial minimum (the papers and OpenGait use 0.2)
    _within("loss.margin", loss.margin, 0, open_low=True)
    _within("loss.label_smoothing", loss.label_smoothing, 0, 1, open_high=True)
    _within("loss.ce_scale", loss.ce_scale, 0, open_low=True)
    if loss.triplet_weight > 0 and s.p < 2:
        raise ConfigError("the triplet loss needs sampling.p >= 2 (negatives)")
    if loss.triplet_weight > 0 and s.k < 2:
        # k=1: no anchor has a positive but itself, so the loss is identically 0 (or, counting
        # self pairs, only pushes subjects apart): the run would "finish" having learnt nothing
        raise ConfigError("the triplet loss needs sampling.k >= 2 (positive pairs); with "
                          "sampling.k=1 it is identically 0")

    e = c.eval
    _choice("eval.metric", e.metric, ("euc", "cos"))
    _choice("eval.precision", e.precision, PRECISIONS)
    _need(e.bootstrap >= 0, "eval.bootstrap", e.bootstrap, "an integer >= 0 (0: no CIs)")
    _need(e.sequences_per_batch >= 1, "eval.sequences_per_batch", e.sequences_per_batch,
          "an integer >= 1")
    for key, value in (("eval.max_frames", e.max_frames), ("eval.max_subjects", e.max_subjects)):
        _need(value >= 0, key, value, "an integer >= 0 (0: all)")
    for point in e.curve:
        _need(0 < point < c.schedule.iterations, "eval.curve", e.curve,
              f"iterations between 1 and schedule.iterations - 1 ({c.schedule.iterations - 1}); "
              "the last iteration is always scored")

    _choice("precision", c.precision, PRECISIONS)
    _choice("compile", c.compile, COMPILE_MODES)
    _choice("device", c.device, ("auto", "cpu", "cuda"))
    for key, value in (("checkpoint_every", c.checkpoint_every), ("log_every", c.log_every),
                       ("keep_checkpoints", c.keep_checkpoints)):
        _need(value >= 1, key, value, "an integer >= 1")
    _within("checkpoint_minutes", c.checkpoint_minutes, 0)  # 0: no checkpoints by time
    _need(c.workers >= 0, "workers", c.workers, "an integer >= 0 (0: load in the main process)")
    _need(0 <= c.seed <= MAX_SEED, "seed", c.seed, f"an integer in [0, {MAX_SEED}]")
    check_model_options(c)


def check_model_options(config: TrainConfig) -> None:
    """Build the configured model on the meta device (no memory, no arithmetic), so an option
    value the model cannot take fails now, naming the options, not when the run starts."""
    import torch

    from gaitlib.models import build, options

    opts = dict(config.model.options)
    if "num_classes" in options(config.model.name) and opts.get("num_classes") is None:
        opts["num_classes"] = 2  # the real count comes from the data
    try:
        with torch.device("meta"):
            build(config.model.name, **opts)
    except (TypeError, ValueError, RuntimeError, AssertionError, KeyError, IndexError) as err:
        given = ", ".join(f"{k}={v!r}" for k, v in config.model.options.items()) or "defaults"
        detail = (str(err).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"model.options ({given}) do not build a {config.model.name!r} model: "
                          f"{type(err).__name__}: {detail}") from None


def check_against_store(config: TrainConfig, height: int) -> None:
    """The checks that need the store: its frames' ``height`` (square, cropped to the model
    input width) must shrink to ``data.resolution`` by an integer factor."""
    r = config.data.resolution
    width = height - 2 * (height // 64 * 10)  # the model input crop (pretreatment.crop_width)
    valid = [height // f for f in range(1, height + 1) if height % f == 0 and width % f == 0]
    _need(r == 0 or r in valid, "data.resolution", r,
          f"0 or one of {', '.join(map(str, valid))} for this store's {height}x{height} frames")
