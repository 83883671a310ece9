"""The scale a page's numbers were made at, said above its first table, and the floor under them.

A cheap-profile run trains for 60 (cpu) to 1,000 (cpu-long) iterations at half resolution and
is tested on part of each test sequence; a reader needs those facts before the numbers, not in a
note at the end.
:func:`scale_note` states, from the runs themselves: iterations, batch, learning rate, the input
size that actually ran (a row the paper runs at 64x44 ran at 32x22 at the cpu profile), the
training subjects, the test subjects and frames per sequence actually scored, and chance.
:func:`baselines` gives the two rows every comparison table carries: chance (a random pick
among the gallery subjects) and the training-free GEI baseline on the same test set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache

import pandas as pd

from gaitlib.runs.cache import Run

CHANCE = "chance (random gallery pick)"
GEI = "GEI, no training (same test set)"

__all__ = ["CHANCE", "GEI", "RunScale", "baselines", "floor_sentence", "input_size", "run_scale",
           "scale_note"]


def input_size(height: int) -> str:
    """The model input of frames ``height`` pixels high: 64 -> '64x44', 32 -> '32x22'."""
    return f"{height}x{height * 11 // 16}"


@dataclass(frozen=True)
class RunScale:
    """What one run actually did (see :func:`run_scale`); ``test_frames`` 0 means every frame."""

    profile: str
    iterations: int
    p: int
    k: int
    clip_frames: int
    optimizer: str
    lr: float
    paper_input: str
    input: str
    train_subjects: int
    test_subjects: int
    all_test_subjects: int
    test_frames: int

    @property
    def chance(self) -> float:
        """Rank-1 (%) of a random pick among the gallery subjects of one view."""
        return 100.0 / self.test_subjects if self.test_subjects else float("nan")


def run_scale(run: Run) -> RunScale:
    """The scale of ``run``, from its config and its evaluation."""
    from gaitlib.data.store import Store
    from gaitlib.training.trainer import resolve_subjects

    c = run.config
    store = Store(c.data.store)
    train, test = resolve_subjects(c, store)
    _, every = resolve_subjects(replace(c, eval=replace(c.eval, max_subjects=0)), store)
    scored = int(run.evaluation.get("n_subjects") or len(test))
    height = c.data.resolution or int(store.meta["frame_shape"][0])
    paper = int(run.spec.option_dict.get("resolution", 64))
    return RunScale(run.spec.profile, c.schedule.iterations, c.sampling.p, c.sampling.k,
                    c.sampling.frames, c.optimizer.name, c.optimizer.lr, input_size(paper),
                    input_size(height), len(train), scored, len(every), c.eval.max_frames)


def _one(values) -> str:
    found = list(dict.fromkeys(values))
    return ", ".join(str(v) for v in found)


def scale_note(runs: dict[str, Run]) -> str:
    """Markdown for the top of a page: the scale of its runs (see the module docstring), with
    the devices they trained on."""
    if not runs:
        return ""
    scales = [run_scale(r) for r in runs.values()]
    first = scales[0]
    inputs = list(dict.fromkeys((s.paper_input, s.input) for s in scales))
    ran = "; ".join(f"{here}" + (f" (the paper's {paper})" if paper != here else "")
                    for paper, here in inputs)
    tested = (f"all {first.all_test_subjects} test subjects" if first.test_subjects >= first.all_test_subjects
              else f"the first {_one(s.test_subjects for s in scales)} of the "
                   f"{first.all_test_subjects} test subjects")
    budgets = {}  # iterations -> the rows trained that long (a main table mixes model families)
    for key, s in zip(runs, scales, strict=True):
        budgets.setdefault(s.iterations, []).append(key)
    iterations = " / ".join(f"{n:,}" for n in budgets) + " iterations" + (
        "" if len(budgets) == 1 else f" ({' / '.join(', '.join(k) for k in budgets.values())})")
    frames = "every frame of each sequence" if not first.test_frames else \
        f"the first {_one(s.test_frames for s in scales)} frames of each sequence"
    text = (f"**Scale of this page's runs** ({_one(s.profile for s in scales)} profile): "
            f"{iterations} of (P, K) = "
            f"{_one(f'({s.p}, {s.k})' for s in scales)} batches of "
            f"{_one(s.clip_frames for s in scales)}-frame clips, {first.optimizer.capitalize()} at "
            f"learning rate {_one(f'{s.lr:g}' for s in scales)}; input {ran}; trained on "
            f"{_one(s.train_subjects for s in scales)} subjects; scored on {tested}, "
            f"{frames}. Chance, a random pick among the gallery subjects, is "
            f"{_one(f'{s.chance:.1f}' for s in scales)}%.")
    if first.profile != "paper":
        text += (" The papers train for 40k-250k iterations on full-size inputs and test on "
                 "every frame of all test subjects: these numbers compare the methods at this "
                 "scale, they do not estimate the papers'.")
    devices = trained_on(runs)
    return text + (f" {devices}" if devices else "")


@cache
def _gei(store: str, subjects: tuple[str, ...], max_frames: int, bootstrap: int, seed: int):
    from gaitlib.data.store import Store
    from gaitlib.evaluation.gei import gei_baseline

    return gei_baseline(Store(store), subjects=list(subjects), max_frames=max_frames,
                        bootstrap=bootstrap, seed=seed)


def baselines(runs: dict[str, Run]) -> pd.DataFrame:
    """The floor under a page's table: one line per baseline (:data:`CHANCE`, :data:`GEI`) and
    condition (the rows of the runs' protocol), with ``reproduced``, ``ci_low`` and ``ci_high``, on
    the test subjects and frames the page's first run was scored on."""
    from gaitlib.training.trainer import resolve_subjects

    run = next(iter(runs.values()))
    store_path = run.config.data.store
    from gaitlib.data.store import Store

    _, test = resolve_subjects(run.config, Store(store_path))
    gei = _gei(store_path, tuple(test), run.config.eval.max_frames, run.config.eval.bootstrap,
               run.config.seed)
    chance = 100.0 / len(test)
    lines = []
    for cond in gei.table.index:
        lines.append({"method": CHANCE, "condition": cond, "reproduced": chance,
                      "ci_low": math.nan, "ci_high": math.nan})
    for cond in gei.table.index:
        low, high = gei.ci.loc[cond, "low"], gei.ci.loc[cond, "high"]
        lines.append({"method": GEI, "condition": cond, "reproduced": float(gei.table.loc[cond, "Mean"]),
                      "ci_low": float(low), "ci_high": float(high)})
    return pd.DataFrame(lines)


def floor_sentence(runs: dict[str, Run]) -> str:
    """:func:`baselines` in one sentence, for pages whose table or figure has no room for them."""
    lines = baselines(runs)
    chance = lines[lines["method"] == CHANCE]["reproduced"].iloc[0]
    gei = lines[lines["method"] == GEI].set_index("condition")["reproduced"]
    parts = ", ".join(f"{c} {v:.1f}" for c, v in gei.items())
    return (f"On this test set chance is {chance:.1f}% and the training-free GEI baseline reaches "
            f"{parts} (mean {gei.mean():.1f}).")


def trained_on(runs: dict[str, Run]) -> str:
    """Markdown: the device(s) the page's runs actually trained on (from their environment
    records), which need not be the ``device`` the notebook was asked for."""
    devices: dict[str, int] = {}
    for run in runs.values():
        for device in run.devices():
            devices[device] = devices.get(device, 0) + 1
    if not devices:
        return ""
    n = len(runs)
    what = "its run" if n == 1 else f"its {n} runs"
    listing = ", ".join(f"`{d}`" + (f" ({c} of {n})" if len(devices) > 1 else "")
                        for d, c in sorted(devices.items()))
    return f"This page's numbers come from {what}, trained on {listing}." + _precision_note(runs)


def _precision_note(runs: dict[str, Run]) -> str:
    """A sentence when runs trained in another precision than their recipe's (``gaitlib
    reproduce --precision``), else ''."""
    from gaitlib.training import recipe

    changed: dict[str, int] = {}
    for run in runs.values():
        spec = run.spec
        own = recipe(spec.model, spec.profile, "oumvlp" if spec.shape == "oumvlp" else "casia-b",
                     options=spec.option_dict).precision
        if run.config.precision != own:
            key = f"{run.config.precision} (recipe: {own})"
            changed[key] = changed.get(key, 0) + 1
    if not changed:
        return ""
    listing = ", ".join(f"{c} in {k}" for k, c in sorted(changed.items()))
    return f" Trained in another precision than the recipes' (`--precision`): {listing}."
