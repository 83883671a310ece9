"""Importers: layout detection, labels, exact pkl imports, PNG pretreatment, skips with
reasons for bad input, atomic stores. Real CASIA-B trees come from the shared unpack.py
(skipped when the shared copy is absent); everything else is built by hand here."""

import logging
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from gaitlib import cli
from gaitlib.data import importers
from gaitlib.data.importers import import_dataset
from gaitlib.data.safe_pickle import load_numpy_pickle
from gaitlib.data.store import Store
from tests.conftest import shared_data_dir

# ----------------------------------------------------------------------------- builders


def raw_frame(i: int, shape=(120, 160)) -> np.ndarray:
    """A raw silhouette whose width grows with i, so frame order survives pretreatment."""
    img = np.zeros(shape, np.uint8)
    img[20:110, 60 : 60 + 6 + 2 * i] = 255
    return img


def write_pngs(folder: Path, prefix: str, n: int, start: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        cv2.imwrite(str(folder / f"{prefix}{i:03d}.png"), raw_frame(i))


def write_pkl(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def seq(t: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, 64, 64), dtype=np.uint8)


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch '{self.marker}'",))


def casia_png_tree(root: Path) -> Path:
    """4 good raw sequences plus one sequence of each kind of flaw."""
    for s, c, v in [("001", "nm-01", "000"), ("001", "nm-01", "018"), ("002", "nm-01", "000"),
                    ("002", "bg-01", "180")]:
        write_pngs(root / s / c / v, f"{s}-{c}-{v}-", 8)
    write_pngs(root / "002" / "nm-01" / "018", "002-nm-01-018-", 8)
    (root / "002" / "nm-01" / "018" / "002-nm-01-018-004.png").write_bytes(b"not a png")
    (root / "001" / "nm-02" / "000").mkdir(parents=True)  # empty sequence folder
    write_pngs(root / "001" / "nm-03" / "000", "001-nm-03-000-", 3)  # too short
    write_pngs(root / "001" / "nm-01" / "045", "001-nm-01-045-", 8)  # not a CASIA-B view
    write_pngs(root / "125" / "nm-01" / "000", "125-nm-01-000-", 8)  # no subject 125
    (root / "001" / "xx-01" / "000").mkdir(parents=True)  # not a condition
    (root / "README.txt").write_text("notes")  # a stray file
    (root / ".DS_Store").write_text("")  # hidden: ignored
    return root


def oumvlp_pkl_tree(root: Path) -> dict:
    """OpenGait's OU-MVLP layout SSSSS/SS/VVV/VVV.pkl; returns the good arrays by label."""
    good = {("00001", "00", "000"): seq(7, 1), ("00001", "01", "000"): seq(9, 2),
            ("00002", "00", "270"): seq(5, 3), ("00002", "00", "015"): seq(2, 4)}  # 2: kept
    for (s, c, v), arr in good.items():
        write_pkl(root / s / c / v / f"{v}.pkl", arr)
    write_pkl(root / "00002/00/090/090.pkl", np.zeros((7, 64, 44), np.uint8))  # bad shape
    write_pkl(root / "00002/00/180/180.pkl", np.zeros((7, 64, 64), np.float32))  # bad dtype
    write_pkl(root / "00002/01/195/195.pkl", np.zeros((0, 64, 64), np.uint8))  # no frames
    write_pkl(root / "00003/00/015/015.pkl", [seq(5, 5)])  # a list, not an array
    data = pickle.dumps(seq(5, 6))
    (root / "00003/00/030").mkdir(parents=True)
    (root / "00003/00/030/030.pkl").write_bytes(data[:100])  # truncated
    write_pkl(root / "00003/02/000/000.pkl", seq(5, 7))  # no sequence 02
    write_pkl(root / "00003/00/105/105.pkl", seq(5, 8))  # no view 105 in OU-MVLP
    write_pkl(root / "00003/01/045/a.pkl", seq(5, 9))
    write_pkl(root / "00003/01/045/b.pkl", seq(5, 10))  # two pkl, neither 045.pkl
    write_pkl(root / "00003/01/060/060.pkl", seq(6, 11))
    write_pkl(root / "00003/01/060/extra.pkl", seq(5, 12))  # 060.pkl is the one used
    good[("00003", "01", "060")] = seq(6, 11)
    return good


def store_items(path: Path) -> dict:
    store = Store(path)
    return {(s.subject, s.condition, s.view): np.asarray(s.frames)
            for s in (store[i] for i in range(len(store)))}


def assert_clean(parent: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in parent.iterdir() if ".tmp-" in p.name]


# ----------------------------------------------------------------------------- real CASIA-B


def unpack(out: Path, *args: str) -> Path:
    real = shared_data_dir()
    if not (real / "unpack.py").is_file():
        pytest.skip(f"real CASIA-B copy not found at {real} (set GAITLIB_SHARED_DATA)")
    subprocess.run([sys.executable, str(real / "unpack.py"), str(out), *args], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def real_pkl_tree(tmp_path_factory) -> Path:
    return unpack(tmp_path_factory.mktemp("real") / "pkl", "--subjects", "001-002,005",
                  "--conds", "nm-01,bg-01", "--views", "000,090")


@pytest.mark.realdata
def test_real_pkl_tree_imports_exactly(real_pkl_tree, tmp_path):
    summary = import_dataset("casia-b", real_pkl_tree, tmp_path / "s", workers=2, progress=False)
    sources = sorted(real_pkl_tree.glob("*/*/*/*.pkl"))
    # 3 subjects x 2 conditions x 2 views, less 005's view 000 (empty, absent from the copy)
    assert summary.imported == len(sources) == 10 and not summary.skipped
    assert summary.layout.startswith("SSS/COND/VVV/*.pkl")
    items = store_items(tmp_path / "s")
    for path in sources:
        v, c, s = path.parts[-2], path.parts[-3], path.parts[-4]
        np.testing.assert_array_equal(items[(s, c, v)], load_numpy_pickle(path))
    store = Store(tmp_path / "s")
    labels = list(zip(store.subjects, store.conditions, store.views, strict=True))
    assert labels == sorted(labels) and set(store.subjects) == {"001", "002", "005"}
    # 005/bg-01/090 has a single frame in OpenGait's tree: kept, with a warning
    assert summary.notes["short_kept"] >= 1 and len(items[("005", "bg-01", "090")]) < 5
    assert store.meta["layout"] == summary.layout and store.meta["skipped"] == {}


@pytest.mark.realdata
def test_real_png_tree_gives_sequences_of_the_right_length(tmp_path):
    src = unpack(tmp_path / "png", "--format", "png", "--subjects", "003", "--conds",
                 "nm-02,cl-01", "--views", "126")
    ref = unpack(tmp_path / "pkl", "--subjects", "003", "--conds", "nm-02,cl-01", "--views", "126")
    summary = import_dataset("casia-b", src, tmp_path / "s", workers=1, progress=False)
    assert summary.imported == 2 and summary.layout.startswith("SSS/COND/VVV/*.png")
    for (s, c, v), frames in store_items(tmp_path / "s").items():
        source = load_numpy_pickle(ref / s / c / v / f"{v}.pkl")
        assert frames.shape == source.shape == (len(list((src / s / c / v).glob("*.png"))), 64, 64)
        # already pretreated frames pass through pretreatment nearly unchanged
        agree = ((frames >= 128) == (source >= 128)).mean()
        assert agree > 0.97


# ----------------------------------------------------------------------------- synthetic trees


def test_casia_png_tree_skips_each_flaw_with_its_reason(tmp_path, caplog):
    src = casia_png_tree(tmp_path / "src")
    with caplog.at_level(logging.WARNING, logger="gaitlib.data.importers"):
        summary = import_dataset("casia-b", src, tmp_path / "s", workers=1, progress=False)
    assert summary.imported == 4
    assert dict(summary.skipped) == {"unreadable": 1, "empty_dir": 1, "too_few_frames": 1,
                                     "unexpected_name": 4}
    assert any("002-nm-01-018-004.png" in e for e in summary.examples["unreadable"])
    assert any(e.endswith("045") for e in summary.examples["unexpected_name"])
    assert "001/nm-03/000" in caplog.text  # the dropped short sequence is warned about
    store = Store(tmp_path / "s")
    assert store.meta["skipped"] == dict(summary.skipped)
    assert list(zip(store.subjects, store.conditions, store.views, strict=True)) == [
        ("001", "nm-01", "000"), ("001", "nm-01", "018"), ("002", "bg-01", "180"),
        ("002", "nm-01", "000")]
    assert (store.lengths == 8).all()
    # frames are in frame-number order: the figure widens with the frame number
    widths = [(f.max(axis=0) >= 128).sum() for f in store.frames_of(0)]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    text = summary.report()
    assert "imported 4 sequences" in text and "unexpected_name" in text
    assert summary.examples["unreadable"][0] in text


def test_frames_sorted_by_number_not_by_name(tmp_path):
    folder = tmp_path / "src" / "001" / "nm-01" / "090"
    folder.mkdir(parents=True)
    for i in (10, 2, 7, 1, 9, 3):  # unpadded numbers: name order would put 10 second
        cv2.imwrite(str(folder / f"001-nm-01-090-{i}.png"), raw_frame(i))
    import_dataset("casia-b", tmp_path / "src", tmp_path / "s", workers=1, progress=False)
    widths = [(f.max(axis=0) >= 128).sum() for f in Store(tmp_path / "s").frames_of(0)]
    assert widths == sorted(widths) and len(set(widths)) == 6


def test_worker_processes_give_the_same_store(tmp_path):
    src = casia_png_tree(tmp_path / "src")
    one = import_dataset("casia-b", src, tmp_path / "a", workers=1, progress=False)
    two = import_dataset("casia-b", src, tmp_path / "b", workers=2, progress=False)
    assert one.skipped == two.skipped
    a, b = store_items(tmp_path / "a"), store_items(tmp_path / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_malicious_pkl_is_refused_without_running(tmp_path):
    src = tmp_path / "src"
    marker = tmp_path / "pwned"
    write_pkl(src / "001/nm-01/000/000.pkl", seq(6, 0))
    write_pkl(src / "001/nm-01/018/018.pkl", Evil(marker))
    summary = import_dataset("casia-b", src, tmp_path / "s", workers=2, progress=False)
    assert not marker.exists()
    assert summary.imported == 1 and dict(summary.skipped) == {"unsafe_pkl": 1}
    assert "018.pkl" in summary.examples["unsafe_pkl"][0]
    assert "posix.system" in summary.examples["unsafe_pkl"][0]


def test_oumvlp_pkl_tree(tmp_path):
    good = oumvlp_pkl_tree(tmp_path / "src")
    summary = import_dataset("oumvlp", tmp_path / "src", tmp_path / "s", workers=2,
                             progress=False)
    assert summary.layout == "SSSSS/SS/VVV/*.pkl"
    assert dict(summary.skipped) == {"bad_array": 2, "empty_array": 1, "unsafe_pkl": 1,
                                     "unreadable": 1, "unexpected_name": 2, "ambiguous_pkl": 1}
    assert dict(summary.notes) == {"short_kept": 1}
    items = store_items(tmp_path / "s")
    assert items.keys() == good.keys()
    for key, arr in good.items():
        np.testing.assert_array_equal(items[key], arr)
    assert list(Store(tmp_path / "s").index["subject"]) == sorted(s for s, _, _ in good)


def test_oumvlp_official_png_tree(tmp_path):
    src = tmp_path / "src"
    write_pngs(src / "Silhouette_000-00" / "00001", "", 6)
    write_pngs(src / "Silhouette_000-00" / "00002", "", 7)
    write_pngs(src / "Silhouette_255-01" / "00001", "", 5)
    write_pngs(src / "Silhouette_005-00" / "00001", "", 6)  # no view 005
    write_pngs(src / "Silhouette_000-00" / "10308", "", 6)  # beyond subject 10307
    summary = import_dataset("oumvlp", src, tmp_path / "s", workers=1, progress=False)
    assert summary.layout.startswith("Silhouette_VVV-SS/SSSSS/*.png")
    assert summary.imported == 3 and dict(summary.skipped) == {"unexpected_name": 2}
    store = Store(tmp_path / "s")
    assert store.dataset == "oumvlp"
    assert list(zip(store.subjects, store.conditions, store.views, strict=True)) == [
        ("00001", "00", "000"), ("00001", "01", "255"), ("00002", "00", "000")]
    assert list(store.lengths) == [6, 5, 7]


@pytest.mark.parametrize(("dataset", "make"), [
    ("casia-b", lambda root: write_pkl(root / "00001/00/000/000.pkl", seq(5, 0))),
    ("oumvlp", lambda root: write_pkl(root / "001/nm-01/000/000.pkl", seq(5, 0))),
    ("casia-b", lambda root: (root / "frames").mkdir(parents=True)),
])
def test_unrecognised_layout_says_what_was_expected_and_found(tmp_path, dataset, make):
    make(tmp_path / "src")
    with pytest.raises(ValueError) as info:
        import_dataset(dataset, tmp_path / "src", tmp_path / "s", progress=False)
    message = str(info.value)
    assert "expected" in message and "found" in message
    assert next((tmp_path / "src").iterdir()).name in message
    assert_clean(tmp_path, tmp_path / "s")


def test_nothing_importable_leaves_no_store(tmp_path):
    src = tmp_path / "src"
    (src / "001/nm-01/000").mkdir(parents=True)
    write_pkl(src / "001/nm-01/018/018.pkl", [1, 2])
    with pytest.raises(ValueError, match="nothing importable"):
        import_dataset("casia-b", src, tmp_path / "s", workers=1, progress=False)
    assert_clean(tmp_path, tmp_path / "s")


def test_existing_store_is_kept_without_force(tmp_path):
    src = tmp_path / "src"
    write_pkl(src / "001/nm-01/000/000.pkl", seq(6, 0))
    import_dataset("casia-b", src, tmp_path / "s", workers=1, progress=False)
    write_pkl(src / "001/nm-01/018/018.pkl", seq(6, 1))
    with pytest.raises(FileExistsError):
        import_dataset("casia-b", src, tmp_path / "s", workers=1, progress=False)
    assert len(Store(tmp_path / "s")) == 1
    import_dataset("casia-b", src, tmp_path / "s", workers=1, force=True, progress=False)
    assert len(Store(tmp_path / "s")) == 2


def test_failure_midway_leaves_no_store(tmp_path, monkeypatch):
    src = tmp_path / "src"
    for i, v in enumerate(("000", "018", "036", "054", "072")):
        write_pkl(src / "001" / "nm-01" / v / f"{v}.pkl", seq(6, i))
    real_load = importers.load_sequence
    calls = []

    def flaky(task):
        calls.append(task)
        if len(calls) > 3:
            raise RuntimeError("disk on fire")
        return real_load(task)

    monkeypatch.setattr(importers, "load_sequence", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        import_dataset("casia-b", src, tmp_path / "s", workers=1, progress=False)
    assert len(calls) == 4
    assert_clean(tmp_path, tmp_path / "s")


def test_cli_import_prints_the_summary(tmp_path, capsys):
    src = tmp_path / "src"
    write_pkl(src / "003/cl-02/162/162.pkl", seq(8, 0))
    write_pkl(src / "003/cl-02/999/999.pkl", seq(8, 1))
    rc = cli.main(["data", "import", "casia-b", str(src), "--out", str(tmp_path / "s"),
                   "--workers", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "imported 1 sequences" in out and "unexpected_name" in out and "999" in out
    assert cli.main(["data", "import", "oumvlp", str(src), "--out", str(tmp_path / "t")]) == 2
    assert "does not look like a oumvlp tree" in capsys.readouterr().err


def test_frame_size_128(tmp_path):
    """128x128 OpenGait trees (the 128x88 input) import at frame_size=128 and are refused at 64."""
    big = np.random.default_rng(0).integers(0, 256, (6, 128, 128), dtype=np.uint8)
    write_pkl(tmp_path / "src" / "001" / "nm-01" / "090" / "090.pkl", big)
    write_pkl(tmp_path / "src" / "002" / "nm-01" / "090" / "090.pkl", big[:5])
    summary = import_dataset("casia-b", tmp_path / "src", tmp_path / "s128", workers=1,
                             progress=False, frame_size=128)
    assert summary.imported == 2
    store = Store(tmp_path / "s128")
    np.testing.assert_array_equal(store.frames_of(0), big)
    with pytest.raises(ValueError, match="nothing importable"):
        import_dataset("casia-b", tmp_path / "src", tmp_path / "s64", workers=1, progress=False)
    assert not (tmp_path / "s64").exists()
    png = tmp_path / "png" / "001" / "nm-01" / "000"
    write_pngs(png, "001-nm-01-000-", 6)
    import_dataset("casia-b", tmp_path / "png", tmp_path / "p128", workers=1, progress=False,
                   frame_size=128)
    assert Store(tmp_path / "p128").frames_of(0).shape == (6, 128, 128)
