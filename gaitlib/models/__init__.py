"""The model zoo: ``build(name, **options)``, ``available()``, ``count_parameters(model)``.

Every model takes silhouettes ``(n, frames, h, w)`` in [0, 1] (or a packed
``(1, sum(lengths), h, w)`` with ``lengths``) and returns a dict with ``embedding``
``(n, c, parts)`` and, in training mode, whatever else its losses need (e.g. ``logits``).
Models never compute losses; see ``gaitlib.losses``.
"""

from .cstl import CSTL
from .gaitgl import GaitGL
from .gaitmm import GaitMM
from .gaitpart import GaitPart
from .gaitset import GaitSet
from .local3d import Local3DCNN
from .registry import BUILDERS, available, build, count_parameters, options, register

# Explicit registration, one line per model.
register("gaitset", GaitSet)
register("gaitpart", GaitPart)
register("gaitgl", GaitGL)
register("cstl", CSTL)
register("gaitmm", GaitMM)
register("local3d", Local3DCNN)

__all__ = ["BUILDERS", "GaitGL", "GaitPart", "GaitSet", "available", "build",
           "count_parameters", "options", "register"]
