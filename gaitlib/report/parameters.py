"""Checks of a notebook's papermill parameters, run first thing in its first code cell.

A bad value (``papermill -p profile huge``) then fails in well under a second with the valid
values, instead of minutes later deep inside a training run.  This module imports nothing heavy
(no torch, pandas or matplotlib) for that reason.
"""

from __future__ import annotations

import os
from pathlib import Path

from gaitlib.runs.cache import DATASETS, store_path
from gaitlib.training.recipes import PROFILES

DEVICES = ("auto", "cpu", "cuda")


class ParameterError(ValueError):
    """A notebook parameter has a value the study cannot run with."""


def check_parameters(profile: str | None = None, data: str | None = None,
                     data_root: str | os.PathLike | None = None, device: str | None = None,
                     seed: int | None = None, **paths: str | os.PathLike) -> None:
    """Raise :class:`ParameterError` naming the parameter and its valid values for the first bad
    one; parameters left at None are not checked.

    ``profile``, ``data`` and ``device`` must be one of their names and ``seed`` an integer;
    with a real dataset (``data`` 'casia-b' or 'oumvlp') and ``data_root``, its imported store
    must be there.  Other keyword arguments (``runs_dir=``, ``results_dir=``...) must be paths.
    """
    for name, value, valid in (("profile", profile, PROFILES), ("data", data, DATASETS),
                               ("device", device, DEVICES)):
        if value is not None and value not in valid:
            raise ParameterError(f"parameter {name}={value!r} is not valid; valid: {', '.join(valid)}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ParameterError(f"parameter seed={seed!r} is not valid; expected an integer")
    for name, value in {"data_root": data_root, **paths}.items():
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ParameterError(f"parameter {name}={value!r} is not valid; expected a path")
    if data in ("casia-b", "oumvlp") and data_root is not None:
        store = store_path(data, data_root, profile or "cpu", data)
        if not (Path(store) / "meta.json").is_file():
            raise ParameterError(f"parameter data={data!r}: no imported store at {store}; import "
                                 f"your copy with `gaitlib data import {data} SRC --out {store}` "
                                 f"or set data_root")
