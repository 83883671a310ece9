"""The paper recipes equal their declared sources (gaitlib/training/recipe_sources.csv), the
sampling options those sources need, and CSTL's number of parts."""

import typing
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from gaitlib.data.sampling import FrameSampling, PKBatchSampler
from gaitlib.training import recipe
from gaitlib.training.config import TrainConfig, apply_overrides, convert, flat_keys, validate
from gaitlib.training.recipes import (
    BOOK_BEGIN,
    BOOK_END,
    PAPER,
    PAPER_OUMVLP,
    RECIPE_KEYS,
    alternative_overrides,
    recipe_sources,
    source_rows,
    sources_markdown,
)

REPO = Path(__file__).resolve().parents[1]
RECIPES = [(m, "casia-b") for m in PAPER] + [(m, "oumvlp") for m in PAPER_OUMVLP]


def _get(config: TrainConfig, key: str):
    """The value and declared type of dotted ``key`` in ``config``."""
    parts = key.split(".")
    if parts[:2] == ["model", "options"]:
        return config.model.options.get(parts[2]), typing.Any
    obj = config
    for name in parts[:-1]:
        obj = getattr(obj, name)
    return getattr(obj, parts[-1]), typing.get_type_hints(type(obj))[parts[-1]]


def test_every_recipe_declares_every_hyperparameter_once_with_a_source():
    valid = set(flat_keys())
    for model, dataset in RECIPES:
        rows = source_rows(model, dataset)
        keys = Counter(r.key for r in rows)
        assert max(keys.values()) == 1, (model, dataset)
        expected = set(RECIPE_KEYS) | ({"model.options.variant"} if dataset == "oumvlp" else set())
        assert set(keys) == expected, (model, dataset, set(keys) ^ expected)
        for r in rows:
            assert r.source.strip(), (model, dataset, r.key)
            assert r.key in valid or r.key.startswith("model.options.")
    assert {(r.model, r.dataset) for r in recipe_sources()} == set(RECIPES)


@pytest.mark.parametrize("model, dataset", RECIPES)
def test_paper_recipe_equals_its_sources_table(model, dataset):
    config = recipe(model, "paper", dataset)
    for row in source_rows(model, dataset):
        value, hint = _get(config, row.key)
        assert value == convert(row.value, hint, row.key), (model, dataset, row.key)


@pytest.mark.parametrize("model, dataset", RECIPES)
def test_the_other_sources_version_is_a_valid_config(model, dataset):
    overrides = alternative_overrides(model, dataset)
    config = apply_overrides(recipe(model, "paper", dataset), overrides)
    validate(config)
    for item in overrides:
        key, value = item.split("=", 1)
        got, hint = _get(config, key)
        assert got == convert(value, hint, key)


def test_resolved_differences():
    gaitset = recipe("gaitset", "paper")
    # GaitSet follows its authors' code whole; OpenGait's SGD recipe is the alternative.
    assert (gaitset.optimizer.name, gaitset.optimizer.lr) == ("adam", 1e-4)
    assert gaitset.schedule.iterations == 80000 and gaitset.schedule.milestones == []
    assert gaitset.data.split == "casia-b-lt-73" and gaitset.sampling.replace and gaitset.sampling.k_replace
    assert "optimizer.name=sgd" in alternative_overrides("gaitset")
    assert "schedule.milestones=[10000, 20000, 30000]" in alternative_overrides("gaitset")
    # Every paper recipe counts an anchor as its own positive, as the reference code does.
    assert all(recipe(m, "paper", d).loss.triplet_self_pairs for m, d in RECIPES)
    # GaitPart: OpenGait's fixed 40-frame window and cyclic padding; 30-40 / repeat as option.
    gaitpart = recipe("gaitpart", "paper")
    assert (gaitpart.sampling.window, gaitpart.sampling.padding) == ((40, 40), "cyclic")
    assert {"sampling.window=(30, 40)", "sampling.padding=repeat"} <= set(alternative_overrides("gaitpart"))
    # CSTL: the paper (GaitPart's sampling, 74 subjects, 100k); the code's version as options.
    cstl = recipe("cstl", "paper")
    assert (cstl.sampling.mode, cstl.data.split) == ("ordered_window", "casia-b-lt")
    assert cstl.schedule.iterations == 100000
    assert set(alternative_overrides("cstl")) == {
        "data.split=casia-b-lt-73", "sampling.k_replace=true", "sampling.mode=ordered",
        "sampling.padding=repeat", "sampling.min_frames=3", "schedule.iterations=150000"}
    # The synthetic store keeps its own split; the cheap profiles keep Adam at 1e-3.
    assert recipe("gaitset", "paper", "synthetic").data.split == ""
    assert recipe("gaitset", "cpu").optimizer.lr == 1e-3
    assert recipe("gaitpart", "cpu").sampling.window == (12, 12)  # a fixed window stays fixed
    assert recipe("local3d", "paper", "oumvlp").model.options == {"variant": "oumvlp"}


