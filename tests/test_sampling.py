import numpy as np
import pytest
import torch

from gaitlib.data.sampling import (
    FrameSampling,
    PKBatchSampler,
    SequenceDataset,
    eval_loader,
    to_model_input,
    train_loader,
)
from gaitlib.data.splits import casia_b_split, oumvlp_split, split_for, synthetic_split
from tests.conftest import make_store


def test_splits():
    lt = casia_b_split()
    assert (len(lt.train), len(lt.test)) == (74, 50) and lt.test[0] == "075"
    lt73 = casia_b_split(drop_005=True)
    assert len(lt73.train) == 73 and "005" not in lt73.train and lt73.test == lt.test
    ou = oumvlp_split()
    assert (len(ou.train), len(ou.test)) == (5153, 5154) and not set(ou.train) & set(ou.test)
    syn = synthetic_split([f"{i:03d}" for i in range(7, 0, -1)])
    assert syn.train == ("001", "002", "003", "004") and syn.test == ("005", "006", "007")
    with pytest.raises(ValueError, match="valid: casia-b-lt"):
        split_for("casia-c")


@pytest.mark.parametrize("length", [1, 7, 29, 30, 31, 100])
def test_ordered_frames_are_consecutive_and_in_order(length):
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = FrameSampling("ordered").indices(length, rng)
        assert len(idx) == 30 and np.all(np.diff(idx) >= 0) and idx.max() < length
        if length >= 30:
            assert np.all(np.diff(idx) == 1)
        else:  # padded by repetition: every frame used, none more than ceil(30/length) times
            counts = np.bincount(idx, minlength=length)
            assert counts.min() >= 1 and counts.max() <= -(-30 // length)


def test_window_and_unordered_modes():
    rng = np.random.default_rng(0)
    spans = set()
    for _ in range(200):
        idx = FrameSampling("ordered_window").indices(100, rng)
        assert len(idx) == 30 and np.all(np.diff(idx) > 0)
        spans.add(int(idx[-1] - idx[0]))
    assert max(spans) > 29 and max(spans) <= 39  # windows of 30..40 frames
    idx = FrameSampling("unordered").indices(10, rng)
    assert len(idx) == 30 and set(idx) <= set(range(10))
    assert len(FrameSampling("all").indices(17, rng)) == 17
    with pytest.raises(ValueError, match="valid: ordered"):
        FrameSampling("random")


def test_pk_sampler_invariants():
    subjects = np.repeat([f"{i:03d}" for i in range(10)], [12, 12, 3, 12, 12, 12, 12, 12, 12, 12])
    sampler = PKBatchSampler(subjects, p=4, k=8, seed=5)
    for it in range(50):
        batch = sampler.batch(it)
        items = [i for i, _ in batch]
        assert len(items) == 32
        chosen = subjects[items].reshape(4, 8)
        assert all(len(set(row)) == 1 for row in chosen)  # K consecutive items of one subject
        assert len({row[0] for row in chosen}) == 4  # P distinct subjects
        for row_items, subj in zip(np.reshape(items, (4, 8)), chosen[:, 0], strict=True):
            if subj != "002":  # >= K sequences: drawn without replacement
                assert len(set(row_items)) == 8
        assert len({key for _, key in batch}) == 32
    assert sampler.batch(3) == PKBatchSampler(subjects, 4, 8, seed=5).batch(3)  # pure in (seed, it)
    assert sampler.batch(3) != PKBatchSampler(subjects, 4, 8, seed=6).batch(3)
    resumed = iter(PKBatchSampler(subjects, 4, 8, seed=5, start_iteration=7))
    assert next(resumed) == sampler.batch(7)


def test_ranks_partition_the_global_batch():
    subjects = np.repeat([f"{i:03d}" for i in range(6)], 5)
    whole = PKBatchSampler(subjects, p=4, k=2, seed=1).batch(9)
    parts = [PKBatchSampler(subjects, 4, 2, seed=1, rank=r, world_size=2).batch(9) for r in (0, 1)]
    assert parts[0] + parts[1] == whole
    with pytest.raises(ValueError, match="divisible"):
        PKBatchSampler(subjects, p=3, k=2, world_size=2)
    with pytest.raises(ValueError, match="has 6"):
        PKBatchSampler(subjects, p=7, k=2)


def test_dataset_crops_and_is_deterministic(tiny_store):
    ds = SequenceDataset(tiny_store, np.arange(len(tiny_store)), FrameSampling("ordered", frames=8))
    frames, label, index = ds[(3, 123)]
    assert frames.shape == (8, 64, 44) and frames.dtype == torch.uint8 and index == 3
    assert torch.equal(frames, ds[(3, 123)][0])
    assert int(frames[0, 0, 0]) == 3  # marker written at column 10 lands at column 0 after the crop
    order = frames[:, 1, 0].numpy().astype(int)
    assert np.all(np.diff(order) == 1)  # consecutive source frames
    assert label == ds.label_of[tiny_store.subjects[3]]
    flipped = SequenceDataset(tiny_store, [0], FrameSampling("all"), flip=True)
    seen = {int(flipped[(0, k)][0][0, 0, -1]) for k in range(20)}
    assert 0 in seen or len(seen) > 1  # marker moves to the last column in flipped samples


def test_train_loader_with_workers_matches_inline(tmp_path):
    store = make_store(tmp_path / "s", subjects=[f"{i:03d}" for i in range(6)], views=("000",))
    subjects = store.index.subject.unique()[:4]
    kw = dict(p=2, k=2, sampling=FrameSampling("ordered", frames=5), seed=3)
    with_workers = iter(train_loader(store, subjects, workers=2, **kw))
    inline = iter(train_loader(store, subjects, workers=0, **kw))
    for _ in range(3):
        a, b = next(with_workers), next(inline)
        assert a["frames"].shape == (4, 5, 64, 44)
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["labels"], b["labels"])
        assert set(store.subjects[a["index"].numpy()]) <= set(subjects)
    x = to_model_input(a["frames"])
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_test_loader_packs_whole_sequences(tiny_store):
    batches = list(eval_loader(tiny_store, [0, 1, 2], workers=0, sequences_per_batch=2))
    assert [b["lengths"].tolist() for b in batches] == [
        [int(tiny_store.lengths[0]), int(tiny_store.lengths[1])], [int(tiny_store.lengths[2])]]
    assert batches[0]["frames"].shape == (1, int(batches[0]["lengths"].sum()), 64, 44)
