"""Dataset labels, the train/test splits the papers use, and a run's subjects under them."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from gaitlib.errors import ConfigError

_SUBJECT = re.compile(r"[^\s,-]+")
_RANGE = re.compile(r"(\d+)-(\d+)")

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


# The subjects each split names: a split of one dataset means nothing on a store of another.
SPLIT_DATA = {"casia-b-lt": "casia-b", "casia-b-lt-73": "casia-b", "oumvlp": "oumvlp",
              "synthetic": "synthetic"}


def expand_subjects(items: list[str], key: str = "subjects") -> list[str]:
    """``["001-003", "010"]`` -> ``["001", "002", "003", "010"]`` (zero padding kept); a range
    must run upwards (``008-005`` would select nothing) and an item be a subject id."""
    out: list[str] = []
    for item in items:
        item = str(item).strip()
        if m := _RANGE.fullmatch(item):
            first, last = int(m[1]), int(m[2])
            if first > last:
                raise ConfigError(f"{key}: range {item!r} runs backwards; write "
                                  f"{m[2]}-{m[1]}")
            out += [f"{i:0{len(m[1])}d}" for i in range(first, last + 1)]
        elif _SUBJECT.fullmatch(item):
            out.append(item)
        else:
            raise ConfigError(f"{key}: {item!r} is neither a subject id nor a range of numeric "
                              "ids such as 075-124")
    return out


def check_disjoint(train: list[str], test: list[str], how: str) -> None:
    """Training and test subjects must not overlap: a test subject seen in training scores its
    own memorised sequences, not recognition of a new person."""
    shared = sorted(set(train) & set(test))
    if shared:
        shown = ", ".join(shared[:8]) + (f" and {len(shared) - 8} more" if len(shared) > 8 else "")
        raise ConfigError(f"{how}: {len(shared)} subject(s) are both training and test subjects "
                          f"({shown}); the protocols score subjects unseen in training, so the "
                          "two sets must not overlap")


def select_subjects(store, split: str = "", train_subjects=(), test_subjects=(),
                     max_test: int = 0) -> tuple[list[str], list[str]]:
    """Training and test subjects of a run on ``store`` (the config's ``data.split``,
    ``data.train_subjects``, ``data.test_subjects`` and ``eval.max_subjects``): the explicit
    lists (every subject named must be in the store), else the split's subjects that the store
    holds (``split`` empty: the store's own); the two sets never overlap; ``max_test`` > 0 keeps
    the first that many test subjects."""
    present = set(store.subjects.tolist())
    named = {"train_subjects": expand_subjects(list(train_subjects), "data.train_subjects"),
             "test_subjects": expand_subjects(list(test_subjects), "data.test_subjects")}
    for key, subjects in named.items():
        missing = [s for s in subjects if s not in present]
        if missing:
            held = sorted(present)
            raise ConfigError(f"data.{key}: {len(missing)} subject(s) not in the store "
                              f"{store.path}: {', '.join(missing[:8])}"
                              + (" ..." if len(missing) > 8 else "")
                              + f" (it holds {len(held)}: {held[0]} .. {held[-1]})")
    train, test = named["train_subjects"], named["test_subjects"]
    if train:
        test = test or sorted(present - set(train))
    else:
        name = split or default_split(store.dataset)
        own = SPLIT_DATA[default_split(store.dataset)]
        if SPLIT_DATA.get(name, own) != own:
            # e.g. a CASIA-B recipe's split on a synthetic store: its subjects are other people
            raise ConfigError(f"data.split={name!r} is not a split of the store's "
                              f"{store.dataset!r} data; set data.split= (empty: the store's own "
                              "split)")
        chosen = split_for(name, store.subjects)
        train = [s for s in chosen.train if s in present]
        test = test or sorted(s for s in chosen.test if s in present)
        check_disjoint(train, test, f"data.test_subjects and the training subjects of split "
                                    f"{name!r}")
    if not train:
        raise ValueError(f"{store.path}: no training subject of the split is in the store "
                         f"(set data.split or data.train_subjects)")
    if max_test > 0:
        test = test[:max_test]
    return train, test
