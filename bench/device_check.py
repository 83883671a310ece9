"""One GPU check of the fast-training path, in under 8 minutes on one H100/H200.

Sections (each guarded: an error is recorded in the JSON and the next section runs; each has a
time box, and a section is skipped when the whole budget is spent):

1. ``env``: torch, CUDA, GPU name, the TF32 settings the timings ran under.
2. ``tests``: ``pytest -m cuda`` (GPU-resident batches equal the CPU ones, bf16/fp16 training
   steps finite, fp32 features equal the CPU's).
3. ``steps``: every model's training step at its paper batch (P x K x 30 frames of 64x44) in
   fp32, bf16 and bf16+channels-last: time per step (CUDA-synchronised median), the FLOPs of the
   step (3 x the forward pass counted with ``torch.utils.flop_counter.FlopCounterMode``, as the
   cost page counts them: the backward pass costs about twice the forward, and flop_counter
   counts a grouped convolution's weight gradient once per group, so counting the backward
   itself would inflate 3D Local's and CSTL's; the optimizer's element-wise work is not counted),
   and achieved TFLOP/s.
3b. ``local3d_block``: 3D Local's training step at the paper batch, fp32, with the local block as
   gaitlib computed it before its memory rewrite (``tests/local3d_reference.py``), the current
   block, and the current block with ``recompute=True``, at 64x44; and the current block with
   ``recompute=True`` at 128x88: time per step and peak GPU memory of each.
4. ``oumvlp_eval``: ``gaitlib.evaluation.evaluate`` on OU-MVLP-sized random features (5154 test
   subjects x 2 sequences x 14 views) on the GPU.
5. ``levers``, ``ddp_one_gpu``, ``gaitmm_oumvlp``, ``local3d_shards``: what the plan of
   ``gaitlib reproduce --plan`` rests on (see ``bench/device_check_runs.py``).
6. ``gaitgl_casia``: the real CASIA-B copy (``.realdata/casia-b-bin64/*.npz.xz``, carried with
   the working tree) turned into a gaitlib store directly (no pkl tree), GaitGL trained with its
   paper recipe (bf16, channels-last, batches drawn on the GPU) for a wall-clock budget, then
   evaluated on the 50 test subjects: the rank-1 table. The number of iterations is set from
   the step time measured just before, so the run ends (and its LR schedule completes) in time.

Everything goes into one JSON (``--out``, default ``$OUT/device_check.json``), rewritten after
every section so a time-out keeps what was done.

    python3 bench/device_check.py                 # on the GPU machine (bench/device_check.sh)
    python bench/device_check.py --cpu-dry        # the same sections, tiny, on the CPU
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import lzma
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = ("gaitset", "gaitpart", "gaitgl", "gaitmm", "local3d", "cstl")
OU_VIEWS = [f"{v:03d}" for v in (*range(0, 91, 15), *range(180, 271, 15))]


class Check:
    """The JSON being built, the clock, and the per-section guard."""

    def __init__(self, out: Path, budget: float, dry: bool):
        self.out, self.budget, self.dry = out, budget, dry
        self.began = time.perf_counter()
        self.data: dict = {"cpu_dry": dry, "budget_s": budget, "sections": {}}

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.began)

    def run(self, name: str, fn, *, needs: float) -> None:
        """Run section ``fn(box)``; ``needs``: seconds it is given (skipped if fewer are left)."""
        left = self.left()
        if left < min(needs, 20):
            self.data["sections"][name] = {"skipped": f"only {left:.0f} s of the budget left"}
            self.save()
            return
        box = min(needs, left)
        start = time.perf_counter()
        print(f"[device_check] {name} (box {box:.0f} s, {left:.0f} s left)", flush=True)
        try:
            result = fn(box)
            record = {"ok": True, **result}
        except Exception as err:  # recorded; the other sections still run
            record = {"ok": False, "error": f"{type(err).__name__}: {err}",
                      "traceback": traceback.format_exc()[-3000:]}
            print(record["traceback"], flush=True)
        record["seconds"] = round(time.perf_counter() - start, 1)
        self.data["sections"][name] = record
        self.save()

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.perf_counter() - self.began, 1)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(self.out.name + ".part")
        tmp.write_text(json.dumps(self.data, indent=1, default=str) + "\n")
        os.replace(tmp, self.out)


def _device(dry: bool):
    import torch

    return torch.device("cpu" if dry or not torch.cuda.is_available() else "cuda")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


# -- sections -----------------------------------------------------------------------------------

def section_env(dry: bool):
    def run(box: float) -> dict:
        import torch

        info = {"python": platform.python_version(), "torch": torch.__version__,
                "cuda_available": torch.cuda.is_available(), "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
                "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                "tf32_cudnn": torch.backends.cudnn.allow_tf32, "cpus": os.cpu_count()}
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                        multiprocessors=p.multi_processor_count)
        return info
    return run


def section_tests(box: float) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
           "tests/test_speed.py"]
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=box)
        out, rc = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as err:
        out, rc = f"{err.stdout or ''}\ntimed out after {box:.0f} s", 124
    last = [line for line in out.strip().splitlines() if line.strip()][-1:] or [""]
    return {"returncode": rc, "summary": last[0], "output_tail": out[-4000:]}


def _paper_config(model: str, dry: bool, options: dict | None = None):
    from gaitlib.training import apply_overrides, recipe

    if not dry:
        return recipe(model, "paper", options=options)
    config = recipe(model, "smoke", options=options)  # tiny shapes: the plumbing, not the numbers
    return apply_overrides(config, ["sampling.p=2", "sampling.k=2", "sampling.frames=4"])


def _step_config(model: str, dry: bool, precision: str, channels_last: bool,
                 options: dict | None = None):
    config = _paper_config(model, dry, options)
    config.precision, config.channels_last = precision, channels_last
    return config


def _timed_rows(cases, box: float, device) -> list[dict]:
    """Each case ``(row, config, prepare)`` timed by ``_time_step`` within ``box`` seconds in all:
    its row completed with the figures, an error, or 'skipped'."""
    import torch

    rows, began = [], time.perf_counter()
    for row, config, prepare in cases:
        if time.perf_counter() - began > box - 5:
            rows.append({**row, "skipped": "time box"})
            continue
        try:
            row.update(_time_step(config(), device, box / len(cases), prepare))
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(row)
        print(f"  {row}", flush=True)
    return rows


def section_steps(dry: bool, models: tuple[str, ...], variants: tuple[str, ...]):
    def run(box: float) -> dict:
        device = _device(dry)
        cases = [({"model": m, "variant": v},
                  partial(_step_config, m, dry, "bf16" if v.startswith("bf16") else "fp32",
                          v.endswith("cl")), None) for m in models for v in variants]
        return {"rows": _timed_rows(cases, box, device), "device": str(device),
                "flops": "3x forward",
                "note": "FLOPs: 3 x the forward pass of one step (FlopCounterMode); TFLOP/s = "
                        "FLOPs / median step time; the optimizer's element-wise work uncounted"}
    return run


def _time_step(config, device, box, prepare=None) -> dict:
    """Median time, FLOPs (3 x the forward) and peak memory of ``config``'s training step;
    ``prepare(stepper)`` may change the model first (then the optimizer is rebuilt)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench.train import Stepper, cpu_batch
    from gaitlib.training import precision as prec
    from gaitlib.training.trainer import build_optimizer

    torch.manual_seed(0)
    stepper = Stepper(config, num_classes=74)
    if prepare is not None:
        prepare(stepper)
        stepper.optimizer = build_optimizer(config, stepper.model)
    stepper.model.to(device)  # in place: the optimizer keeps its parameters (formats kept)
    stepper.autocast = lambda: prec.autocast(device, config.precision)
    stepper.scaler = prec.grad_scaler(device, config.precision)
    sils, labels = cpu_batch(config)
    sils, labels = sils.to(device), labels.to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    stepper.step(sils, labels)  # warm-up: cuDNN autotuning, allocator
    _sync(device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), stepper.autocast():  # the forward in training mode
        stepper.model(sils)
    flops = 3 * counter.get_total_flops()
    times, began = [], time.perf_counter()
    while len(times) < 30 and (len(times) < 3 or time.perf_counter() - began < box * 0.7):
        _sync(device)
        t = time.perf_counter()
        stepper.step(sils, labels)
        _sync(device)
        times.append(time.perf_counter() - t)
    step = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return {"batch": [config.sampling.p, config.sampling.k, config.sampling.frames,
                      *sils.shape[-2:]], "steps_timed": len(times),
            "step_ms": round(1000 * step, 2), "step_ms_min": round(1000 * min(times), 2),
            "gflop_per_step": round(flops / 1e9, 1), "tflops": round(flops / step / 1e12, 2),
            "peak_gib": None if peak is None else round(peak, 2)}


