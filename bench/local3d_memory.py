"""3D Local CNN's training memory at the paper batch, the current block against the previous one.

For 64x44, 128x88 and the OU-MVLP variant (widths x2), each at its paper batch (8 x 16 or 32 x 16
sequences of 30 frames), fp32: the bytes the training step's forward pass keeps for the backward
pass, counted on fake tensors (``FakeTensorMode``: shapes without data, so nothing is allocated):

* every tensor autograd saves (``saved_tensors_hooks``), one storage counted once (a view and its
  base are one storage);
* the inputs of activation-checkpointed regions, which the region keeps for its recomputation
  (they are usually saved elsewhere too: counted once).

Rows: ``previous`` is the block as gaitlib computed it before (``tests/local3d_reference.py``),
``current`` the current block, ``current+recompute`` the current block with ``recompute=True``
(activation checkpointing; the setting the memory limits are for).  Columns: GiB kept for the
backward pass, its ratio to ``previous``, and the largest single tensor any op makes in the whole
step (forward and backward, recomputation included) and the largest made by the kernels that
index with 32-bit integers on CUDA (max-pooling, depthwise 3D convolution), in elements, against
2^31 - 1.

    python bench/local3d_memory.py [--settings 64x44,128x88,oumvlp] [--rows previous,current,...]
    python bench/local3d_memory.py --cpu-step [--pairs 6] [--threads 1]  # cpu-profile step

``--cpu-step`` times the cpu profile's local3d training step (its recipe: batch, resolution,
widths, channels-last, fp32) with the previous block and the current one with ``recompute`` off
and on, interleaved (the order rotating), after warm-up, in one process on the same weights and
batch; prints the medians and their ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GIB = 2**30
INT32_MAX = 2**31 - 1
SETTINGS = {  # name -> (model options, sequences, classes)
    "64x44": ({}, 8 * 16, 74),
    "128x88": ({"resolution": 128}, 8 * 16, 74),
    "oumvlp": ({"variant": "oumvlp"}, 32 * 16, 5153),
}
ROWS = ("previous", "current", "current+recompute")
FRAMES = 30
# Kernels PyTorch's CUDA code indexes with int32 (no 64-bit fallback): their outputs must stay
# below 2^31 elements.  Convolutions count when depthwise (one input channel per group).
INT32_OPS = ("max_pool2d_with_indices", "max_pool3d_with_indices", "adaptive_max_pool3d",
             "max_pool3d_with_indices_backward", "adaptive_max_pool3d_backward")


def _storage(t):
    return t.untyped_storage()._cdata, t.untyped_storage().nbytes()


def measure(setting: str, row: str) -> dict:
    """Bytes kept for the backward pass and the largest tensors of one training step."""
    import torch
    from torch.autograd.graph import saved_tensors_hooks
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    from gaitlib import models
    from gaitlib.models import local_block
    from tests.local3d_reference import reference_of

    options, batch, classes = SETTINGS[setting]
    kept: dict[int, int] = {}
    largest = {"any": (0, ""), "int32": (0, "")}

    def keep(t):
        if isinstance(t, torch.Tensor):
            key, nbytes = _storage(t)
            kept[key] = nbytes
        return t

    class Largest(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.__name__.split(".")[0]
            depthwise = False
            if name in ("convolution", "convolution_backward"):  # (.., weight, .., groups, ..)
                weight, groups = (args[1], args[8]) if name == "convolution" else (args[2], args[9])
                depthwise = groups > 1 and weight.shape[1] == 1
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    label = f"{name} {tuple(t.shape)}"
                    largest["any"] = max(largest["any"], (t.numel(), label))
                    if name in INT32_OPS or depthwise:
                        largest["int32"] = max(largest["int32"], (t.numel(), label))
            return out

    real_checkpoint = local_block.checkpoint

    def counted_checkpoint(fn, *args, **kwargs):
        for a in args:
            keep(a)
        return real_checkpoint(fn, *args, **kwargs)

    from torch._subclasses.fake_tensor import FakeTensorMode

    local_block.checkpoint = counted_checkpoint
    try:
        with FakeTensorMode():
            model = models.build("local3d", **options, num_classes=classes,
                                 recompute=row.endswith("recompute")).train()
            if row == "previous":
                for b, block in list(model.local.items()):
                    model.local[b] = reference_of(block)
            res = int(options.get("resolution", 64))
            sils = torch.rand(batch, FRAMES, res, res * 11 // 16)
            with Largest():
                with saved_tensors_hooks(keep, lambda t: t):
                    out = model(sils)
                saved = sum(kept.values())
                loss = out["embedding"].sum() + out["logits"].sum()
                loss.backward()
    finally:
        local_block.checkpoint = real_checkpoint
    return {"setting": setting, "row": row, "saved_gib": saved / GIB, "largest": largest["any"],
            "largest_int32": largest["int32"]}


def cpu_step(pairs: int) -> dict:
    """Median cpu-profile step time of local3d: previous block, current block with recompute
    off and on; interleaved, the order rotating from pair to pair."""
    import copy

    import torch

    from bench.train import Stepper, cpu_batch
    from gaitlib.training import precision, recipe
    from tests.local3d_reference import reference_of

    config = recipe("local3d", "cpu")
    on = copy.deepcopy(config)
    on.model.options = {**on.model.options, "recompute": True}
    torch.manual_seed(0)
    steppers = {"off": Stepper(config, 50)}
    state = steppers["off"].model.state_dict()
    steppers["on"] = Stepper(on, 50, state=state)
    steppers["previous"] = Stepper(config, 50, state=state)
    model = steppers["previous"].model
    for b, block in list(model.local.items()):
        model.local[b] = reference_of(block)
    if config.channels_last:
        precision.to_channels_last(model)
    steppers["previous"].optimizer = torch.optim.Adam(model.parameters(), lr=config.optimizer.lr)
    sils, labels = cpu_batch(config)
    for stepper in steppers.values():
        stepper.step(sils, labels)
        stepper.step(sils, labels)
    names = list(steppers)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(pairs):
        for name in names[i % 3:] + names[:i % 3]:
            start = time.perf_counter()
            steppers[name].step(sils, labels)
            times[name].append(time.perf_counter() - start)
    ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
    return {"ms": ms, "batch": [config.sampling.p, config.sampling.k, config.sampling.frames,
                                *sils.shape[-2:]], "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--cpu-step", action="store_true", help="time the cpu-profile step")
    parser.add_argument("--pairs", type=int, default=6, help="interleaved rounds (--cpu-step)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for --cpu-step (default: torch's; 1 on a busy machine)")
    args = parser.parse_args()
    if args.cpu_step:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        r = cpu_step(args.pairs)
        ms = r["ms"]
        print(f"local3d cpu-profile step (batch {r['batch']}, {r['threads']} threads, medians of "
              f"{args.pairs}): previous {ms['previous']:.0f} ms, current {ms['off']:.0f} ms, "
              f"current+recompute {ms['on']:.0f} ms; current/previous "
              f"{ms['off'] / ms['previous']:.2f}, recompute on/off {ms['on'] / ms['off']:.2f}")
        return
    rows = [r for r in args.rows.split(",") if r]
    print(f"saved for backward at the paper batch, fp32, {FRAMES} frames "
          f"(GiB; largest tensors in elements, 2^31-1 = {INT32_MAX:,})")
    print(f"{'setting':<8} {'row':<18} {'GiB':>7} {'x prev':>7} {'largest int32-kernel output':<52} "
          f"largest tensor")
    for setting in [s for s in args.settings.split(",") if s]:
        base = None
        for row in rows:
            r = measure(setting, row)
            base = r["saved_gib"] if row == "previous" else base
            ratio = f"{r['saved_gib'] / base:.2f}" if base else "-"
            (n32, op32), (n, op) = r["largest_int32"], r["largest"]
            flag = " OVER" if n32 > INT32_MAX else ""
            print(f"{setting:<8} {row:<18} {r['saved_gib']:7.1f} {ratio:>7} "
                  f"{f'{n32:.3g} {op32}{flag}':<52} {n:.3g} {op}", flush=True)


if __name__ == "__main__":
    main()
