"""Cases of a store's files (``gaitlib data check``, and ``gaitlib train`` on the store): metadata
of the wrong type or range, checksums that point outside, an index out of int64, special files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from common import Ran, Work, case, edit_meta, judge, res

# -- the store --------------------------------------------------------------------------------

def _store(w: Work, **meta) -> Path:
    s = w.copy("store")
    edit_meta(s, **meta)
    return s


def check(w: Work, store: Path) -> Ran:
    return w.run("data", "check", store)


def _store_error(w, pattern, **meta):
    s = _store(w, **meta)
    ran = check(w, s)
    outcome = judge(ran, "error", pattern)
    if outcome == "error":  # training must refuse it too, before any step
        t = w.run("train", "--model", "gaitset", "--data", s, "--profile", "smoke", "--out",
                  w.dir / "run", "--no-progress", "schedule.iterations=1")
        outcome = judge(t, "error", pattern)
    return res(outcome, ran)


@case("store", "checksums a string")
def _(w):
    return _store_error(w, "checksums", checksums="abc")


@case("store", "checksums a list")
def _(w):
    return _store_error(w, "checksums", checksums=["index.csv"])


def _outside_checksum(w: Work, name: str):
    """A checksum entry naming a file outside the store, with that file's true digest: a store
    that reads it would report it verified."""
    from gaitlib.data.store import sha256_file
    s = _store(w)
    outside = w.dir / "outside.txt"
    outside.write_text("not part of the store")
    meta = json.loads((s / "meta.json").read_text())
    meta["checksums"][name.format(outside=outside)] = sha256_file(outside)
    (s / "meta.json").write_text(json.dumps(meta))
    return res(judge(r := check(w, s), "error", "outside.txt"), r)


@case("store", "a checksum entry ../outside.txt")
def _(w):
    return _outside_checksum(w, "../outside.txt")


@case("store", "a checksum entry with an absolute path")
def _(w):
    return _outside_checksum(w, "{outside}")


@case("store", "a checksum that is not a string")
def _(w):
    s = _store(w)
    meta = json.loads((s / "meta.json").read_text())
    meta["checksums"]["frames.u8"] = 12
    (s / "meta.json").write_text(json.dumps(meta))
    return res(judge(r := check(w, s), "error", "frames.u8"), r)


@case("store", "an unknown dataset name")
def _(w):
    return _store_error(w, "dataset", dataset="casia-c")


@case("store", "dataset not a string")
def _(w):
    return _store_error(w, "dataset", dataset=5)


@case("store", "a start too large for 64 bits")
def _(w):
    s = _store(w, checksums={})
    index = (s / "index.csv").read_text().splitlines()
    first = index[1].split(",")
    first[3] = "9" * 30
    index[1] = ",".join(first)
    (s / "index.csv").write_text("\n".join(index) + "\n")
    return res(judge(r := check(w, s), "error", "line 2"), r)


@case("store", "a length too large for 64 bits")
def _(w):
    s = _store(w, checksums={})
    index = (s / "index.csv").read_text().splitlines()
    last = index[-1].split(",")
    last[4] = "9" * 25
    index[-1] = ",".join(last)
    (s / "index.csv").write_text("\n".join(index) + "\n")
    return res(judge(r := check(w, s), "error", "length"), r)


@case("store", "n_frames true (a boolean)")
def _(w):
    return _store_error(w, "n_frames", n_frames=True)


@case("store", "n_subjects disagreeing with the index")
def _(w):
    return _store_error(w, "n_subjects", n_subjects=99)


@case("store", "frame_shape [1e30, 1e30]")
def _(w):
    return _store_error(w, "frame_shape", frame_shape=[10**30, 10**30])


@case("store", "format_version 2")
def _(w):
    return _store_error(w, "version", format_version=2)


@case("store", "no index checksum: data check says so")
def _(w):
    s = _store(w)
    meta = json.loads((s / "meta.json").read_text())
    del meta["checksums"]["index.csv"]
    (s / "meta.json").write_text(json.dumps(meta))
    return res(judge(r := check(w, s), "warning", "index.csv.*(unverified|not verified)"), r)


@case("store", "no checksums at all: data check says so")
def _(w):
    s = _store(w, checksums=None)
    return res(judge(r := check(w, s), "warning", "no checksums"), r)


@case("store", "subjects counted from the index")
def _(w):
    s = _store(w, n_subjects=None)
    r = check(w, s)
    return res(judge(r, "accepted", ok=lambda: "8 subjects" in r.out), r)


@case("store", "meta.json a directory")
def _(w):
    s = w.copy("store")
    (s / "meta.json").unlink()
    (s / "meta.json").mkdir()
    return res(judge(r := check(w, s), "error", "meta.json"), r)


@case("store", "index.csv a FIFO")
def _(w):
    s = w.copy("store")
    (s / "index.csv").unlink()
    os.mkfifo(s / "index.csv")
    return res(judge(r := w.run("data", "check", s, timeout=30), "error", "index.csv"), r)


@case("store", "frames.u8 missing")
def _(w):
    s = w.copy("store")
    (s / "frames.u8").unlink()
    return res(judge(r := check(w, s), "error", "frames.u8"), r)


@case("store", "frames.u8 one byte short")
def _(w):
    s = w.copy("store")
    with open(s / "frames.u8", "r+b") as f:
        f.truncate(os.path.getsize(s / "frames.u8") - 1)
    return res(judge(r := check(w, s), "error", "frames.u8"), r)


@case("store", "meta.json empty")
def _(w):
    s = w.copy("store")
    (s / "meta.json").write_text("")
    return res(judge(r := check(w, s), "error", "meta.json"), r)


@case("store", "data check on a folder that is not a store")
def _(w):
    (w.dir / "x").mkdir()
    return res(judge(r := check(w, w.dir / "x"), "error", "not a gaitlib store"), r)


@case("store", "data check on a missing path")
def _(w):
    return res(judge(r := check(w, w.dir / "nope"), "error", "nope"), r)


@case("store", "train --data a regular file")
def _(w):
    (w.dir / "f").write_text("x")
    r = w.run("train", "--model", "gaitset", "--data", w.dir / "f")
    return res(judge(r, "error", "not a gaitlib store"), r)


@case("store", "a label with a comma-free odd name (NA) is kept")
def _(w):
    import numpy as np

    from gaitlib.data.store import StoreWriter
    with StoreWriter(w.dir / "s", "synthetic") as wr:
        for s in ("NA", "null"):
            wr.add(s, "nm-01", "000", np.full((3, 64, 64), 255, np.uint8))
    r = check(w, w.dir / "s")
    return res(judge(r, "accepted", ok=lambda: "2 subjects" in r.out), r)


