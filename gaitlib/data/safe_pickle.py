"""Load a pickled numpy array without letting the pickle run code.

Unpickling calls whatever global a pickle names, so a pickle from an untrusted copy of a
dataset (OpenGait's ``.pkl`` trees) could run arbitrary code. :class:`NumpyOnlyUnpickler`
resolves only the few globals a pickled ``ndarray`` needs, mapped to the running numpy's
own objects, so pickles written under numpy 1.x (``numpy.core...``) and 2.x
(``numpy._core...``) both load without importing the module the pickle names. Anything
else is refused before it is called.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global outside the numpy-array allow-list, or holds no plain array."""


_PROBE = np.zeros(1, dtype=np.uint8)
_RECONSTRUCT = _PROBE.__reduce__()[0]  # numpy's ndarray reconstruction function (protocols 0-4)
_FROMBUFFER = _PROBE.__reduce_ex__(5)[0]  # its protocol-5 counterpart


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Protocols 0-2 store bytes as ``_codecs.encode(text, 'latin1')``; admit only that use."""
    if str(encoding).lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _RECONSTRUCT for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _FROMBUFFER for core in ("core", "_core")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """A restricted unpickler: only numpy's array-reconstruction globals are resolved."""

    def __init__(self, file, source: str = "<pickle>"):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"{self.source}: refused global {module}.{name} "
                                    "(only numpy arrays are accepted)") from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: refused persistent id {pid!r}")


def load_numpy_pickle(path: str | os.PathLike) -> np.ndarray:
    """Load one pickled ``ndarray`` from ``path`` through the restricted unpickler.

    Raises :class:`UnsafePickleError` if the pickle names any other global or its object is
    not a plain (non-object) ndarray; ordinary unpickling errors (truncated files, ...)
    propagate as they are.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            obj = NumpyOnlyUnpickler(f, source=str(path)).load()  # restricted: numpy globals only
        except UnsafePickleError as err:
            if str(path) in str(err):
                raise
            raise UnsafePickleError(f"{path}: {err}") from None
    if type(obj) is not np.ndarray:
        raise UnsafePickleError(f"{path}: holds a {type(obj).__name__}, not a numpy array")
    if obj.dtype.hasobject:
        raise UnsafePickleError(f"{path}: object arrays are refused (dtype {obj.dtype})")
    return obj
