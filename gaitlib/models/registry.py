"""Model registry: a plain dict from name to builder, filled explicitly by ``__init__``.

A builder is any callable with explicit keyword arguments that returns an ``nn.Module``
(the model classes themselves qualify).  Options are checked against the builder's
signature before the call, so a typo in a config fails with the list of valid options
instead of a bare ``TypeError`` from deep inside a constructor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from .blocks import count_parameters

Builder = Callable[..., nn.Module]

BUILDERS: dict[str, Builder] = {}

__all__ = ["BUILDERS", "available", "build", "count_parameters", "options", "register"]


def register(name: str, builder: Builder) -> None:
    """Add ``builder`` under ``name``; registering a name twice is an error."""
    if name in BUILDERS:
        raise ValueError(f"model {name!r} is already registered")
    BUILDERS[name] = builder


def available() -> list[str]:
    """Registered model names, sorted."""
    return sorted(BUILDERS)


def _builder(name: str) -> Builder:
    try:
        return BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(available())}") from None


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
