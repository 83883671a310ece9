"""What the cases of ``python bench/bad_input`` share: running the command line, judging its
outcome, the fixtures (tiny stores, PNG and pkl trees) and the registry of cases."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the harness's own fixtures use gaitlib (and tests/)
    sys.path.insert(0, str(REPO))
GOOD = ("error", "warning", "accepted")
BAD = ("traceback", "unhelpful", "wrong", "loss", "hang")
TINY = ["model.options.channels=[2,4,4]", "model.options.hidden_dim=8", "model.options.bins=[2,1]",
        "schedule.iterations=4", "schedule.milestones=[3]", "checkpoint_every=2",
        "eval.bootstrap=0"]
@dataclass
class Ran:
    rc: int
    out: str
    err: str
    hung: bool


class Work:
    """One case's directory and the command line under test."""

    def __init__(self, root: Path, code: Path, shared: dict[str, Path]):
        self.dir, self.code, self.shared = root, code, shared

    def run(self, *argv: str, timeout: float = 120, python: str | None = None) -> Ran:
        cmd = [sys.executable, "-c", python] if python else \
            [sys.executable, "-m", "gaitlib", *map(str, argv)]
        env = {**os.environ, "PYTHONPATH": str(self.code), "PYTHONWARNINGS": "default"}
        try:
            done = subprocess.run(cmd, cwd=self.dir, env=env, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as t:
            return Ran(-1, str(t.stdout or ""), str(t.stderr or ""), True)
        return Ran(done.returncode, done.stdout, done.stderr, False)

    def copy(self, name: str) -> Path:
        dst = self.dir / name
        shutil.copytree(self.shared[name], dst, symlinks=True)
        return dst

    def train(self, *extra: str, store: str = "store", out: str = "run", **kw) -> Ran:
        return self.run("train", "--model", "gaitset", "--data", self.shared[store], "--profile",
                        "smoke", "--out", self.dir / out, "--no-progress", *TINY, *extra, **kw)


def judge(ran: Ran, want: str, pattern: str = "", ok: Callable[[], bool] | None = None,
          lost: Callable[[], bool] | None = None) -> str:
    """The outcome of ``ran`` for a case that should end in ``want`` (error, warning, accepted);
    ``pattern`` must appear in the message (error) or the output (warning); ``ok`` checks an
    accepted result; ``lost`` says whether data that was there before is gone."""
    if ran.hung:
        return "hang"
    if lost is not None and lost():
        return "loss"
    if "Traceback (most recent call last)" in ran.err:
        return "traceback"
    text = ran.out + ran.err
    if ran.rc != 0:
        errors = [x for x in ran.err.splitlines() if "error:" in x]
        named = re.search(pattern, ran.err, re.I) if pattern else True
        return "error" if want == "error" and errors and named else "unhelpful"
    if want == "error":
        return "wrong"
    if ok is not None and not ok():
        return "wrong"
    if want == "warning":
        return "warning" if re.search(pattern, text, re.I) else "wrong"
    return "accepted"


# -- fixtures ---------------------------------------------------------------------------------

def frame(i: int, size=(120, 160)) -> np.ndarray:
    img = np.zeros(size, np.uint8)
    img[20:110, 60 + (i % 5) : 70 + 2 * (i % 7)] = 255
    return img


def png_tree(root: Path, subjects=("001", "002"), conds=("nm-01", "nm-02"), views=("000", "090"),
             frames: int = 20) -> Path:
    for s in subjects:
        for c in conds:
            for v in views:
                d = root / s / c / v
                d.mkdir(parents=True)
                for i in range(frames):
                    cv2.imwrite(str(d / f"{s}-{c}-{v}-{i + 1:03d}.png"), frame(i))
    return root


def pkl_tree(root: Path, subjects=("001", "002"), conds=("nm-01", "nm-02"), views=("000", "090")):
    rng = np.random.default_rng(0)
    for s in subjects:
        for c in conds:
            for v in views:
                d = root / s / c / v
                d.mkdir(parents=True)
                arr = (rng.random((20, 64, 64)) > 0.5).astype(np.uint8) * 255
                (d / f"{v}.pkl").write_bytes(pickle.dumps(arr))
    return root


def synthetic_store(path: Path, subjects: int = 8, dataset: str = "synthetic") -> Path:
    """Random frames, all ten CASIA-B conditions at two views (trains in seconds)."""
    from gaitlib.data.splits import CASIA_B_CONDITIONS
    from gaitlib.data.store import StoreWriter

    rng = np.random.default_rng(0)
    with StoreWriter(path, dataset) as w:
        for s in range(1, subjects + 1):
            for c in CASIA_B_CONDITIONS:
                for v in ("000", "090"):
                    w.add(f"{s:03d}", c, v, rng.integers(0, 256, (8, 64, 64), dtype=np.uint8))
    return path


def make_shared(root: Path, code: Path) -> dict[str, Path]:
    shared = {"png": png_tree(root / "png"), "pkl": pkl_tree(root / "pkl"),
              "store": synthetic_store(root / "store")}
    w = Work(root, code, shared)
    ran = w.train(out="finished")
    if ran.rc != 0:
        raise SystemExit(f"the fixture run failed:\n{ran.err[-3000:]}")
    shared["finished"] = root / "finished"
    return shared


def files(path: Path) -> int:
    return sum(len(f) for _, _, f in os.walk(path)) if path.exists() else 0


def edit_meta(store: Path, **changes) -> None:
    meta = json.loads((store / "meta.json").read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    (store / "meta.json").write_text(json.dumps(meta))


def tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


CASES: list[tuple[str, str, Callable]] = []


def case(surface: str, name: str):
    def register(fn):
        CASES.append((surface, name, fn))
        return fn
    return register


def res(outcome: str, ran: Ran) -> tuple[str, str]:
    return outcome, ran.out[-400:] + ran.err


def imp(w: Work, src, out, *extra: str, dataset: str = "casia-b", **kw) -> Ran:
    return w.run("data", "import", dataset, src, "--out", out, "--workers", "1", *extra, **kw)


def on_tmpfs(w: Work, options: str, command: Callable[[Path], Ran], pattern: str):
    """``command(mount)`` with a small tmpfs mounted at ``mount`` (``options`` such as
    'size=64k' for a disk that fills, 'ro' for a read-only one); it must fail naming the path."""
    mount = w.dir / "mnt"
    if not tmpfs(mount, options):
        return "not run (tmpfs)"
    try:
        ran = command(mount)
        return res(judge(ran, "error", pattern), ran)
    finally:
        unmount(mount)
