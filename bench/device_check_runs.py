"""The sections of ``bench/device_check.py`` that size the study for a GPU box (the plan of
``gaitlib reproduce --plan`` rests on them):

* ``levers``: one model's training step, interleaved round by round so drift hits every variant
  alike: the recipe path (fp32 eager), + ``cudnn.benchmark``, + ``torch.compile`` (its compile
  time reported apart), bf16 autocast; median step time and peak memory of each.
* ``ddp_one_gpu``: the same step plain and wrapped in DistributedDataParallel with a one-process
  group (synchronised BatchNorms included): the wrapper's own overhead, which a wide run pays.
* ``gaitmm_oumvlp``: GaitMM's OU-MVLP run at its full batch (P=32 x K=8 x 30 frames, 5153
  classes) with ``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`` in a fresh process:
  allocated and reserved peaks, and whether the reserved peak fits 80 GB.
* ``local3d_shards``: the two 3D Local runs no single card holds (CASIA-B at 128x88, OU-MVLP),
  one rank's shard of the batch (P/n subjects) for n = 2, 4, 8: peak memory and step time per
  GPU, i.e. which world size fits which card.

With ``--cpu-dry`` every section runs on the CPU with tiny shapes (the plumbing, not the
numbers; a test runs it).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _config(model: str, dry: bool, shape: str = "casia-b", **options):
    from gaitlib.runs.cache import RunSpec, resolve
    from gaitlib.training import apply_overrides

    if not dry:
        spec = RunSpec.of(model, data=shape, shape=shape, profile="paper", **options)
        return resolve(spec)
    config = resolve(RunSpec.of(model, profile="smoke", shape=shape, **options))
    return apply_overrides(config, ["sampling.p=2", "sampling.k=2", "sampling.frames=4"])


def _batch(config, per_rank: int = 1):
    import torch

    s = config.sampling
    n = s.p // per_rank * s.k
    height = config.data.resolution or 64
    gen = torch.Generator().manual_seed(0)
    sils = (torch.rand(n, s.frames, height, height * 11 // 16, generator=gen) > 0.5).float()
    return sils, torch.arange(s.p // per_rank).repeat_interleave(s.k)


def _step_fn(config, device, classes: int, wrap=None):
    """One training step of ``config`` on ``device`` as the trainer takes it (bench/train.py's
    Stepper), synchronised; ``wrap(model)`` gives the module the step calls (DDP, compile)."""
    import torch

    from bench.train import Stepper
    from gaitlib.training import precision

    torch.manual_seed(0)
    stepper = Stepper(config, classes)
    stepper.model.to(device)  # in place: the optimizer keeps its parameters
    stepper.autocast = lambda: precision.autocast(device, config.precision)
    stepper.scaler = precision.grad_scaler(device, config.precision)
    if wrap is not None:
        stepper.net = wrap(stepper.model)

    def step(sils, labels) -> None:
        stepper.step(sils, labels)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return step


def _classes(config, dry: bool) -> int:
    from gaitlib.runs.memory import paper_classes

    return config.sampling.p if dry else paper_classes(config)


def section_levers(dry: bool, model_name: str = "gaitgl", rounds: int = 5):
    def run(box: float) -> dict:
        import copy

        import torch

        device = torch.device("cpu" if dry or not torch.cuda.is_available() else "cuda")
        base = _config(model_name, dry)
        base.precision = "fp32"
        variants = {"recipe_fp32": {}, "cudnn_benchmark": {"benchmark": True},
                    "compile": {"compile": "default"}, "bf16": {"precision": "bf16"}}
        steppers, out = {}, {}
        sils, labels = (t.to(device) for t in _batch(base))
        for name, change in variants.items():
            config = copy.deepcopy(base)
            config.precision = change.get("precision", "fp32")
            # on the CPU dry run, dynamo's tracing without inductor's C++ build (the plumbing)
            wrap = (lambda m: torch.compile(m, backend="eager" if dry else "inductor")) \
                if change.get("compile") else None
            steppers[name] = (_step_fn(config, device, _classes(config, dry), wrap), change)
            torch.backends.cudnn.benchmark = bool(change.get("benchmark"))
            began = time.perf_counter()
            steppers[name][0](sils, labels)  # warm-up: compiles, autotunes
            out[name] = {"first_step_s": round(time.perf_counter() - began, 2)}
        times = {name: [] for name in variants}
        began = time.perf_counter()
        for _ in range(rounds):
            for name, (step, change) in steppers.items():
                torch.backends.cudnn.benchmark = bool(change.get("benchmark"))
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                t = time.perf_counter()
                step(sils, labels)
                times[name].append(time.perf_counter() - t)
                if device.type == "cuda":
                    out[name]["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if time.perf_counter() - began > box * 0.8:
                break
        torch.backends.cudnn.benchmark = False
        ref = statistics.median(times["recipe_fp32"])
        for name, values in times.items():
            out[name].update(step_ms=round(1000 * statistics.median(values), 2),
                             speedup=round(ref / statistics.median(values), 3))
        return {"model": model_name, "device": str(device), "rounds": len(times["bf16"]),
                "variants": out, "note": "interleaved rounds; compile's first step includes "
                                         "its compile time"}
    return run


def section_ddp_one_gpu(dry: bool, model_name: str = "gaitgl", steps: int = 8):
    def run(box: float) -> dict:
        import torch
        import torch.distributed as dist

        from gaitlib.training.distributed import synchronise_batchnorm

        device = torch.device("cpu" if dry or not torch.cuda.is_available() else "cuda", 0)
        config = _config(model_name, dry)
        sils, labels = (t.to(device) for t in _batch(config))
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0,
                                world_size=1)
        try:
            out = {}
            def ddp(model):  # what a wide run's rank trains (trainer.wrap_model)
                return torch.nn.parallel.DistributedDataParallel(
                    synchronise_batchnorm(model, device),
                    device_ids=[0] if device.type == "cuda" else None, find_unused_parameters=True)

            for name in ("plain", "ddp"):
                step = _step_fn(config, device, _classes(config, dry),
                                ddp if name == "ddp" else None)
                step(sils, labels)
                times = []
                for _ in range(steps):
                    t = time.perf_counter()
                    step(sils, labels)
                    times.append(time.perf_counter() - t)
                out[name] = round(1000 * statistics.median(times), 2)
            return {"model": model_name, "device": str(device), "plain_ms": out["plain"],
                    "ddp_ms": out["ddp"], "overhead": round(out["ddp"] / out["plain"] - 1, 3)}
        finally:
            dist.destroy_process_group()
    return run


_PEAK_CHILD = """
import json, sys, time, torch
sys.path.insert(0, {repo!r})
sys.path.insert(0, {bench!r})
from device_check_runs import _batch, _classes, _config, _step_fn
dry = {dry}
device = torch.device("cpu" if dry else "cuda")
config = _config("gaitmm", dry, "oumvlp", variant="oumvlp")
sils, labels = (t.to(device) for t in _batch(config))
step = _step_fn(config, device, _classes(config, dry))
times = []
for _ in range(3):
    t = time.perf_counter(); step(sils, labels); times.append(time.perf_counter() - t)
