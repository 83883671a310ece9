"""Where a training step's time goes: loader / forward (+ losses) / backward / optimizer.

For every model, at the cpu profile's shape (its recipe: (4,4) x 8 frames at 32x22, the
profile's default precision and memory format) and at the paper's shape ((8,16) or (8,8) x 30
frames at 64x44, fp32), each measured part is the median over the timed steps:

- ``loader``: building one batch in the main process (``workers=0``: the work a worker does
  per batch) from a store: sampling, frame gathering, collation and ``to_model_input``;
- ``forward``: the model under its autocast, plus the composed losses;
- ``backward``: gradient zeroing and the backward pass;
- ``optimizer``: the optimizer step (and the gradient scaler's bookkeeping under fp16).

The store is a random one written to a temporary folder (the loader's cost depends on the number
and length of sequences, not on their content), or ``--store``.

    .venv/bin/python bench/breakdown.py [--models ...] [--shapes cpu,paper] [--steps 5]
                                        [--paper-steps 2] [--store PATH]

The paper shape is slow on 2 cores (GaitSet: ~100 s a step on the shared machine, most of it
system time): ``--paper-steps`` and ``--models`` keep it short.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.train import MODELS, Stepper, cpu_batch  # noqa: E402


def random_store(path: Path, subjects: int = 12, seed: int = 0):
    """A CASIA-B-shaped store of random frames: ``subjects`` x 10 conditions x 2 views."""
    import numpy as np

    from gaitlib.data.store import Store, StoreWriter

    rng = np.random.default_rng(seed)
    conditions = [*(f"nm-{i:02d}" for i in range(1, 7)), "bg-01", "bg-02", "cl-01", "cl-02"]
    with StoreWriter(path, "synthetic") as writer:
        for s in range(1, subjects + 1):
            for c in conditions:
                for v in ("000", "090"):
                    t = int(rng.integers(50, 110))
                    writer.add(f"{s:03d}", c, v, (rng.random((t, 64, 64)) > 0.5).astype(np.uint8) * 255)
    return Store(path)


def breakdown(model: str, shape: str, steps: int, store) -> dict:
    import torch

    from gaitlib.data.sampling import to_model_input, train_loader
    from gaitlib.training import recipe
    from gaitlib.training.trainer import _sampling

    config = recipe(model, "cpu" if shape == "cpu" else "paper")
    s = config.sampling
    subjects = sorted(set(store.subjects.tolist()))
    loader = iter(train_loader(store, subjects[: max(s.p, len(subjects) // 2 + 1)], s.p, s.k,
                               _sampling(config), workers=0, flip=s.flip))
    torch.manual_seed(0)
    stepper = Stepper(config, num_classes=74)
    sils, labels = cpu_batch(config)
    stepper.step(sils, labels)  # warm-up
    parts: dict[str, list[float]] = {"loader": [], "forward": [], "backward": [], "optimizer": []}
    for _ in range(steps):
        t = time.perf_counter()
        batch = next(loader)
        to_model_input(batch["frames"], "cpu", config.data.resolution)
        parts["loader"].append(time.perf_counter() - t)
        clock: list = []
        stepper.step(sils, labels, clock)
        for name, seconds in clock:
            parts[name].append(seconds)
    ms = {k: 1000 * statistics.median(v) for k, v in parts.items()}
    return {"model": model, "shape": shape, "batch": [s.p, s.k, s.frames, *sils.shape[-2:]],
            "setting": f"{config.precision}{'+cl' if config.channels_last else ''}", **ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--shapes", default="cpu,paper")
    parser.add_argument("--steps", type=int, default=5, help="timed steps at the cpu shape")
    parser.add_argument("--paper-steps", type=int, default=2, help="timed steps at the paper shape")
    parser.add_argument("--store", default="", help="a gaitlib store (default: a random one)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    import torch

    from gaitlib.data.store import Store

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.store) if args.store else random_store(Path(tmp) / "store")
        print(f"{'model':<9} {'shape':<6} {'batch':<16} {'setting':<8} {'loader':>8} "
              f"{'forward':>8} {'backward':>9} {'optim':>7} {'total ms':>9}", flush=True)
        for shape in args.shapes.split(","):
            for model in args.models.split(","):
                r = breakdown(model, shape, args.steps if shape == "cpu" else args.paper_steps,
                              store)
                total = sum(r[k] for k in ("loader", "forward", "backward", "optimizer"))
                batch = "x".join(str(v) for v in r["batch"])
                print(f"{model:<9} {shape:<6} {batch:<16} {r['setting']:<8} {r['loader']:8.1f} "
                      f"{r['forward']:8.1f} {r['backward']:9.1f} {r['optimizer']:7.1f} "
                      f"{total:9.1f}", flush=True)


if __name__ == "__main__":
    main()
