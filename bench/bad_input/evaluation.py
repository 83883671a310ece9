"""Cases of ``gaitlib eval`` and the evaluator (feature magnitudes), ``gaitlib reproduce``'s options
and ``gaitlib checkpoint import``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from common import Ran, Work, case, judge, res, tmpfs, unmount

# -- evaluation -------------------------------------------------------------------------------

SCORE = """
import numpy as np, warnings
from gaitlib.evaluation import evaluate
rng = np.random.default_rng(0)
conds = ["nm-0%d" % i for i in range(1, 7)] + ["bg-01", "bg-02", "cl-01", "cl-02"]
rows = [(s, c, v) for s in range(10) for c in conds for v in ("000", "090", "180")]
s, c, v = ([str(r[i]) for r in rows] for i in range(3))
base = rng.normal(0, 1, (len(rows), 16, 4)) + 3.0 * np.array([int(x) for x in s])[:, None, None]
ref = evaluate(base.astype(np.float32), s, c, v, "casia-b", bootstrap=0, metric="{metric}")
feats = (base * {scale}).astype(np.{dtype})
try:
    res = evaluate(feats, s, c, v, "casia-b", bootstrap=0, metric="{metric}")
except ValueError as err:  # the API's refusal, as the command line would print it
    raise SystemExit(f"gaitlib: error: {{err}}")
print("SAME" if np.allclose(res.table.to_numpy(), ref.table.to_numpy(), equal_nan=True) else
      "DIFF", ref.table["Mean"].round(1).tolist(), res.table["Mean"].round(1).tolist())
