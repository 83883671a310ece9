"""Module attributes imported on first use (PEP 562), so light imports stay light.

The command line's start-up (`gaitlib --help`) must not pay for torch or pandas; packages whose
public names live in heavy submodules expose them through :func:`lazy_module_attributes`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_module_attributes(package: str, module_globals: dict[str, Any], where: Mapping[str, str],
                           public: Iterable[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``where`` maps an attribute name to the
    submodule (relative to ``package``) that defines it; the first access imports it and caches
    the value in ``module_globals``."""
    public = list(public)

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        module_globals[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(module_globals) | set(public))

    return __getattr__, __dir__
