"""Data: importers, pretreatment, the store, synthetic CASIA-B, splits and sampling."""

import importlib

__all__ = ["Store", "StoreError", "StoreWriter"]


def __getattr__(name: str):
    # The store needs pandas: imported on first use, so that the light submodules (splits) and
    # the command line's start-up do not pay for it.
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.store"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
