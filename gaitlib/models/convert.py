"""Convert checkpoints of the reference implementations into gaitlib state dicts.

Sources and what their state dicts look like (key names and shapes read from the reference
code; nothing of it is used here but the facts):

* ``"opengait"`` (github.com/ShiqiYu/OpenGait): a checkpoint is ``{"model": state_dict,
  "optimizer": ..., "scheduler": ..., "iteration": N}``.  GaitSet's and GaitGL's state dicts
  list the same tensors as gaitlib's, in the same registration order and shape for shape, so
  they are paired in order.  GaitPart's backbone and head pair in order too; its temporal
  feature aggregator holds 16 per-part ``Conv1d`` pairs for each of the two micro-motion
  template builders (``TFA.pooling_func.conv1d3x1.{part}.{0,2}.conv.weight`` and
  ``conv1d3x3``), which gaitlib runs as one grouped conv each: the 16 kernels stack in part
  order along the output channels.  CASIA-B and OU-MVLP configurations are told apart by the
  tensors' shapes.
* ``"cstl-official"`` (github.com/OliverHxh/CSTL): the encoder's state dict saved as is (under
  ``nn.DataParallel``, hence ``module.`` prefixes).  Its names map one to one onto gaitlib's
  except SSFL's 32 (K) per-part ``BatchNorm1d(128)``, which concatenate in part order into
  gaitlib's one ``BatchNorm1d(K*128)`` (the same per-channel statistics; gaitlib's part-major
  channel layout puts part k at channels ``k*128 .. k*128+127``).

Every conversion checks that each reference tensor is used exactly once and lands on a gaitlib
tensor of the right shape; the first tensor that does not fit is named in the error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

SOURCES: dict[str, tuple[str, ...]] = {
    "opengait": ("gaitset", "gaitpart", "gaitgl"),
    "cstl-official": ("cstl",),
}

# OpenGait's two published GaitPart backbones, told apart by their conv widths
# (configs/gaitpart/gaitpart.yaml and gaitpart_OUMVLP.yaml); focal-conv halvings are not in
# the state dict, so they come from the config that produced each width sequence.
_GAITPART_CONFIGS: dict[tuple[int, ...], tuple[str, dict[str, Any]]] = {
    (32, 32, 64, 64, 128, 128): ("casia-b", {}),
    (32, 32, 64, 64, 128, 128, 256, 256): ("oumvlp", {
        "channels": (32, 64, 128, 256), "halving": (0, 0, 3, 3), "pools": (1, 2),
        "out_channels": 256}),
}


class ConversionError(ValueError):
    """A reference checkpoint does not fit the requested gaitlib model."""


@dataclass
class Conversion:
    """A converted checkpoint: the gaitlib model to build and the state dict to load into it.

    ``mapping`` lists, for every gaitlib tensor, the reference tensors it was made from.
    """

    source: str
    model: str
    variant: str
    options: dict[str, Any]
    state: dict[str, Tensor]
    mapping: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    iteration: int = 0

    def build(self) -> torch.nn.Module:
        """The gaitlib model with the converted weights loaded (strict), in eval mode."""
        from gaitlib.models import build

        net = build(self.model, **self.options)
        net.load_state_dict(self.state, strict=True)
        return net.eval()


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, Tensor], int]:
    """The model state dict in a reference checkpoint file and its iteration (0 if unknown).

    Loads with ``weights_only=True`` (a checkpoint cannot run code); accepts OpenGait's
    ``{"model": state_dict, ...}`` and a bare state dict; strips ``module.`` prefixes left by
    ``nn.DataParallel`` / DDP.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or unsafe files
        detail = (str(err).strip().splitlines() or [""])[0][:200]
        raise ConversionError(f"{path} cannot be read as a weights-only torch checkpoint "
                              f"({type(err).__name__}: {detail})") from err
    return unwrap(payload, str(path))


