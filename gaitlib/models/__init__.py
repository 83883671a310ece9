"""The model zoo: ``build(name, **options)``, ``available()``, ``count_parameters(model)``.

Every model takes silhouettes ``(n, frames, h, w)`` in [0, 1] (or a packed
``(1, sum(lengths), h, w)`` with ``lengths``) and returns a dict with ``embedding``
``(n, c, parts)`` and, in training mode, whatever else its losses need (e.g. ``logits``).
Models never compute losses; see ``gaitlib.losses``.

The built-in models are registered by import path, so listing them (``available()``, the command
line's ``--model`` choices) imports neither the models nor torch; ``register`` adds your own
(see the book's getting-started page).
"""

from gaitlib._lazy import lazy_module_attributes

from .registry import BUILDERS, available, build, cheap_options, options, register

# Explicit registration, one line per model (imported on first use).
register("gaitset", "gaitlib.models.gaitset:GaitSet")
register("gaitpart", "gaitlib.models.gaitpart:GaitPart")
register("gaitgl", "gaitlib.models.gaitgl:GaitGL")
register("cstl", "gaitlib.models.cstl:CSTL")
register("gaitmm", "gaitlib.models.gaitmm:GaitMM")
register("local3d", "gaitlib.models.local3d:Local3DCNN")

__all__ = ["BUILDERS", "CSTL", "GaitGL", "GaitMM", "GaitPart", "GaitSet", "Local3DCNN", "available",
           "build", "cheap_options", "count_parameters", "options", "register"]

__getattr__, __dir__ = lazy_module_attributes(
    __name__, globals(),
    {"CSTL": "cstl", "GaitGL": "gaitgl", "GaitMM": "gaitmm", "GaitPart": "gaitpart",
     "GaitSet": "gaitset", "Local3DCNN": "local3d", "count_parameters": "blocks"},
    __all__)
