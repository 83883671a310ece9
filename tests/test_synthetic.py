"""The synthetic dataset: determinism, labels, shapes, and that conditions and views act
on the silhouettes the way they should."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gaitlib.data import Store
from gaitlib.data.pretreatment import MIN_FRAMES
from gaitlib.data.synthetic import Difficulty, SynthStats, generate, render_sequence

SMALL = dict(n_subjects=3, views=("000", "090"), conditions=("nm-01", "bg-01", "cl-01"),
             progress=False)
CLEAN = Difficulty(edge_noise=0, hole_p=0, blob_p=0, shadow_p=0, miss_p=0)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Store, SynthStats]:
    out = tmp_path_factory.mktemp("synth") / "store"
    stats = generate(out, seed=3, workers=1, **SMALL)
    return Store(out), stats


def _bytes(store: Store) -> tuple[bytes, str]:
    return ((store.path / "frames.u8").read_bytes(), (store.path / "index.csv").read_text())


def test_same_seed_same_store_whatever_the_workers(small, tmp_path):
    store, _ = small
    again = generate(tmp_path / "two", seed=3, workers=2, **SMALL)
    assert _bytes(Store(again.path)) == _bytes(store)


def test_other_seed_other_store(small, tmp_path):
    store, _ = small
    other = generate(tmp_path / "other", seed=4, workers=1, **SMALL)
    assert (store.path / "frames.u8").read_bytes() != (other.path / "frames.u8").read_bytes()


def test_sequence_does_not_depend_on_what_else_is_generated(small, tmp_path):
    store, _ = small
    alone = Store(generate(tmp_path / "alone", seed=3, n_subjects=2, views=["090"],
                           conditions=["cl-01"], workers=1, progress=False).path)
    i, j = store.select(["002"], ["cl-01"], ["090"])[0], alone.select(["002"])[0]
    np.testing.assert_array_equal(store.frames_of(i), alone.frames_of(j))


def test_index_labels_counts_and_meta(small):
    store, stats = small
    assert len(store) == stats.sequences == 3 * 2 * 3
    assert stats.frames == store.meta["n_frames"] == int(store.lengths.sum())
    assert store.dataset == "synthetic"
    assert set(store.subjects) == {"001", "002", "003"}
    assert set(store.conditions) == set(SMALL["conditions"])
    assert set(store.views) == set(SMALL["views"])
    lo, hi = Difficulty().length
    assert (store.lengths >= MIN_FRAMES).all() and (store.lengths <= hi).all()
    assert len(set(store.lengths)) > 1  # lengths vary
    meta = json.loads((store.path / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["n_subjects_generated"] == 3
    assert meta["views"] == list(SMALL["views"]) and "generator_version" in meta
    assert "sequences" in stats.summary() and "frames/s" in stats.summary()


def test_frames_are_64x64_uint8_and_never_empty(small):
    store, _ = small
    assert store.frames.dtype == np.uint8 and store.frames.shape[1:] == (64, 64)
    mass = store.frames.reshape(len(store.frames), -1).sum(axis=1)
    assert (mass > 10000).all()
    # A person fills the height: the top and bottom rows are touched in every frame.
    assert store.frames[:, 0].any(axis=1).all() and store.frames[:, -1].any(axis=1).all()


def test_coat_enlarges_the_silhouette():
    # Raw renders, noise off: a coat (thicker trunk/arms, skirt) adds pixels for everyone.
    for subject in range(1, 6):
        for view in ("000", "090"):
            nm = (render_sequence(0, subject, "nm-01", view, CLEAN) > 0).mean(axis=0).sum()
            cl = (render_sequence(0, subject, "cl-01", view, CLEAN) > 0).mean(axis=0).sum()
            assert cl > 1.05 * nm, (subject, view)


def test_side_view_is_wider_than_front_view(small):
    store, _ = small

    def mean_width(view):
        # Leg rows only (a shadow under the feet may widen the bottom rows in any view).
        widths = [(store.frames_of(i)[:, 36:58].max(axis=1) > 127).sum(axis=1).mean()
                  for i in store.select(conditions=["nm-01"], views=[view])]
        return np.mean(widths)

    assert mean_width("090") > 1.15 * mean_width("000")


def test_bag_is_visible():
    diffs = []
    for subject in range(1, 6):
        nm = (render_sequence(0, subject, "nm-01", "090", CLEAN) > 0).mean(axis=0).sum()
        bg = (render_sequence(0, subject, "bg-01", "090", CLEAN) > 0).mean(axis=0).sum()
        diffs.append(bg / nm)
    assert np.mean(diffs) > 1.03


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_subjects=1), "n_subjects"),
    (dict(n_subjects=2.5), "n_subjects"),
    (dict(views=["045"]), "unknown view"),
    (dict(views=[]), "no views"),
    (dict(conditions=["nm-07"]), "unknown condition"),
    (dict(conditions=["nm-01", "nm-01"]), "twice"),
    (dict(seed=-1), "seed"),
    (dict(workers=0), "workers"),
])
def test_bad_inputs_raise(tmp_path, kwargs, match):
    args = dict(n_subjects=2, views=["090"], conditions=["nm-01"], progress=False) | kwargs
    with pytest.raises(ValueError, match=match):
        generate(tmp_path / "bad", **args)
    assert not (tmp_path / "bad").exists()


def test_existing_store_needs_force(small):
    store, _ = small
    with pytest.raises(FileExistsError):
        generate(store.path, seed=3, workers=1, **SMALL)


def test_view_names_accept_plain_numbers(tmp_path):
    stats = generate(tmp_path / "s", n_subjects=2, views=[90, "18"], conditions=["nm-01"],
                     workers=1, progress=False)
    assert set(Store(stats.path).views) == {"090", "018"}


def test_sample_figure(small):
    from gaitlib.figures import plot_synthetic_samples

    store, _ = small
    fig = plot_synthetic_samples(store, views=("000", "090"))
    assert len(fig.axes) == 2 * 3
    with pytest.raises(ValueError):
        plot_synthetic_samples(store, subject="999")
