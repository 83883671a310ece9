"""Cases of ``gaitlib data import`` and ``gaitlib data synth``: where --out points, special
and broken files among the frames, trees that are not a dataset, full and read-only disks."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from common import Work, case, files, imp, judge, on_tmpfs, res, synthetic_store

# -- importers --------------------------------------------------------------------------------

def _force_over(w: Work, make_out: Callable[[Path, Path], Path], pattern: str):
    src = w.copy("png")
    out = make_out(w.dir, src)
    before = files(src)
    ran = imp(w, src, out, "--force")
    return res(judge(ran, "error", pattern, lost=lambda: files(src) < before), ran)


@case("importers", "--out SRC --force (the source itself)")
def _(w):
    return _force_over(w, lambda d, s: s, "source")


@case("importers", "--out inside SRC --force")
def _(w):
    return _force_over(w, lambda d, s: s / "001" / "store", "source")


@case("importers", "--out a parent of SRC --force")
def _(w):
    def make(d, s):
        parent = d / "parent"
        parent.mkdir()
        shutil.move(s, parent / "png")
        s.symlink_to(parent / "png")
        return parent
    return _force_over(w, make, "source")


@case("importers", "--out a folder holding thesis.tex --force")
def _(w):
    def make(d, s):
        (d / "thesis").mkdir()
        (d / "thesis" / "thesis.tex").write_text("\\documentclass{article}")
        return d / "thesis"
    src = w.copy("png")
    out = make(w.dir, src)
    ran = imp(w, src, out, "--force")
    return res(judge(ran, "error", "not a gaitlib store",
                     lost=lambda: not (out / "thesis.tex").exists()), ran)


@case("importers", "--out a regular file --force")
def _(w):
    src = w.copy("png")
    (w.dir / "notes.txt").write_text("keep me")
    ran = imp(w, src, w.dir / "notes.txt", "--force")
    return res(judge(ran, "error", "notes.txt",
                     lost=lambda: not (w.dir / "notes.txt").is_file()), ran)


@case("importers", "--out a regular file, no --force")
def _(w):
    src = w.copy("png")
    (w.dir / "notes.txt").write_text("keep me")
    ran = imp(w, src, w.dir / "notes.txt")
    return res(judge(ran, "error", "notes.txt", lost=lambda: not (w.dir / "notes.txt").is_file()),
               ran)


@case("importers", "--out an existing store --force (replaced)")
def _(w):
    synthetic_store(w.dir / "old", subjects=2)
    ran = imp(w, w.copy("png"), w.dir / "old", "--force")
    return res(judge(ran, "accepted", ok=lambda: json.loads(
        (w.dir / "old" / "meta.json").read_text())["dataset"] == "casia-b"), ran)


@case("importers", "--out an existing store, no --force")
def _(w):
    synthetic_store(w.dir / "old", subjects=2)
    ran = imp(w, w.copy("png"), w.dir / "old")
    return res(judge(ran, "error", "already exists"), ran)


@case("importers", "--out an empty folder --force")
def _(w):
    (w.dir / "empty").mkdir()
    ran = imp(w, w.copy("png"), w.dir / "empty", "--force")
    return res(judge(ran, "accepted", ok=lambda: (w.dir / "empty" / "meta.json").is_file()), ran)


@case("importers", "--out a store whose meta.json is unreadable --force")
def _(w):
    synthetic_store(w.dir / "old", subjects=2)
    (w.dir / "old" / "meta.json").write_text("{")
    (w.dir / "old" / "mine.txt").write_text("x")
    ran = imp(w, w.copy("png"), w.dir / "old", "--force")
    return res(judge(ran, "error", "not a gaitlib store",
                     lost=lambda: not (w.dir / "old" / "mine.txt").exists()), ran)


def _special_frame(w: Work, kind: str, tree: str = "png"):
    src = w.copy(tree)
    target = src / "001" / "nm-01" / "000" / ("special.pkl" if tree == "pkl" else
                                               "001-nm-01-000-999.png")
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(target))
        s.close()
    elif kind == "device":
        target.symlink_to("/dev/zero")
    if tree == "pkl":  # the only pkl of its folder
        (src / "001" / "nm-01" / "000" / "000.pkl").unlink()
    ran = imp(w, src, w.dir / "out", timeout=30)
    return res(judge(ran, "warning", r"skipped [1-9]"), ran)


@case("importers", "a FIFO among the PNG frames")
def _(w):
    return _special_frame(w, "fifo")


@case("importers", "a socket among the PNG frames")
def _(w):
    return _special_frame(w, "socket")


@case("importers", "a link to /dev/zero among the PNG frames")
def _(w):
    return _special_frame(w, "device")


@case("importers", "a FIFO as a sequence's pkl")
def _(w):
    return _special_frame(w, "fifo", "pkl")


@case("importers", "a link to /dev/zero as a sequence's pkl")
def _(w):
    return _special_frame(w, "device", "pkl")


@case("importers", "a broken symlink among the frames")
def _(w):
    src = w.copy("png")
    (src / "001" / "nm-01" / "000" / "001-nm-01-000-999.png").symlink_to(w.dir / "gone.png")
    ran = imp(w, src, w.dir / "out")
    return res(judge(ran, "warning", "skipped 1"), ran)


@case("importers", "a zero-byte PNG")
def _(w):
    src = w.copy("png")
    (src / "001" / "nm-01" / "000" / "001-nm-01-000-005.png").write_bytes(b"")
    ran = imp(w, src, w.dir / "out")
    return res(judge(ran, "warning", "unreadable"), ran)


@case("importers", "a text file named .png")
def _(w):
    src = w.copy("png")
    (src / "001" / "nm-01" / "000" / "001-nm-01-000-005.png").write_text("not an image")
    ran = imp(w, src, w.dir / "out")
    return res(judge(ran, "warning", "unreadable"), ran)


@case("importers", "a truncated PNG")
def _(w):
    src = w.copy("png")
    f = src / "001" / "nm-01" / "000" / "001-nm-01-000-005.png"
    f.write_bytes(f.read_bytes()[:60])
    ran = imp(w, src, w.dir / "out")
    return res(judge(ran, "warning", "unreadable"), ran)


@case("importers", "an all-black sequence")
def _(w):
    src = w.copy("png")
    for f in (src / "001" / "nm-01" / "000").iterdir():
        import cv2
        import numpy as np
        cv2.imwrite(str(f), np.zeros((120, 160), np.uint8))
    ran = imp(w, src, w.dir / "out")
    return res(judge(ran, "warning", "too_few_frames"), ran)


@case("importers", "an empty sequence folder")
def _(w):
    src = w.copy("png")
    (src / "002" / "nm-02" / "018").mkdir()
    ran = imp(w, src, w.dir / "out")
    return res(judge(ran, "warning", "empty_dir"), ran)


@case("importers", "a subject folder 125 (not a CASIA-B subject)")
def _(w):
    src = w.copy("png")
    shutil.copytree(src / "002", src / "125")
    ran = imp(w, src, w.dir / "out")
    return res(judge(ran, "warning", "unexpected_name"), ran)


@case("importers", "PNG copies ('... (copy).png')")
def _(w):
    src = w.copy("png")
    d = src / "001" / "nm-01" / "000"
    shutil.copy(d / "001-nm-01-000-003.png", d / "001-nm-01-000-003 (copy).png")
    ran = imp(w, src, w.dir / "out")
    return res(judge(ran, "warning", "duplicate_frames"), ran)


@case("importers", "SRC a regular file")
def _(w):
    (w.dir / "f").write_text("x")
    return res(judge(r := imp(w, w.dir / "f", w.dir / "out"), "error", "not a directory"), r)


@case("importers", "SRC missing")
def _(w):
    return res(judge(r := imp(w, w.dir / "nope", w.dir / "out"), "error", "nope"), r)


@case("importers", "SRC an empty folder")
def _(w):
    (w.dir / "e").mkdir()
    return res(judge(r := imp(w, w.dir / "e", w.dir / "out"), "error", "does not look like"), r)


@case("importers", "a CASIA-B tree imported as oumvlp")
def _(w):
    r = imp(w, w.copy("png"), w.dir / "out", dataset="oumvlp")
    return res(judge(r, "error", "does not look like"), r)


@case("importers", "pkl of float64 frames")
def _(w):
    import numpy as np
    src = w.copy("pkl")
    (src / "001" / "nm-01" / "000" / "000.pkl").write_bytes(pickle.dumps(np.zeros((5, 64, 64))))
    return res(judge(r := imp(w, src, w.dir / "out"), "warning", "bad_array"), r)


@case("importers", "pkl that runs code when unpickled")
def _(w):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {w.dir / 'pwned'}",))
    src = w.copy("pkl")
    (src / "001" / "nm-01" / "000" / "000.pkl").write_bytes(pickle.dumps(Evil()))
    r = imp(w, src, w.dir / "out")
    return res(judge(r, "warning", "unsafe_pkl", ok=lambda: not (w.dir / "pwned").exists()), r)


@case("importers", "--size 128 on a 64x64 pkl tree")
def _(w):
    r = imp(w, w.copy("pkl"), w.dir / "out", "--size", "128")
    return res(judge(r, "error", "nothing importable"), r)


@case("importers", "--workers 0")
def _(w):
    r = w.run("data", "import", "casia-b", w.copy("png"), "--out", w.dir / "out", "--workers", "0")
    return res(judge(r, "error", "--workers"), r)


@case("importers", "disk full during the import (tmpfs)")
def _(w):
    src = w.copy("png")
    return on_tmpfs(w, "size=64k", lambda m: imp(w, src, m / "out"), r"mnt.*No space left")


@case("importers", "--out on a read-only file system (tmpfs)")
def _(w):
    src = w.copy("png")
    return on_tmpfs(w, "ro,size=64k", lambda m: imp(w, src, m / "out"), r"mnt/out.*read-only")


@case("importers", "data synth --out a folder holding thesis.tex --force")
def _(w):
    (w.dir / "t").mkdir()
    (w.dir / "t" / "thesis.tex").write_text("x")
    r = w.run("data", "synth", "--subjects", "2", "--views", "000", "--out", w.dir / "t",
              "--force", "--workers", "1")
    return res(judge(r, "error", "not a gaitlib store",
                     lost=lambda: not (w.dir / "t" / "thesis.tex").exists()), r)


@case("importers", "data synth --subjects 0")
def _(w):
    r = w.run("data", "synth", "--subjects", "0", "--out", w.dir / "s", "--workers", "1")
    return res(judge(r, "error", "subjects"), r)


@case("importers", "data synth --views 999")
def _(w):
    r = w.run("data", "synth", "--subjects", "2", "--views", "999", "--out", w.dir / "s",
              "--workers", "1")
    return res(judge(r, "error", "999"), r)


@case("importers", "data synth --conditions xx-01")
def _(w):
    r = w.run("data", "synth", "--subjects", "2", "--conditions", "xx-01", "--out", w.dir / "s",
              "--workers", "1")
    return res(judge(r, "error", "xx-01"), r)


