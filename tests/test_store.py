import json

import numpy as np
import pytest

from gaitlib.data.store import Store, StoreError, StoreWriter
from tests.conftest import make_store


def test_roundtrip_and_index(tmp_path):
    rng = np.random.default_rng(1)
    seqs = [rng.integers(0, 256, (t, 64, 64), dtype=np.uint8) for t in (5, 9, 1)]
    with StoreWriter(tmp_path / "s", "casia-b") as w:
        for i, seq in enumerate(seqs):
            w.add(f"00{i}", "nm-01", "090", seq)
    store = Store(tmp_path / "s")
    assert len(store) == 3 and store.meta["n_frames"] == 15
    for i, seq in enumerate(seqs):
        np.testing.assert_array_equal(store.frames_of(i), seq)
        assert store[i].subject == f"00{i}"
    assert list(store.select(subjects=["001", "002"])) == [1, 2]
    assert isinstance(store.frames, np.memmap)
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "s").iterdir())


def test_interrupted_write_leaves_nothing(tmp_path):
    out = tmp_path / "s"
    with pytest.raises(RuntimeError), StoreWriter(out, "casia-b") as w:
        w.add("001", "nm-01", "000", np.zeros((3, 64, 64), np.uint8))
        raise RuntimeError("killed")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_store_needs_force(tmp_path):
    make_store(tmp_path / "s", subjects=("001",))
    with pytest.raises(FileExistsError), StoreWriter(tmp_path / "s", "synthetic"):
        pass
    with StoreWriter(tmp_path / "s", "synthetic", force=True) as w:
        w.add("009", "nm-01", "000", np.ones((2, 64, 64), np.uint8))
    assert list(Store(tmp_path / "s").subjects) == ["009"]
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


def test_bad_frames_rejected(tmp_path):
    with StoreWriter(tmp_path / "s", "casia-b") as w:
        with pytest.raises(ValueError, match="uint8"):
            w.add("001", "nm-01", "000", np.zeros((3, 64, 44), np.uint8))
        with pytest.raises(ValueError, match="at least one frame"):
            w.add("001", "nm-01", "000", np.zeros((0, 64, 64), np.uint8))
        w.add("001", "nm-01", "000", np.zeros((3, 64, 64), np.uint8))


def test_incomplete_or_corrupt_store_is_refused(tmp_path):
    with pytest.raises(StoreError, match="not a gaitlib store"):
        Store(tmp_path)
    store = make_store(tmp_path / "s")
    with open(store.path / "frames.u8", "ab") as f:
        f.write(b"x")
    with pytest.raises(StoreError, match="bytes"):
        Store(tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "s" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="unsupported"):
        Store(tmp_path / "s")