def unwrap(payload: Any, name: str = "checkpoint") -> tuple[dict[str, Tensor], int]:
    """``(state_dict, iteration)`` from a loaded checkpoint object (see :func:`read_state_dict`)."""
    iteration = 0
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        iteration = int(payload.get("iteration", 0) or 0)
        payload = payload["model"]
    if not isinstance(payload, dict) or not payload or \
            not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in payload.items()):
        raise ConversionError(f"{name} holds no model state dict (expected a mapping of tensor "
                              "names to tensors, or OpenGait's {'model': state_dict, ...})")
    state = {}
    for key, value in payload.items():
        while key.startswith("module."):
            key = key[len("module."):]
        state[key] = value
    return state, iteration


def _target(model: str, options: dict[str, Any]) -> dict[str, torch.Size]:
    """Names and shapes of the gaitlib model's state dict (built on the meta device: no memory)."""
    from gaitlib.models import build

    with torch.device("meta"):
        net = build(model, **options)
    return {k: v.shape for k, v in net.state_dict().items()}


def _shape(t: Tensor | torch.Size) -> tuple[int, ...]:
    return tuple(t.shape if isinstance(t, Tensor) else t)


class _Plan:
    """Reference tensors -> gaitlib tensors, checked as it is built."""

    def __init__(self, source: str, model: str, variant: str, ref: dict[str, Tensor],
                 target: dict[str, torch.Size]):
        self.what = f"{source} {model} ({variant})"
        self.ref, self.target = ref, target
        self.used: set[str] = set()
        self.state: dict[str, Tensor] = {}
        self.mapping: list[tuple[tuple[str, ...], str]] = []

    def _take(self, key: str) -> Tensor:
        if key not in self.ref:
            raise ConversionError(f"{self.what}: the checkpoint lacks tensor {key!r}")
        if key in self.used:
            raise ConversionError(f"{self.what}: tensor {key!r} mapped twice")
        self.used.add(key)
        return self.ref[key]

    def put(self, keys: tuple[str, ...], dest: str,
            combine: Callable[[list[Tensor]], Tensor] | None = None) -> None:
        """gaitlib tensor ``dest`` from reference ``keys`` (one key: copied as is)."""
        parts = [self._take(k) for k in keys]
        if dest not in self.target:
            raise ConversionError(f"{self.what}: gaitlib has no tensor {dest!r} "
                                  f"(for {keys[0]!r})")
        want = _shape(self.target[dest])
        if combine is not None:
            shapes = {_shape(p) for p in parts}
            if len(shapes) != 1:
                bad = next(k for k, p in zip(keys, parts, strict=True)
                           if _shape(p) != _shape(parts[0]))
                raise ConversionError(f"{self.what}: tensor {bad!r} has shape "
                                      f"{_shape(self.ref[bad])}, unlike {keys[0]!r} "
                                      f"{_shape(parts[0])}")
        value = parts[0] if combine is None else combine(parts)
        if _shape(value) != want:
            raise ConversionError(
                f"{self.what}: tensor {keys[0]!r} has shape {_shape(parts[0])}; gaitlib's "
                f"{dest!r} needs {want}" + (f" from {len(keys)} such tensors" if combine else "")
                + " (a checkpoint of another model or configuration?)")
        self.state[dest] = value
        self.mapping.append((tuple(keys), dest))

    def in_order(self, ref_keys: list[str], dest_keys: list[str]) -> None:
        """Pair two lists of tensors in registration order, shape for shape."""
        for i, (r, d) in enumerate(zip(ref_keys, dest_keys, strict=False)):
            if r.rsplit(".", 1)[-1] == "num_batches_tracked" and \
                    d.rsplit(".", 1)[-1] != "num_batches_tracked":
                raise ConversionError(f"{self.what}: tensor {r!r} (#{i}) does not line up with "
                                      f"gaitlib's {d!r}")
            self.put((r,), d)
        if len(ref_keys) > len(dest_keys):
            raise ConversionError(f"{self.what}: unexpected tensor {ref_keys[len(dest_keys)]!r} "
                                  f"(the checkpoint has {len(ref_keys)} tensors here, gaitlib "
                                  f"{len(dest_keys)})")
        if len(ref_keys) < len(dest_keys):
            raise ConversionError(f"{self.what}: the checkpoint ends before gaitlib's "
                                  f"{dest_keys[len(ref_keys)]!r} ({len(ref_keys)} tensors here, "
                                  f"gaitlib needs {len(dest_keys)})")

    def finish(self, source: str, model: str, variant: str, options: dict[str, Any],
               iteration: int) -> Conversion:
        extra = [k for k in self.ref if k not in self.used]
        if extra:
            raise ConversionError(f"{self.what}: unexpected tensor {extra[0]!r} "
                                  f"{_shape(self.ref[extra[0]])} ({len(extra)} unused)")
        missing = [k for k in self.target if k not in self.state]
        if missing:
            raise ConversionError(f"{self.what}: nothing in the checkpoint for gaitlib's "
                                  f"{missing[0]!r}")
        state = {k: self.state[k] for k in self.target}  # gaitlib's order
        return Conversion(source, model, variant, options, state, self.mapping, iteration)


