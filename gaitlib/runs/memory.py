"""A training run's peak memory and FLOPs per step, estimated without running it.

The run's model, optimizer and one rank's batch are built on fake tensors
(``torch._subclasses.fake_tensor.FakeTensorMode``: shapes and dtypes, no data, no device) and two
training steps are traced: forward under the recipe's autocast, backward, optimizer step.  A
dispatch mode counts the bytes of every live tensor storage as the ops create them and the
garbage collector frees them; the largest total during the second step (the optimizer's state
in place) is the estimate, and ``torch.utils.flop_counter.FlopCounterMode`` counts the first
step's FLOPs.  A few seconds on
a laptop CPU for a paper-scale run, before any data is imported.

What it leaves out: the loss is replaced by the sum of the outputs (the losses' own tensors are a
few MB; the batch-all triplet loss reads its data, which fake tensors do not have), a value read
from the data (``.item()``, ``bool(t)``) is taken as 1 / True, and the CUDA context, cuDNN
workspaces and the caching allocator's slack are not tensors.  The autocast is the CPU's (its op
lists are close to CUDA's).  Against the peaks the dry run measured on an H200
(``torch.cuda.max_memory_allocated``, ``book/results/paper-dry-run.csv``), the raw estimates are
scaled by :data:`CALIBRATION` (see ``bench/plan_memory.py``, which prints the comparison).
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from gaitlib.training.config import TrainConfig

GIB = 2**30
OUMVLP_CLASSES = 5153

# Measured / estimated peak over the 35 measured rows of book/results/paper-dry-run.csv
# (bench/plan_memory.py).  Fitted as 1.068, the median ratio when the rows were measured; with
# today's estimator the ratios run 0.93-1.22 (median 1.104), the 1.068-scaled estimates are
# within 3.3% of the measurement for half the runs and 15.4% for all.  The 12 3D Local rows were
# measured with its earlier, larger local block, so they overstate its memory now; over the 23
# other rows the error is 3.2% (median) and 7.1% (largest).
CALIBRATION = 1.068
CALIBRATION_NOTE = ("fake-tensor estimate x 1.068, the median measured/estimated ratio of the "
                    "35 measured runs when fitted (error after scaling: median 3.3%, largest "
                    "15.4%; 3D Local's rows were measured with its earlier, larger block)")


@dataclass(frozen=True)
class Estimate:
    """One training step: the peak bytes of live tensors and the FLOPs (forward and backward)."""

    peak_bytes: int
    flops: int

    @property
    def peak_gib(self) -> float:
        """The peak, calibrated against the measured rows (:data:`CALIBRATION`)."""
        return CALIBRATION * self.peak_bytes / GIB


def paper_classes(config: TrainConfig) -> int:
    """The classifier size of a run at full scale: the recipe split's training subjects (74 or 73
    on CASIA-B, 5153 on OU-MVLP)."""
    from gaitlib.data.splits import split_for

    if config.model.options.get("variant") == "oumvlp" or config.data.split == "oumvlp":
        return OUMVLP_CLASSES
    return len(split_for(config.data.split or "casia-b-lt").train)


def estimate(config: TrainConfig) -> Estimate:
    """Trace two training steps of ``config`` on fake tensors, one process with the whole batch
    (see the module note)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    from gaitlib.training import precision
    from gaitlib.training.trainer import build_model, build_optimizer

    height = config.data.resolution or int(config.model.options.get("resolution", 64))
    batch = config.sampling.p * config.sampling.k
    tracker = _LiveBytes()
    with FakeTensorMode(allow_non_fake_inputs=False):
        torch.manual_seed(config.seed)
        model = build_model(config, num_classes=paper_classes(config)).train()
        optimizer = build_optimizer(config, model)
        frames = torch.rand(batch, config.sampling.frames, height, height * 11 // 16)
        for tensor in [*model.parameters(), *model.buffers(), frames]:
            tracker.add(tensor)
        counter = FlopCounterMode(display=False)
        with tracker:
            # Step 0 counts the FLOPs (forward and backward); step 1, with the optimizer's state
            # in place and no counter, gives the peak: under FlopCounterMode the tensors of
            # activation-checkpointed regions stay alive through the backward pass (a small
            # 3D Local step with recompute: 411 MiB peak with the counter, 171 MiB without).
            for step in range(2):
                if step == 1:
                    tracker.peak = tracker.now
                with counter if step == 0 else contextlib.nullcontext():
                    with precision.autocast("cpu", config.precision):
                        out = model(frames)
                        loss = sum(v.float().sum() for v in out.values()
                                   if isinstance(v, torch.Tensor) and v.is_floating_point())
                    loss.backward()
                del out, loss
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
    return Estimate(tracker.peak, int(counter.get_total_flops()))


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of live tensor storages (each storage once, released when the garbage
    collector frees it) and keeps the largest total.  Values read from the data are 1."""

    def __init__(self):
        super().__init__()
        self.now = self.peak = 0
        self.seen: dict[int, list] = {}

    def add(self, tensor) -> None:
        storage = tensor.untyped_storage()
        refs = self.seen.setdefault(id(storage), [])
        if any(ref() is storage for ref in refs):
            return
        size = storage.nbytes()
        self.now += size
        self.peak = max(self.peak, self.now)
        key = id(storage)

        def release(ref, key=key, size=size) -> None:
            self.now -= size
            alive = [r for r in self.seen.get(key, []) if r is not ref]
            if alive:
                self.seen[key] = alive
            else:
                self.seen.pop(key, None)

        refs.append(weakref.ref(storage, release))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:  # .item(), bool(t): no data
            return True if args[0].dtype == torch.bool else 1
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.add(value)
        return out
