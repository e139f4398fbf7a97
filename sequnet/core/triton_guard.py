"""Triton where it can run: the import guard and the switch that every Triton kernel of the package obeys.

The kernels compute in float32, so float64 tensors always take the torch paths. ``SEQUNET_TRITON=0`` turns
Triton off everywhere (for comparisons)."""
from __future__ import annotations

import os

import torch

try:   # pragma: no cover - exercised on the GPU machines only
    import triton
    import triton.language as tl
except Exception:   # noqa: BLE001 - no Triton (CPU wheels) or a broken install: use the torch path
    triton = tl = None


def use_triton(device: torch.device, dtype: torch.dtype) -> bool:
    """Triton computes in float32, so float64 tensors keep the exact torch path."""
    return (triton is not None and os.environ.get("SEQUNET_TRITON", "1") != "0" and device.type == "cuda"
            and dtype in (torch.float32, torch.bfloat16, torch.float16))