LOCAL3D_CASES = (  # (input, local block, recompute)
    ("64x44", "previous", False), ("64x44", "current", False), ("64x44", "current", True),
    ("128x88", "current", True))


def _previous_block(stepper) -> None:
    """3D Local with its local blocks as gaitlib computed them before the memory rewrite."""
    from tests.local3d_reference import reference_of

    for b, block in list(stepper.model.local.items()):
        stepper.model.local[b] = reference_of(block)


def section_local3d_block(dry: bool):
    def run(box: float) -> dict:
        device = _device(dry)
        cases = []
        for resolution, block, recompute in LOCAL3D_CASES:
            options = {"recompute": True} if recompute else {}
            if resolution == "128x88":
                options["resolution"] = 128
            cases.append(({"resolution": resolution, "block": block, "recompute": recompute},
                          partial(_step_config, "local3d", dry, "fp32", False, options or None),
                          _previous_block if block == "previous" else None))
        return {"rows": _timed_rows(cases, box, device), "device": str(device),
                "note": "3D Local, fp32, paper batch: the previous local block "
                        "(tests/local3d_reference.py) against the current one, recompute off/on"}
    return run


def section_oumvlp_eval(dry: bool):
    def run(box: float) -> dict:
        import numpy as np
        import torch

        from gaitlib.evaluation import evaluate

        subjects = 60 if dry else 5154
        c, p = (32, 4) if dry else (256, 16)
        rows = [(f"{s:05d}", seq, v) for s in range(subjects) for seq in ("00", "01")
                for v in OU_VIEWS]
        rng = np.random.default_rng(0)
        drop = rng.random(len(rows)) < 0.05  # some gallery sequences missing, as in OU-MVLP
        rows = [r for r, d in zip(rows, drop, strict=True) if not (d and r[1] == "01")]
        subj, cond, view = (np.array(x) for x in zip(*rows, strict=True))
        _, code = np.unique(subj, return_inverse=True)
        centres = torch.randn(subjects, c, p, generator=torch.Generator().manual_seed(0))
        feats = centres[torch.from_numpy(code)] + 1.5 * torch.randn(len(rows), c, p)
        device = _device(dry)
        out = {"features": [len(rows), c, p], "device": str(device)}
        for bootstrap in (0, 1000):
            _sync(device)
            t = time.perf_counter()
            result = evaluate(feats, subj, cond, view, "oumvlp", bootstrap=bootstrap,
                              device=device)
            _sync(device)
            out[f"seconds_bootstrap_{bootstrap}"] = round(time.perf_counter() - t, 2)
        out["mean"] = {k: round(float(v), 3) for k, v in result.table["Mean"].items()}
        return out
    return run


