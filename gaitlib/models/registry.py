"""Model registry: a plain dict from name to builder, filled explicitly by ``__init__``.

A builder is any callable with explicit keyword arguments that returns an ``nn.Module``
(the model classes themselves qualify), or the import path of one, ``'package.module:Name'``,
imported on first use: listing the models (``gaitlib --help``) imports no model and no torch.
Options are checked against the builder's signature before the call, so a typo in a config
fails with the list of valid options instead of a bare ``TypeError`` from deep inside a
constructor.

Models of other packages join without editing gaitlib: call :func:`register` before use, or,
for the command line too, declare an entry point in the group ``gaitlib.models`` (name = the
model's name, value = its import path), which :func:`available` lists without importing it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

Builder = Callable[..., "nn.Module"]
ENTRY_POINT_GROUP = "gaitlib.models"

BUILDERS: dict[str, Builder | str] = {}

__all__ = ["BUILDERS", "ENTRY_POINT_GROUP", "available", "build", "cheap_options", "options",
           "register"]


def register(name: str, builder: Builder | str) -> None:
    """Add ``builder`` (a callable, or its import path ``'module:attr'``) under ``name``;
    registering a name twice is an error."""
    if name in BUILDERS:
        raise ValueError(f"model {name!r} is already registered")
    if isinstance(builder, str) and ":" not in builder:
        raise ValueError(f"a builder's import path reads 'package.module:Name', got {builder!r}")
    BUILDERS[name] = builder


def _entry_points() -> None:
    """Register the models other installed packages declare (group ``gaitlib.models``)."""
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in BUILDERS:
            BUILDERS[point.name] = point.value


def available() -> list[str]:
    """Registered model names, sorted (installed packages' entry points included)."""
    _entry_points()
    return sorted(BUILDERS)


def _builder(name: str) -> Builder:
    if name not in BUILDERS:
        _entry_points()
    try:
        builder = BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(available())}") from None
    if isinstance(builder, str):  # an import path: import it once
        module, _, attr = builder.partition(":")
        builder = getattr(importlib.import_module(module), attr)
        BUILDERS[name] = builder
    return builder


def options(name: str) -> dict[str, Any]:
    """The options ``name`` accepts, with their defaults (``inspect.Parameter.empty`` if
    required)."""
    params = inspect.signature(_builder(name)).parameters.values()
    return {p.name: p.default for p in params
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def build(name: str, **opts: Any) -> nn.Module:
    """Build model ``name`` with keyword ``opts``; unknown names and options raise with the
    valid choices listed (``ValueError`` for the name, ``TypeError`` for options)."""
    builder = _builder(name)
    valid = options(name)
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(unknown)} for model {name!r}; "
            f"valid: {', '.join(valid) or '(none)'}")
    return builder(**opts)


def cheap_options(name: str, opts: dict) -> dict:
    """Model ``name``'s build options ``opts`` as the cheap profiles shrink them (half the widths
    and strips), from the model's own ``cheap_options`` classmethod."""
    builder = _builder(name)
    shrink = getattr(builder, "cheap_options", None)
    if shrink is None:
        raise ValueError(f"model {name!r} declares no cheap_options(options) classmethod, so the "
                         "cheap profiles cannot shrink it; add one (see "
                         "gaitlib.models.blocks.halved_options) or train it with --profile paper")
    return shrink(dict(opts))
