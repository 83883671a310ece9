"""Dataset labels and the train/test splits the papers use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CASIA_B_VIEWS = tuple(f"{v:03d}" for v in range(0, 181, 18))
CASIA_B_CONDITIONS = (*(f"nm-{i:02d}" for i in range(1, 7)), "bg-01", "bg-02", "cl-01", "cl-02")
OUMVLP_VIEWS = tuple(f"{v:03d}" for v in (*range(0, 91, 15), *range(180, 271, 15)))
OUMVLP_CONDITIONS = ("00", "01")


@dataclass(frozen=True)
class Split:
    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]


def _ids(first: int, last: int, width: int) -> tuple[str, ...]:
    return tuple(f"{i:0{width}d}" for i in range(first, last + 1))


def casia_b_split(drop_005: bool = False) -> Split:
    """Large-sample training (LT): 001-074 train, 075-124 test.

    ``drop_005=True`` gives the 73/50 variant of CSTL's and 3D Local's code, which drop
    subject 005 (several of its sequences are empty after pretreatment).
    """
    train = tuple(s for s in _ids(1, 74, 3) if not (drop_005 and s == "005"))
    return Split("casia-b-lt-73" if drop_005 else "casia-b-lt", train, _ids(75, 124, 3))


def oumvlp_split() -> Split:
    """OU-MVLP: the first 5153 subjects train, the remaining 5154 test."""
    return Split("oumvlp", _ids(1, 5153, 5), _ids(5154, 10307, 5))


def synthetic_split(subjects) -> Split:
    """The synthetic set: the first half of its subjects (rounded up) train, the rest test."""
    ordered = tuple(sorted(str(s) for s in subjects))
    n_train = (len(ordered) + 1) // 2
    return Split("synthetic", ordered[:n_train], ordered[n_train:])


SPLITS = {
    "casia-b-lt": lambda subjects=None: casia_b_split(False),
    "casia-b-lt-73": lambda subjects=None: casia_b_split(True),
    "oumvlp": lambda subjects=None: oumvlp_split(),
    "synthetic": lambda subjects=None: synthetic_split(subjects),
}


def split_for(name: str, subjects=None) -> Split:
    """A split by name; ``subjects`` (the store's subject ids) is needed for ``synthetic``."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
    if name == "synthetic" and subjects is None:
        raise ValueError("the synthetic split needs the store's subject ids")
    return SPLITS[name](None if subjects is None else np.unique(np.asarray(subjects, dtype=str)))


#: The datasets a store can hold, each with the split it uses unless told otherwise.
DEFAULT_SPLITS = {"casia-b": "casia-b-lt", "oumvlp": "oumvlp", "synthetic": "synthetic",
                  "synthetic-oumvlp": "synthetic"}
DATASETS = tuple(DEFAULT_SPLITS)


def default_split(dataset: str) -> str:
    """The split a store's dataset uses unless told otherwise."""
    if dataset not in DEFAULT_SPLITS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    return DEFAULT_SPLITS[dataset]
