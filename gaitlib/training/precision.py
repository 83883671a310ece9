"""Arithmetic precision and memory format of a training or extraction step.

``precision`` names what the convolutions and matrix products compute in:

- ``fp32``: plain float32 (the reference);
- ``bf16``: ``torch.autocast`` to bfloat16, on the CPU (oneDNN's AVX-512-BF16/AMX kernels) or on
  CUDA. bf16 has float32's range, so no loss scaling is needed;
- ``fp16``: autocast to float16 with a :class:`torch.amp.GradScaler` (float16's small range
  underflows small gradients without it); OpenGait's choice on GPUs.

Parameters, optimizer state and the losses stay float32 in every mode (the losses upcast their
inputs), so only the activations of autocast-listed ops change precision.

``channels_last`` stores 4-D convolution weights as NHWC and 5-D (3D-conv) weights as NDHWC; the
convolutions then run channels-last kernels and hand channels-last activations on. The values
computed are the same up to summation order.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (a no-op context for fp32)."""
    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r}; valid: fp32, bf16, fp16")
    return torch.autocast(device.type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 (a disabled one passes the loss through)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert ``model``'s 4-D parameters to ``channels_last`` and 5-D ones to
    ``channels_last_3d`` in place (``Module.to(memory_format=...)`` takes one format for both and
    fails on the other rank). Returns ``model``."""
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 4:
                param.data = param.data.contiguous(memory_format=torch.channels_last)
            elif param.dim() == 5:
                param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
    return model
