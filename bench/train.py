"""Training-step speed and peak memory of the baselines at the papers' batch shapes, on CPU.

For each model its paper recipe gives the batch (P x K sequences x 30 frames of 64x44): GaitSet
and GaitPart (8,16), GaitGL (8,8). One optimizer step is the trainer's: forward, the configured
losses (triplet, + CE for GaitGL), backward, Adam. Inputs are random silhouettes, so data
loading is not measured (bench/loader.py does that). Each model runs in its own subprocess so
that its peak resident memory (``ru_maxrss`` after the timed steps minus before the first step)
is its own. Prints iterations/s, frames/s and peak memory, with ratios to the first model.

    .venv/bin/python bench/train.py [--models gaitset,gaitpart,gaitgl] [--iterations 3]
                                    [--scale 1.0] [--threads N]

``--scale`` < 1 shrinks K (sequences per subject) for a quick look on a small machine; the
papers' shape is ``--scale 1``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(model_name: str, iterations: int, warmup: int, scale: float, threads: int) -> dict:
    import torch

    from gaitlib.training import recipe
    from gaitlib.training.distributed import DistInfo
    from gaitlib.training.trainer import LossComposer, build_model, build_optimizer

    if threads:
        torch.set_num_threads(threads)
    config = recipe(model_name, "paper")
    p, k = config.sampling.p, max(2, round(config.sampling.k * scale))
    frames = config.sampling.frames
    torch.manual_seed(0)
    model = build_model(config, num_classes=74).train()
    optimizer = build_optimizer(config, model)
    losses = LossComposer(config.loss, DistInfo())
    sils = (torch.rand(p * k, frames, 64, 44) > 0.5).float()
    labels = torch.arange(p).repeat_interleave(k)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step() -> None:
        loss, _ = losses(model(sils), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"model": model_name, "batch": [p, k, frames], "it_per_s": iterations / seconds,
            "frames_per_s": iterations * p * k * frames / seconds,
            "peak_mem_mb": (peak - before) / 1024, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gaitset,gaitpart,gaitgl")
    parser.add_argument("--iterations", type=int, default=3, help="timed steps (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps (default 1)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="K multiplier (default 1: the papers' shape)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.iterations, args.warmup, args.scale, args.threads)))
        return
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        cmd = [sys.executable, __file__, "--one", name, "--iterations", str(args.iterations),
               "--warmup", str(args.warmup), "--scale", str(args.scale),
               "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{name} failed:\n{done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"measured {name}", file=sys.stderr, flush=True)
    ref = rows[0]
    print(f"CPU training step, fp32, {ref['threads']} threads, {args.iterations} timed iterations "
          f"after {args.warmup} warm-up; ratios vs {ref['model']}")
    print(f"{'model':<10} {'batch PxKxT':<12} {'it/s':>8} {'frames/s':>9} {'x speed':>8} "
          f"{'peak MB':>9} {'x mem':>6}")
    for r in rows:
        shape = "x".join(str(v) for v in r["batch"])
        print(f"{r['model']:<10} {shape:<12} {r['it_per_s']:8.3f} {r['frames_per_s']:9.1f} "
              f"{r['it_per_s'] / ref['it_per_s']:8.2f} {r['peak_mem_mb']:9.0f} "
              f"{r['peak_mem_mb'] / max(ref['peak_mem_mb'], 1e-9):6.2f}")


if __name__ == "__main__":
    main()