def _need(ref: dict[str, Tensor], key: str, what: str) -> Tensor:
    if key not in ref:
        raise ConversionError(f"{what}: the checkpoint lacks tensor {key!r} (first keys: "
                              f"{', '.join(list(ref)[:3])})")
    return ref[key]


def _gaitset(ref: dict[str, Tensor]) -> tuple[str, dict[str, Any]]:
    convs = [v for k, v in ref.items() if k.endswith(".weight") and v.dim() == 4]
    head = _need(ref, "Head.fc_bin", "opengait gaitset")
    if len(convs) < 6:
        raise ConversionError(f"opengait gaitset: expected GaitSet's 10 convs, found "
                              f"{len(convs)} 4-D weights")
    channels = (convs[0].shape[0], convs[2].shape[0], convs[4].shape[0])
    options = {"channels": channels, "hidden_dim": int(head.shape[-1])}
    variant = {(32, 64, 128): "casia-b", (64, 128, 256): "oumvlp"}.get(channels, "custom")
    return variant, options


def _gaitpart(ref: dict[str, Tensor]) -> tuple[str, dict[str, Any]]:
    widths = tuple(int(v.shape[0]) for k, v in ref.items() if k.startswith("Backbone."))
    if widths not in _GAITPART_CONFIGS:
        raise ConversionError(f"opengait gaitpart: backbone conv widths {widths} are not one of "
                              f"OpenGait's GaitPart configurations "
                              f"({', '.join(str(w) for w in _GAITPART_CONFIGS)})")
    return _GAITPART_CONFIGS[widths]


def _gaitgl(ref: dict[str, Tensor]) -> tuple[str, dict[str, Any]]:
    if any(k.startswith("BNNecks.") for k in ref):
        raise ConversionError("opengait gaitgl: this checkpoint has OpenGait's SeparateBNNecks "
                              "head (the GREW configuration); gaitlib imports GaitGL's original "
                              "head (Bn + Head1) only")
    head1 = _need(ref, "Head1.fc_bin", "opengait gaitgl")
    variant = "oumvlp" if "conv3d.2.conv3d.weight" in ref else "casia-b"
    return variant, {"variant": variant, "num_classes": int(head1.shape[-1])}


def _opengait(model: str, ref: dict[str, Tensor], iteration: int) -> Conversion:
    variant, options = {"gaitset": _gaitset, "gaitpart": _gaitpart, "gaitgl": _gaitgl}[model](ref)
    target = _target(model, options)
    plan = _Plan("opengait", model, variant, ref, target)
    if model != "gaitpart":
        plan.in_order(list(ref), list(target))
        return plan.finish("opengait", model, variant, options, iteration)
    plan.in_order([k for k in ref if k.startswith("Backbone.")],
                  [k for k in target if k.startswith("backbone.")])
    parts = target["head.weight"][0]
    for ref_name, ours in (("conv1d3x1", "mtb1"), ("conv1d3x3", "mtb2")):
        for index, layer in ((0, 0), (2, 1)):  # Sequential(conv, LeakyReLU, conv)
            keys = tuple(f"TFA.pooling_func.{ref_name}.{p}.{index}.conv.weight"
                         for p in range(parts))
            plan.put(keys, f"tfa.{ours}.{layer}.weight", lambda ts: torch.cat(ts, dim=0))
    plan.put(("Head.fc_bin",), "head.weight")
    return plan.finish("opengait", model, variant, options, iteration)