def test_book_shows_the_current_sources_table():
    text = (REPO / "book" / "reproduction-notes.md").read_text()
    assert BOOK_BEGIN in text and BOOK_END in text
    shown = text.split(BOOK_BEGIN, 1)[1].split(BOOK_END, 1)[0].strip()
    assert shown == sources_markdown().strip(), \
        "book/reproduction-notes.md is stale: run `python -m gaitlib.training.recipes`"


def test_cyclic_padding_loops_the_sequence_end_to_end():
    rng = np.random.default_rng(0)
    sampling = FrameSampling("ordered", 30, (30, 30), padding="cyclic")
    for _ in range(20):
        idx = sampling.indices(12, rng)
        assert len(idx) == 30
        steps = np.diff(idx)
        # consecutive frames, wrapping from the last frame (11) to the first (0)
        assert set(steps.tolist()) <= {1, -11}
    window = FrameSampling("ordered_window", 30, (40, 40), padding="cyclic")
    idx = window.indices(25, rng)
    assert len(idx) == 30 and set(idx.tolist()) <= set(range(25))
    long = window.indices(100, rng)  # long sequences: 30 sorted frames of one 40-frame window
    assert np.all(np.diff(long) > 0) and long[-1] - long[0] < 40
    with pytest.raises(ValueError, match="padding"):
        FrameSampling("ordered", 30, (30, 30), padding="mirror")


def test_unordered_with_replacement_repeats_frames_of_long_sequences():
    rng = np.random.default_rng(1)
    plain = FrameSampling("unordered", 30, (30, 30))
    assert all(len(set(plain.indices(100, rng).tolist())) == 30 for _ in range(10))
    always = FrameSampling("unordered", 30, (30, 30), replace=True)
    assert any(len(set(always.indices(100, rng).tolist())) < 30 for _ in range(10))


def test_k_with_replacement_can_repeat_a_sequence():
    subjects = np.repeat(np.arange(4), 10)
    plain = PKBatchSampler(subjects, 2, 8)
    assert all(len({i for i, _ in plain.batch(it)}) == 16 for it in range(20))
    replaced = PKBatchSampler(subjects, 2, 8, replace=True)
    assert any(len({i for i, _ in replaced.batch(it)}) < 16 for it in range(20))


def test_cstl_parts_option_pools_rows_and_default_is_unchanged():
    from gaitlib.models import build

    torch.manual_seed(0)
    default = build("cstl", num_classes=10).eval()
    torch.manual_seed(0)
    explicit = build("cstl", num_classes=10, parts=32).eval()
    x = torch.rand(2, 12, 64, 44)
    with torch.no_grad():
        assert torch.equal(default(x)["embedding"], explicit(x)["embedding"])
    torch.manual_seed(0)
    eight = build("cstl", num_classes=10, parts=8).eval()
    with torch.no_grad():
        out = eight(x)
    assert out["embedding"].shape == (2, 256, 8) and out["ssfl_index"].shape == (2, 8)
    with pytest.raises(ValueError, match="parts must divide"):
        build("cstl", parts=5)