out = {{"batch": list(sils.shape), "step_s": round(min(times), 3)}}
if device.type == "cuda":
    out["allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    out["reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    out["fits_80gb"] = torch.cuda.max_memory_reserved() <= 80e9
print("RESULT " + json.dumps(out))
"""


def section_gaitmm_oumvlp(dry: bool):
    def run(box: float) -> dict:
        code = _PEAK_CHILD.format(repo=str(REPO), bench=str(REPO / "bench"), dry=dry)
        env = {**os.environ, "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=box, env=env)
        found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if not found:
            raise RuntimeError(f"exit {done.returncode}: {(done.stderr or done.stdout)[-800:]}")
        return {"alloc_conf": "expandable_segments:True", **json.loads(found[-1][7:])}
    return run


def section_local3d_shards(dry: bool, widths: tuple[int, ...] = (2, 4, 8)):
    def run(box: float) -> dict:
        import torch

        device = torch.device("cpu" if dry or not torch.cuda.is_available() else "cuda")
        rows, began = [], time.perf_counter()
        for label, shape, options in (("casia-b 128x88", "casia-b", {"resolution": 128}),
                                      ("oumvlp", "oumvlp", {"variant": "oumvlp"})):
            config = _config("local3d", dry, shape, **options)
            for n in widths:
                row = {"run": label, "gpus": n}
                if config.sampling.p % n or time.perf_counter() - began > box * 0.8:
                    rows.append({**row, "skipped": "P does not split" if config.sampling.p % n
                                 else "time box"})
                    continue
                try:
                    sils, labels = (t.to(device) for t in _batch(config, n))
                    step = _step_fn(config, device, _classes(config, dry))
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    t = time.perf_counter()
                    step(sils, labels)
                    step(sils, labels)
                    row.update(batch=list(sils.shape),
                               step_s=round((time.perf_counter() - t) / 2, 3))
                    if device.type == "cuda":
                        row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                except Exception as err:  # an out-of-memory shard is the answer, not a crash
                    row["error"] = f"{type(err).__name__}: {str(err)[:200]}"
                finally:
                    step = None
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                rows.append(row)
                print(f"  {row}", flush=True)
        return {"device": str(device), "rows": rows,
                "note": "one rank's shard (P/n subjects x K), fp32, 2 steps; peak = "
                        "max_memory_allocated (+ ~1.5 GiB CUDA context and allocator slack)"}
    return run


def sections(dry: bool) -> list[tuple[str, object, float]]:
    """(name, section, seconds) for device_check.py's list."""
    return [("levers", section_levers(dry), 120), ("ddp_one_gpu", section_ddp_one_gpu(dry), 40),
            ("gaitmm_oumvlp", section_gaitmm_oumvlp(dry), 90),
            ("local3d_shards", section_local3d_shards(dry), 120)]