_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _cstl(ref: dict[str, Tensor], iteration: int) -> Conversion:
    what = "cstl-official cstl"
    fc_bin = _need(ref, "fc_bin", what)
    classifier = _need(ref, "salient_learning.fc", what)
    parts, hidden = int(fc_bin.shape[0]), int(fc_bin.shape[-1])
    if hidden != 256:
        raise ConversionError(f"{what}: tensor 'fc_bin' has output width {hidden}; the authors' "
                              "CASIA-B network (the only one they publish) has 256")
    options = {"resolution": 2 * parts, "num_classes": int(classifier.shape[-1])}
    variant = f"casia-b {2 * parts}x{2 * parts * 11 // 16}"
    plan = _Plan("cstl-official", "cstl", variant, ref, _target("cstl", options))
    # The backbone: SetBlock(BasicConv2d) x 4 -> our Sequential(conv, act, conv, act, pool, ...)
    for i, dest in zip(range(1, 5), (0, 2, 5, 7), strict=True):
        plan.put((f"conv2d_{i}.forward_block.conv2d.weight",), f"backbone.module.{dest}.weight")
    renames = (("multi_scale.score.", "mste.long_term."),
               ("multi_scale.short_term.", "mste.short_term."),
               ("adaptive_aggregation.in_conv.", "ata.relation.0."),
               ("adaptive_aggregation.out_conv.", "ata.relation.2."),
               ("salient_learning.part_score.", "ssfl.part_score."),
               ("salient_learning.decay_channel.", "ssfl.project."))
    for key in ref:
        for old, new in renames:
            if key.startswith(old):
                plan.put((key,), new + key[len(old):])
    plan.put(("salient_learning.fc",), "ssfl.classifier")
    plan.put(("fc_bin",), "fc.weight")
    for name in _BN:  # SSFL's per-part BatchNorm1d(128) x K -> one BatchNorm1d(K*128)
        keys = tuple(f"salient_learning.bn.{p}.{name}" for p in range(parts))
        if name == "num_batches_tracked":  # one counter per BN, all equal after training
            plan.put(keys, "ssfl.bn.num_batches_tracked", lambda ts: torch.stack(ts).max())
        else:
            plan.put(keys, f"ssfl.bn.{name}", lambda ts: torch.cat(ts, dim=0))
    return plan.finish("cstl-official", "cstl", variant, options, iteration)


def convert_state(source: str, model: str, state: dict[str, Tensor],
                  iteration: int = 0) -> Conversion:
    """Convert a reference state dict (``module.`` prefixes already stripped, see
    :func:`unwrap`) of ``model`` from ``source`` into a gaitlib :class:`Conversion`.

    Raises :class:`ConversionError` naming the first tensor that does not fit.
    """
    if source not in SOURCES:
        raise ConversionError(f"unknown source {source!r}; valid: {', '.join(SOURCES)}")
    if model not in SOURCES[source]:
        raise ConversionError(f"{source} checkpoints convert to {', '.join(SOURCES[source])}, "
                              f"not {model!r}")
    if source == "opengait":
        return _opengait(model, state, iteration)
    return _cstl(state, iteration)


def convert_file(source: str, model: str, path: str | os.PathLike) -> Conversion:
    """:func:`read_state_dict` + :func:`convert_state`."""
    state, iteration = read_state_dict(path)
    return convert_state(source, model, state, iteration)