def compact_to_store(src: Path, out: Path, subjects: list[str] | None = None) -> dict:
    """A gaitlib store from the compact CASIA-B files (``SSS.npz.xz``: per (cond, view) the
    64x64 silhouettes bit-packed along rows), written directly: no pkl tree in between. The
    arrays are already pretreated, as an OpenGait pkl tree's are, so they are stored as they
    are (short sequences kept, as the pkl importer keeps them)."""
    import numpy as np

    from gaitlib.data.store import StoreWriter

    files = sorted(src.glob("*.npz.xz"))
    if subjects is not None:
        files = [f for f in files if f.name.split(".")[0] in subjects]
    if not files:
        raise FileNotFoundError(f"no *.npz.xz under {src}")
    n = 0
    meta = {"source": f"{src.name} (compact npz.xz)", "pretreated_on_import": False,
            "binarized": True}
    with StoreWriter(out, "casia-b", force=True, extra_meta=meta) as writer:
        for path in files:
            sid = path.name.split(".")[0]
            with lzma.open(path) as f:
                npz = np.load(io.BytesIO(f.read()), allow_pickle=False)
            for key in sorted(npz.files):
                cond, view = key.split("_")
                frames = np.unpackbits(npz[key], axis=-1)[..., :64] * np.uint8(255)
                if len(frames):
                    writer.add(sid, cond, view, frames)
                    n += 1
    return {"subjects": len(files), "sequences": n}


