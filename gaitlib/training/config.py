"""Typed training configuration: nested dataclasses, strict overrides, strict loading.

A run is fully described by one :class:`TrainConfig`, saved as ``config.json`` in its run
directory. Every field that can change the result lives here (the device and worker count
included, for the record), so a config plus a git commit reproduces a run. Overrides are
``key=value`` strings with dotted keys (``optimizer.lr=3e-4``), converted to the field's
declared type; an unknown key is an error that lists the valid ones, never a warning, because a
misspelt key silently ignored is a wrong experiment. Every value is then checked against its
domain (:mod:`gaitlib.training.checks`) as soon as the config is built by
:func:`apply_overrides` or :func:`from_dict`.
"""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from gaitlib.errors import ConfigError
from gaitlib.training.checks import PRECISIONS, expand_subjects, validate  # noqa: F401 (the config's API)


@dataclass
class ModelConfig:
    name: str = "gaitgl"
    # Passed to gaitlib.models.build(name, **options); ``num_classes`` is filled from the data
    # when the model takes it and it is not given.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    store: str = ""  # path of a gaitlib store
    split: str = ""  # a name from gaitlib.data.splits ('' = the store's dataset default)
    # Explicit subject lists override the split ("075-099" ranges allowed), e.g. to train on
    # part of a test-only store.
    train_subjects: list[str] = field(default_factory=list)
    test_subjects: list[str] = field(default_factory=list)
    # Model input height: 0 = the store's own (64 -> 64x44, 128 -> 128x88); smaller values shrink
    # the frames by an integer factor at load time (the cpu profile runs at half resolution).
    resolution: int = 0
    # Keep the training sequences on the training device (the GPU) as one uint8 tensor and draw
    # batches there with the same seeded sampler: the DataLoader's batches, without its workers
    # and without a host-to-device copy per step.
    on_device: bool = False


@dataclass
class SamplingConfig:
    p: int = 8  # subjects per (global) batch
    k: int = 8  # sequences per subject
    mode: str = "ordered"  # ordered | ordered_window | unordered (gaitlib.data.sampling)
    frames: int = 30
    window: tuple[int, int] = (30, 40)  # ordered_window only
    flip: bool = False
    # Sequences shorter than the clip: "repeat" random frames (sorted) or "cyclic" (looped end
    # to end, OpenGait); see gaitlib.data.sampling.FrameSampling.
    padding: str = "repeat"
    replace: bool = False  # unordered only: frames always drawn with replacement (GaitSet code)
    k_replace: bool = False  # a subject's K sequences drawn with replacement (CSTL code)
    min_frames: int = 1  # training sequences with fewer frames are left out (CSTL code: 3)


@dataclass
class OptimizerConfig:
    name: str = "adam"  # adam | sgd
    lr: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only


@dataclass
class ScheduleConfig:
    iterations: int = 80000
    milestones: list[int] = field(default_factory=list)  # MultiStepLR
    gamma: float = 0.1


@dataclass
class LossConfig:
    triplet_weight: float = 1.0
    margin: float = 0.2
    triplet_self_pairs: bool = False  # True: OpenGait's variant (see gaitlib.losses)
    ce_weight: float = 0.0
    label_smoothing: float = 0.0
    ce_scale: float = 1.0
    # DDP: compute the triplet loss over the whole global batch (embeddings all-gathered).
    gather: bool = True


@dataclass
class EvalConfig:
    enabled: bool = True
    metric: str = "euc"  # euc | cos
    bootstrap: int = 1000  # resamples for the 95% CIs (0: none)
    sequences_per_batch: int = 4
    max_frames: int = 0  # >0: test on the first N frames of each sequence (cheap profiles)
    max_subjects: int = 0  # >0: test on the first N test subjects only (cheap profiles)
    # Iterations before the last at which the test set is also scored, the same way as at the
    # end (a learning curve, in the run's curve.jsonl); the training is unchanged.
    curve: list[int] = field(default_factory=list)
    # Feature-extraction precision (fp32 | bf16 | fp16): test features stay fp32 unless a
    # lower precision is shown to give the same rank-1.
    precision: str = "fp32"


