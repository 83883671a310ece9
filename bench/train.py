"""Training-step speed: the default fast path against fp32 eager, and peak memory at paper shapes.

``--profile cpu`` (or ``paper``): for every model, the training step of the profile's default path
(its recipe's ``precision``, ``channels_last`` and ``compile``) against the same step in fp32
eager, on the same batch (the recipe's P x K x frames at its resolution, blob silhouettes), the
two interleaved in one process (alternating which goes first), after warm-up. Prints one line per
model, ``speedup MODEL X.XX``: the median over ``--pairs`` pairs of fp32 time / fast time.
``--variant precision=bf16,channels_last=true`` times that setting instead of the recipe's
(how the cpu profile's defaults were chosen).

    .venv/bin/python bench/train.py --profile cpu [--models ...] [--pairs 12] [--variant ...]

Without ``--profile``: the older measurement below.

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


MODELS = ("gaitset", "gaitpart", "gaitgl", "gaitmm", "local3d", "cstl")


def cpu_batch(config, seed: int = 0):
    """A training batch of ``config``'s shape: blob silhouettes as the model sees them."""
    import torch

    from gaitlib.data.sampling import to_model_input

    s = config.sampling
    n = s.p * s.k
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n * s.frames, 1, 8, 6, generator=gen)
    blobs = torch.nn.functional.interpolate(low, size=(64, 44), mode="bilinear") > 0.5
    frames = (blobs.to(torch.uint8) * 255).reshape(n, s.frames, 64, 44)
    return to_model_input(frames, "cpu", config.data.resolution), torch.arange(s.p).repeat_interleave(s.k)


class Stepper:
    """One model trained the way the trainer does it, under a given precision / memory format."""

    def __init__(self, config, num_classes: int, state: dict | None = None):
        import torch

        from gaitlib.training import precision
        from gaitlib.training.distributed import DistInfo
        from gaitlib.training.trainer import LossComposer, build_model, build_optimizer

        self.config = config
        self.model = build_model(config, num_classes=num_classes).train()
        if state is not None:
            self.model.load_state_dict(state)
        if config.channels_last:
            precision.to_channels_last(self.model)
        self.net = torch.compile(self.model, mode=config.compile) if config.compile else self.model
        self.optimizer = build_optimizer(config, self.model)
        self.losses = LossComposer(config.loss, DistInfo())
        self.autocast = lambda: precision.autocast("cpu", config.precision)
        self.scaler = precision.grad_scaler("cpu", config.precision)

    def step(self, sils, labels, clock=None) -> dict:
        """One step; with ``clock`` (a list) appends (phase, seconds) for forward, backward and
        optimizer."""
        import time

        t0 = time.perf_counter()
        with self.autocast():
            out = self.net(sils)
        loss, logs = self.losses(out, labels)
        t1 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        t2 = time.perf_counter()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        t3 = time.perf_counter()
        if clock is not None:
            clock += [("forward", t1 - t0), ("backward", t2 - t1), ("optimizer", t3 - t2)]
        return logs


def speedup(model_name: str, profile: str, pairs: int, warmup: int, variant: list[str]) -> dict:
    """Median ratio fp32-eager step time / default-path step time, interleaved pairs."""
    import copy
    import statistics
    import time

    import torch

    from gaitlib.training import apply_overrides, recipe

    fast_config = apply_overrides(recipe(model_name, profile), variant)
    ref_config = copy.deepcopy(fast_config)
    ref_config.precision, ref_config.channels_last, ref_config.compile = "fp32", False, ""
    torch.manual_seed(0)
    num_classes = 50 if profile != "paper" else 74
    ref = Stepper(ref_config, num_classes)
    fast = Stepper(fast_config, num_classes, state=ref.model.state_dict())
    sils, labels = cpu_batch(fast_config)
    for _ in range(warmup):
        ref.step(sils, labels)
        fast.step(sils, labels)
    ratios, times = [], {"fp32": [], "fast": []}
    for i in range(pairs):
        order = (("fp32", ref), ("fast", fast)) if i % 2 == 0 else (("fast", fast), ("fp32", ref))
        took = {}
        for name, stepper in order:
            start = time.perf_counter()
            stepper.step(sils, labels)
            took[name] = time.perf_counter() - start
            times[name].append(took[name])
        ratios.append(took["fp32"] / took["fast"])
    return {"model": model_name, "speedup": statistics.median(ratios),
            "fp32_ms": 1000 * statistics.median(times["fp32"]),
            "fast_ms": 1000 * statistics.median(times["fast"]),
            "setting": f"precision={fast_config.precision} channels_last={fast_config.channels_last}"
                       f" compile={fast_config.compile or 'off'}",
            "batch": [fast_config.sampling.p, fast_config.sampling.k, fast_config.sampling.frames,
                      *sils.shape[-2:]], "threads": torch.get_num_threads()}


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
    parser.add_argument("--profile", choices=["smoke", "cpu", "paper"],
                        help="print 'speedup MODEL X.XX': the profile's default path vs fp32 eager")
    parser.add_argument("--pairs", type=int, default=12, help="interleaved pairs (--profile)")
    parser.add_argument("--variant", default="",
                        help="comma-separated overrides timed instead of the recipe's setting")
    args = parser.parse_args()
    if args.profile:
        models = MODELS if args.models == parser.get_default("models") else \
            [m.strip() for m in args.models.split(",") if m.strip()]
        variant = [v for v in args.variant.split(",") if v]
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        for name in models:
            r = speedup(name, args.profile, args.pairs, max(args.warmup, 2), variant)
            print(f"# {name}: {r['setting']}, batch {r['batch']}, {r['threads']} threads, "
                  f"fp32 {r['fp32_ms']:.0f} ms, fast {r['fast_ms']:.0f} ms (medians)",
                  file=sys.stderr, flush=True)
            print(f"speedup {name} {r['speedup']:.2f}", flush=True)
        return
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