def section_gaitgl(dry: bool, data: Path, train_seconds: float):
    def run(box: float) -> dict:
        import torch

        from gaitlib.data.store import Store
        from gaitlib.training import apply_overrides, recipe, train
        from gaitlib.training.config import ScheduleConfig

        began = time.perf_counter()
        device = _device(dry)
        work = Path(tempfile.mkdtemp(prefix="device_check_"))
        t = time.perf_counter()
        picked = None
        if dry:  # 4 training and 2 test subjects of the LT split
            picked = ["001", "002", "003", "004", "075", "076"]
        imported = compact_to_store(data, work / "casia-b", picked)
        imported["seconds"] = round(time.perf_counter() - t, 1)
        store = Store(work / "casia-b")
        imported["frames"] = int(store.meta["n_frames"])
        config = recipe("gaitgl", "smoke" if dry else "paper")
        config.data.store = str(store.path)
        overrides = ["precision=bf16", "channels_last=true", "data.on_device=true",
                     "eval.precision=fp32", f"device={device.type}", "log_every=50",
                     "checkpoint_every=100000", "eval.bootstrap=200"]
        if dry:
            overrides += ["data.train_subjects=001-004", "data.test_subjects=075-076",
                          "sampling.p=2", "sampling.k=2", "eval.max_frames=0"]
        config = apply_overrides(config, overrides)
        # Iterations from a short calibration run of the same config: its speed over the
        # iterations after the first 10 (warm-up: cuDNN autotuning, allocator).
        calib = 2 if dry else 40
        cal = copy.deepcopy(config)
        cal.schedule = ScheduleConfig(iterations=10 + calib, milestones=[])
        cal.eval.enabled, cal.log_every = False, 10
        train(cal, work / "calib", progress=False)
        speed = [json.loads(line)["it_per_s"] for line in
                 (work / "calib" / "metrics.jsonl").read_text().splitlines()][1:]
        per_step = 1 / statistics.median(speed)
        # What the time box leaves after the import, setup and the final evaluation (~120 s).
        budget = 5 if dry else max(30.0, min(train_seconds, box - 120 - (time.perf_counter() - began)))
        iterations = max(4, int(budget / per_step))
        config.schedule.iterations = iterations
        config.schedule.milestones = [int(iterations * 7 / 8)]  # the paper's 70k of 80k
        t = time.perf_counter()
        result = train(config, work / "run", progress=False)
        trained = time.perf_counter() - t
        summary = json.loads((work / "run" / "results.json").read_text())
        eval_json = json.loads((work / "run" / "eval.json").read_text())
        metrics = [json.loads(line) for line in
                   (work / "run" / "metrics.jsonl").read_text().splitlines()]
        out = {"import": imported, "device": str(device),
               "setting": "paper recipe (8,8)x30 frames 64x44, Adam 1e-4, wd 5e-4, triplet+CE; "
                          "bf16 autocast, channels-last, batches drawn on the GPU; "
                          "LR x0.1 at 7/8 of the iterations; test features fp32",
               "calibration_s_per_step": round(per_step, 4), "train_budget_s": round(budget, 1),
               "iterations": iterations,
               "paper_iterations": 80000, "train_seconds_incl_eval": round(trained, 1),
               "results": summary, "evaluation": eval_json,
               "loss_curve": [(m["iteration"], m["loss"]) for m in metrics][-40:],
               "cuda_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
               if device.type == "cuda" else None}
        if result.evaluation is not None:
            out["rank1_mean"] = {k: round(float(v), 2)
                                 for k, v in result.evaluation.table["Mean"].items()}
        return out
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-dry", action="store_true", help="tiny, on the CPU (plumbing)")
    parser.add_argument("--out", default=None, help="JSON path (default $OUT/device_check.json)")
    parser.add_argument("--budget", type=float, default=420, help="seconds for all sections")
    parser.add_argument("--data", default=str(REPO / ".realdata" / "casia-b-bin64"),
                        help="folder of the compact CASIA-B files")
    parser.add_argument("--train-seconds", type=float, default=150,
                        help="GaitGL training time at most (less if the budget is short)")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip")
    args = parser.parse_args()
    out = Path(args.out or Path(os.environ.get("OUT", REPO / ".device_out")) / "device_check.json")
    dry = args.cpu_dry
    check = Check(out, args.budget, dry)
    skip = set(args.skip.split(","))
    models = ("gaitset", "gaitgl") if dry else MODELS
    variants = ("fp32", "bf16", "bf16_cl")
    sections = [
        ("env", section_env(dry), 30),
        ("tests", section_tests, 60 if not dry else 120),
        ("steps", section_steps(dry, models, variants), 120),
        ("local3d_block", section_local3d_block(dry), 60),
        ("oumvlp_eval", section_oumvlp_eval(dry), 40),
        ("gaitgl_casia", section_gaitgl(dry, Path(args.data), args.train_seconds),
         args.train_seconds + 120),
    ]
    from bench.device_check_runs import sections as runs_sections

    sections += runs_sections(dry)  # sizing the study for a GPU box (gaitlib reproduce --plan)
    for name, fn, needs in sections:
        if name not in skip:
            check.run(name, fn, needs=needs)
    check.save()
    print(json.dumps({k: {kk: v.get(kk) for kk in ("ok", "seconds", "error", "rank1_mean",
                                                    "summary", "skipped") if kk in v}
                      for k, v in check.data["sections"].items()}, indent=1))
    print(f"[device_check] wrote {out} in {check.data['elapsed_s']} s")


if __name__ == "__main__":
    main()