@dataclass
class TrainConfig:
    profile: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Training arithmetic: fp32, bf16 (autocast, CPU or CUDA) or fp16 (autocast with a gradient
    # scaler; CUDA). Parameters, optimizer state and losses stay fp32 in every mode.
    precision: str = "fp32"
    # Feed the convolutions channels-last activations (NHWC, or NDHWC for 3D convs): faster
    # oneDNN/cuDNN kernels for some models; the arithmetic is the same.
    channels_last: bool = False
    # torch.compile mode for the training model ('' = eager): pays on GPUs for long runs; on the
    # CPU it added little (see bench/train.py) and its compile time dwarfs a cpu-profile run.
    compile: str = ""
    # Activation checkpointing where the model offers it (a ``recompute`` attribute: 3D Local):
    # less memory for more time, the same results. The plan turns it on for a run that fits no
    # card without it (gaitlib.runs.budget); the cheap profiles leave it off.
    recompute: bool = False
    # DDP: every BatchNorm normalises with the global batch's statistics (SyncBatchNorm on CUDA,
    # gaitlib's all-reduce BatchNorm with gloo on the CPU).
    sync_bn: bool = True
    checkpoint_every: int = 1000
    # Also checkpoint by time: on the first log step this many minutes after the last checkpoint
    # (0: off), so an interrupted days-long run loses at most that much.
    checkpoint_minutes: float = 15.0
    keep_checkpoints: int = 2  # older periodic checkpoints are deleted; the last one always kept
    log_every: int = 10
    seed: int = 0
    workers: int = 2
    device: str = "auto"  # auto | cpu | cuda

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Fields that do not change what a run computes: a resumed run may differ in these.
NON_RESULT_KEYS = ("workers", "log_every", "keep_checkpoints", "eval.sequences_per_batch",
                   "data.on_device", "compile", "checkpoint_minutes",
                   "recompute", "eval.curve")


def flat_keys(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """All dotted keys of a config class (``model.options.*`` stands for any model option)."""
    keys = []
    for f in fields(cls):
        hint = _hints(cls)[f.name]
        if is_dataclass(hint):
            keys += flat_keys(hint, f"{prefix}{f.name}.")
        elif f.name == "options" and cls is ModelConfig:
            keys.append(f"{prefix}options.NAME")
        else:
            keys.append(prefix + f.name)
    return keys


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def convert(value: Any, hint: Any, key: str) -> Any:
    """``value`` (a string from the command line, or a JSON value) as type ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    try:
        if hint is Any:
            return _parse_literal(value) if isinstance(value, str) else value
        if origin in (typing.Union, types.UnionType):
            if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
                if type(None) in args:
                    return None
            inner = [a for a in args if a is not type(None)]
            return convert(value, inner[0], key)
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected a boolean (true/false)")
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            text = str(value).strip().replace("_", "")
            number = float(text) if ("e" in text.lower() or "." in text) else int(text)
            if isinstance(number, float) and not number.is_integer():
                raise ValueError("expected an integer")
            return int(number)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if hint is str:
            return str(value)
        if origin in (list, tuple):
            items = _as_items(value)
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(items) != len(args):
                    raise ValueError(f"expected {len(args)} values")
                return tuple(convert(v, a, key) for v, a in zip(items, args, strict=True))
            inner = args[0] if args else Any
            out = [convert(v, inner, key) for v in items]
            return tuple(out) if origin is tuple else out
        if origin is dict:
            if not isinstance(value, dict):
                value = _parse_literal(value)
            if not isinstance(value, dict):
                raise ValueError("expected a mapping")
            return dict(value)
    except ConfigError:
        if origin in (list, tuple):  # an item failed: say what the whole value should look like
            raise ConfigError(f"{key}={value!r}: expected {describe_type(hint)}") from None
        raise  # already names the key and the value: do not prefix it twice
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r}: expected {describe_type(hint)}") from None
    raise ConfigError(f"{key}: unsupported field type {hint!r}")


# Per type: (one value, several values, two examples), for error messages.
_WORDS = {int: ("an integer", "integers", ("30", "40")), float: ("a number", "numbers", ("0.5", "1")),
          bool: ("a boolean (true/false)", "booleans", ("true", "false")),
          str: ("text", "strings", ("a", "b"))}


def describe_type(hint: Any) -> str:
    """The values a field of type ``hint`` accepts, in words, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [describe_type(a) for a in args if a is not type(None)]
        return " or ".join(inner) + (" or none" if type(None) in args else "")
    if origin in (list, tuple):
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        inner = args[0] if args else Any
        plural = _WORDS.get(inner, ("", "values"))[1]
        n = len(args) if fixed else 2
        items = [_WORDS.get(a, ("", "", ("x", "y")))[2][i]
                 for i, a in enumerate(args if fixed else [inner] * n)]
        return (f"{n if fixed else 'comma-separated'} {'comma-separated ' if fixed else ''}"
                f"{plural}, e.g. {','.join(items)} or [{', '.join(items)}]")
    if origin is dict or hint is dict:
        return "a mapping, e.g. {'a': 1}"
    return _WORDS.get(hint, ("a value",))[0]


def _as_items(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    text = str(value).strip()
    if text.startswith(("[", "(")):
        parsed = _parse_literal(text)
        if isinstance(parsed, (list, tuple)):
            return list(parsed)
    return [x.strip() for x in text.split(",") if x.strip()]


def _unknown(key: str, cls: type, prefix: str) -> ConfigError:
    valid = ", ".join(flat_keys(cls, prefix))
    return ConfigError(f"unknown config key {key!r}; valid keys: {valid}")


def set_value(config: TrainConfig, key: str, value: Any) -> None:
    """Set dotted ``key`` of ``config`` to ``value`` converted to the field's type."""
    if key == "profile":
        raise ConfigError("the profile picks the recipe; choose it with --profile (or "
                          "gaitlib.training.recipe(model, profile)), not as an override")
    parts = key.split(".")
    obj: Any = config
    for i, name in enumerate(parts):
        cls = type(obj)
        names = {f.name for f in fields(cls)}
        if name not in names:
            raise _unknown(key, TrainConfig, "")
        hint = _hints(cls)[name]
        if cls is ModelConfig and name == "options":
            if i != len(parts) - 2:
                raise ConfigError(f"{key!r}: model options are set as model.options.NAME=VALUE")
            _set_model_option(obj, parts[-1], value, key)
            return
        if i == len(parts) - 1:
            if is_dataclass(hint):
                raise ConfigError(f"{key!r} is a section; set one of its keys: "
                                  f"{', '.join(flat_keys(hint, key + '.'))}")
            setattr(obj, name, convert(value, hint, key))
            return
        if not is_dataclass(hint):
            raise _unknown(key, TrainConfig, "")
        obj = getattr(obj, name)


def _set_model_option(model: ModelConfig, option: str, value: Any, key: str) -> None:
    """Model options are checked against the model's signature; the value's type follows the
    option's default (a literal when the default is None)."""
    from gaitlib.models import options

    valid = options(model.name)
    if option not in valid:
        raise ConfigError(f"unknown option {option!r} for model {model.name!r}; valid: "
                          f"{', '.join(valid) or '(none)'}")
    default = valid[option]
    if isinstance(value, str):
        if isinstance(default, bool):
            value = convert(value, bool, key)
        elif isinstance(default, (int, float, str)):
            value = convert(value, type(default), key)
        elif isinstance(default, (list, tuple)):
            kinds = {type(v) for v in default}
            item = kinds.pop() if len(kinds) == 1 else None  # e.g. int for bins=(16, 8, 4, 2, 1)
            if item in (bool, int, float, str):
                value = convert(value, list[item], key)
            else:
                value = [_parse_literal(v) for v in _as_items(value)]
        else:
            value = _parse_literal(value)
    model.options[option] = value


def apply_overrides(config: TrainConfig, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
    """Apply ``key=value`` strings in order (``model.name`` first, so options check against it),
    then :func:`validate` the result."""
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not KEY=VALUE; valid keys: "
                              f"{', '.join(flat_keys())}")
        key, value = item.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    pairs.sort(key=lambda kv: kv[0] != "model.name")
    for key, value in pairs:
        set_value(config, key, value)
    validate(config)
    return config


def from_dict(data: dict[str, Any], cls: type = TrainConfig, prefix: str = "") -> Any:
    """Rebuild a config from ``to_dict()`` output (config.json); unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    if cls is TrainConfig and "amp" in data:
        data = _from_legacy_amp(data)
    hints = _hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + u for u in unknown)}; "
                          f"valid keys: {', '.join(flat_keys(cls, prefix))}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if is_dataclass(hint):
            kwargs[name] = from_dict(value, hint, f"{prefix}{name}.")
        else:
            kwargs[name] = convert(value, hint, prefix + name)
    config = cls(**kwargs)
    if cls is TrainConfig:
        validate(config)
    return config


def _from_legacy_amp(data: dict[str, Any]) -> dict[str, Any]:
    """A config.json written before ``precision`` existed has ``amp`` (bool): bf16 autocast on
    CUDA, fp32 on the CPU. It becomes ``precision`` with what the run actually computed: bf16 for
    ``device: cuda``, fp32 otherwise (the project's ``auto`` runs were CPU runs)."""
    data = dict(data)
    amp = convert(data.pop("amp"), bool, "amp")
    if "precision" in data:
        raise ConfigError("config has both 'amp' (old) and 'precision'; keep 'precision'")
    data["precision"] = "bf16" if amp and data.get("device") == "cuda" else "fp32"
    return data