"""


def _scaled(w: Work, scale: str, dtype: str = "float32", metric: str = "euc", want="accepted",
            pattern=""):
    ran = w.run(python=SCORE.format(scale=scale, dtype=dtype, metric=metric))
    return res(judge(ran, want, pattern, ok=lambda: "SAME" in ran.out), ran)


for _scale in ("1e18", "1e19", "1e25", "1e-20", "1e-30"):
    case("evaluation", f"features x {_scale} (euclidean)")(
        lambda w, s=_scale: _scaled(w, s))
for _scale in ("1e20", "1e-25"):
    case("evaluation", f"features x {_scale} (cosine)")(
        lambda w, s=_scale: _scaled(w, s, metric="cos"))


@case("evaluation", "float64 features x 1e40 (beyond float32)")
def _(w):
    return _scaled(w, "1e40", "float64", want="error", pattern="float32")


@case("evaluation", "features x 1 (unchanged)")
def _(w):
    return _scaled(w, "1")


def _eval(w: Work, run: Path, *extra: str) -> Ran:
    return w.run("eval", run, "--no-progress", *extra)


@case("evaluation", "eval --bootstrap -1")
def _(w):
    return res(judge(r := _eval(w, w.shared["finished"], "--bootstrap", "-1"), "error",
                     "bootstrap"), r)


@case("evaluation", "eval of a folder that is not a run")
def _(w):
    (w.dir / "x").mkdir()
    return res(judge(r := _eval(w, w.dir / "x"), "error", "not a gaitlib run"), r)


@case("evaluation", "eval of a regular file")
def _(w):
    (w.dir / "x").write_text("x")
    return res(judge(r := _eval(w, w.dir / "x"), "error", "x"), r)


def _run_copy(w: Work) -> Path:
    run = w.dir / "run"
    shutil.copytree(w.shared["finished"], run)
    return run


@case("evaluation", "eval of a run whose config.json has eval.bootstrap -5")
def _(w):
    run = _run_copy(w)
    cfg = json.loads((run / "config.json").read_text())
    cfg["eval"]["bootstrap"] = -5
    (run / "config.json").write_text(json.dumps(cfg))
    return res(judge(r := _eval(w, run), "error", "eval.bootstrap"), r)


@case("evaluation", "eval of a run whose config.json is not JSON")
def _(w):
    run = _run_copy(w)
    (run / "config.json").write_text("{,")
    return res(judge(r := _eval(w, run), "error", "config.json"), r)


@case("evaluation", "eval of a run whose store was removed")
def _(w):
    run = _run_copy(w)
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["store"] = str(w.dir / "gone")
    (run / "config.json").write_text(json.dumps(cfg))
    return res(judge(r := _eval(w, run), "error", "gone"), r)


@case("evaluation", "eval of a run without checkpoints")
def _(w):
    run = _run_copy(w)
    shutil.rmtree(run / "checkpoints")
    return res(judge(r := _eval(w, run), "error", "no checkpoint"), r)


@case("evaluation", "eval --write when eval.json cannot be written (read-only tmpfs)")
def _(w):
    ro = w.dir / "ro"
    if not tmpfs(ro, "size=256k"):
        return "not run (tmpfs)"
    try:
        shutil.copytree(w.shared["finished"], ro / "run")
        import subprocess
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        r = _eval(w, ro / "run", "--write")
        return res(judge(r, "error", "read-only"), r)
    finally:
        unmount(ro)


@case("evaluation", "eval of the finished run (accepted)")
def _(w):
    r = _eval(w, w.shared["finished"], "--bootstrap", "0")
    return res(judge(r, "accepted", ok=lambda: "rank-1 accuracy" in r.out), r)


# -- reproduce --------------------------------------------------------------------------------

def _rep(w: Work, *args: str, pattern: str) -> tuple[str, str]:
    """reproduce against an empty data root: nothing trains; the option must be refused first."""
    r = w.run("reproduce", "--profile", "smoke", "--no-build", "--runs-dir", w.dir / "runs",
              "--data-root", w.dir / "data", "--data", "casia-b", *args, timeout=60)
    return res(judge(r, "error", pattern), r)


for _args, _pattern in [
    (("--only", ","), "--only"), (("--only", "bogus"), "bogus"),
    (("--extra-seeds", "a,b"), "--extra-seeds"), (("--extra-seeds", "-1"), "--extra-seeds"),
    (("--seed", "-1"), "--seed"), (("--jobs", "0"), "--jobs"), (("--jobs", "-2"), "--jobs"),
    (("--gpus", ","), "--gpus"), (("--gpus", "a"), "--gpus"),
    (("--dry-run", "--steps", "0"), "--steps"), ((), "CASIA-B store"),
]:
    case("reproduce", " ".join(_args) or "--data casia-b with no store")(
        lambda w, a=_args, p=_pattern: _rep(w, *a, pattern=p))


@case("reproduce", "--runs-dir a regular file")
def _(w):
    (w.dir / "runs").write_text("keep")
    return _rep(w, pattern="runs-dir")


# -- checkpoint import ------------------------------------------------------------------------

def _ck(w: Work, src, *extra: str, model: str = "gaitset") -> Ran:
    return w.run("checkpoint", "import", "--from", "opengait", src, "--model", model, "--out",
                 w.dir / "out", *extra, timeout=60)


@case("checkpoint", "a pickle that runs code")
def _(w):
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {w.dir / 'pwned'}",))
    torch.save({"model": Evil()}, w.dir / "evil.pt")
    r = _ck(w, w.dir / "evil.pt")
    outcome = judge(r, "error", "evil.pt", ok=None)
    if (w.dir / "pwned").exists():
        outcome = "wrong"
    if "weights_only" in r.err and "False" in r.err or "can still be loaded" in r.err:
        outcome = "unhelpful"  # torch's advice to load it unsafely
    return res(outcome, r)


@case("checkpoint", "a text file")
def _(w):
    (w.dir / "a.pt").write_text("hello")
    return res(judge(r := _ck(w, w.dir / "a.pt"), "error", "a.pt"), r)


@case("checkpoint", "a FIFO")
def _(w):
    os.mkfifo(w.dir / "f.pt")
    return res(judge(r := _ck(w, w.dir / "f.pt"), "error", "f.pt"), r)


@case("checkpoint", "a directory")
def _(w):
    (w.dir / "d.pt").mkdir()
    return res(judge(r := _ck(w, w.dir / "d.pt"), "error", "d.pt"), r)


@case("checkpoint", "a missing file")
def _(w):
    return res(judge(r := _ck(w, w.dir / "nope.pt"), "error", "nope.pt"), r)


@case("checkpoint", "a gaitlib checkpoint (not OpenGait's)")
def _(w):
    ck = sorted((w.shared["finished"] / "checkpoints").iterdir())[-1]
    return res(judge(r := _ck(w, ck), "error", "ckpt"), r)


def _reference(w: Work, model: str = "gaitset") -> Path:
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import torch

    from tests.test_convert import reference_state
    path = w.dir / f"{model}.pt"
    torch.save({"model": reference_state(f"opengait/{model}/casia-b"), "iteration": 10}, path)
    return path


@case("checkpoint", "OpenGait GaitSet weights (accepted)")
def _(w):
    r = _ck(w, _reference(w), "--data", w.shared["store"])
    return res(judge(r, "accepted", ok=lambda: (w.dir / "out" / "imported.json").is_file()), r)


@case("checkpoint", "GaitSet weights imported as gaitgl")
def _(w):
    return res(judge(r := _ck(w, _reference(w), model="gaitgl"), "error", "gaitgl"), r)


@case("checkpoint", "--out a regular file")
def _(w):
    (w.dir / "out").write_text("keep")
    r = _ck(w, _reference(w))
    return res(judge(r, "error", "out", lost=lambda: (w.dir / "out").read_text() != "keep"), r)


@case("checkpoint", "--out a non-empty folder that is not a run --force")
def _(w):
    (w.dir / "out").mkdir()
    (w.dir / "out" / "thesis.tex").write_text("x")
    r = _ck(w, _reference(w), "--force")
    return res(judge(r, "error", "not a gaitlib run",
                     lost=lambda: not (w.dir / "out" / "thesis.tex").exists()), r)


@case("checkpoint", "--data a missing store")
def _(w):
    return res(judge(r := _ck(w, _reference(w), "--data", w.dir / "nope"), "error", "nope"), r)


@case("checkpoint", "--out on a full disk (tmpfs)")
def _(w):
    src = _reference(w)
    full = w.dir / "full"
    if not tmpfs(full, "size=64k"):
        return "not run (tmpfs)"
    try:
        r = w.run("checkpoint", "import", "--from", "opengait", src, "--model", "gaitset",
                  "--out", full / "out")
        return res(judge(r, "error", r"full/out.*No space left"), r)
    finally:
        unmount(full)


