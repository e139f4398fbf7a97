"""Triton where it can run: the import guard and the switch that every Triton kernel of the package obeys.

The kernels compute in float32, so float64 tensors always take the torch paths. ``SEQUNET_TRITON=0`` turns
Triton off everywhere (for comparisons); ``SEQUNET_PDL=0`` launches the generation kernels without programmatic
dependent launch (:func:`pdl_options`); ``SEQUNET_STEP_KERNELS=0`` keeps a generation step's bookkeeping in torch
operations (:func:`use_step_kernels`); ``SEQUNET_START_IN_HEAD=1`` (the default in bf16) runs a step's start in
the head before it, ``0`` in its own launch (:func:`start_in_head`)."""
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


def use_step_kernels() -> bool:
    """Whether a generation state on a Triton path runs its step's bookkeeping (window shifts, ring rows,
    sampling's record) as the Triton launches of ``sequnet.core.generation.step_kernels`` (default) or as the
    torch operations they replaced: ``SEQUNET_STEP_KERNELS=0``, read when a state is built, for comparisons."""
    return os.environ.get("SEQUNET_STEP_KERNELS", "1") != "0"


def start_in_head(dtype: torch.dtype) -> bool:
    """Whether a multi-step graph runs each step's start in the head kernel of the step before
    (``step_kernels``: one launch fewer a step), for a state computing in ``dtype``. ``SEQUNET_START_IN_HEAD=1`` or
    ``0`` decides, read when a state is built; by default on in bf16 (and float16), where it paid for both models
    at batches 1 and 64, off in float32, where the Seq-U-Net lost at batch 64 (H100, 2026-12-05,
    results/bench/generation-start-in-head-h100.json, samples/s, own launch -> in the head: bf16 Seq-U-Net
    45,764 -> 46,750 and 872,728 -> 883,830, WaveNet 6,135 -> 6,141 and 134,941 -> 139,258; float32 Seq-U-Net
    43,244 -> 43,951 and 672,436 -> 646,377, WaveNet 5,968 -> 5,955 and 92,480 -> 92,360)."""
    chosen = os.environ.get("SEQUNET_START_IN_HEAD", "")
    if chosen in ("0", "1"):
        return chosen == "1"
    return dtype.itemsize < 4


def has_pdl(device: torch.device) -> bool:
    """Whether the GPU has programmatic dependent launch: CUDA compute capability 9.0 or later (Hopper on)."""
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 9


def pdl_options(device: torch.device) -> dict:
    """The ``PDL`` argument and launch options of a kernel that opens with :func:`pdl_enter`. On a Hopper or newer
    GPU: programmatic dependent launch, which lets the GPU launch the kernel while the one before it still runs (a
    step of generation is a chain of kernels of a few microseconds, each paying a launch). At its entry the kernel
    waits until that one has finished and its writes are visible, so the results are the same. On by default since
    it paid at every batch and dtype timed (H200, 2026-12-05, results/bench/generation-pdl-h200.json: the Seq-U-Net
    at batch 1, bf16, 34,274 -> 47,553 samples/s; at batch 64 757,893 -> 864,924; WaveNet 4,854 -> 6,807 and
    107,840 -> 134,796). ``SEQUNET_PDL=0`` turns it off, read at each launch."""
    on = os.environ.get("SEQUNET_PDL", "1") != "0" and has_pdl(device)
    return {"PDL": True, "launch_pdl": True} if on else {"PDL": False}


if triton is not None:   # pragma: no cover - GPU only

    @triton.jit
    def pdl_enter(PDL: tl.constexpr):
        """First statement of a kernel launched with ``pdl_options``: wait for the kernel before it (griddepcontrol
        .wait), then let the next one launch. Without PDL, nothing."""
        if PDL:
            tl.extra.cuda.gdc_wait()
            tl.extra.cuda.gdc_launch_dependents()
else:
    pdl_enter = None
