"""The trainer's GPU path for the audio models: which runs take it, and the switches it sets on a model.

Channels padded (the residual Seq-U-Net's 180 to 192), channels-last activations, the fused gate (uncompiled;
compiled, Inductor fuses it), the Triton lookup of the first convolution and WaveNet's cropped skips: each computes
the same model, and each was measured faster on a GPU (``benchmarks/piano_step.py``, ``results/bench/``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from sequnet.core.models import (ResSeqUNet, WaveNet, use_channels_last, use_cropped_skips, use_fused_gate,
                                 use_fused_lookup, use_mm_weight_grad)
from sequnet.core.models.layers import has_switch
from sequnet.core.models.padding import pad_channels
from sequnet.experiment.scales import RunConfig

CHANNEL_MULTIPLE = 64     # the piano Seq-U-Net's 180 channels train stored as 192 (benchmarks/piano_step.py)


def use_fast_kernels(model: nn.Module, compile_: bool = False) -> nn.Module:
    """Switch an audio model to the trainer's GPU path in place: the residual Seq-U-Net's channels padded to a
    multiple of CHANNEL_MULTIPLE, channels-last, the fused gate (uncompiled), the Triton lookup, WaveNet's
    cropped skips and, uncompiled, WaveNet's weight gradients by products, each where the model has it.
    Call it before building the optimizer: padding and channels-last replace or move the convolution weights."""
    if isinstance(getattr(model, "body", None), ResSeqUNet):
        pad_channels(model, CHANNEL_MULTIPLE)
    use_channels_last(model)
    if has_switch(model, "fused_gate") and not compile_:     # compiled, Inductor fuses the gate
        use_fused_gate(model)
    # the Triton lookup of the first convolution saved time in every mode measured (H100, 2026-12-05: compiled
    # bf16 33.52 -> 29.79 ms a step, float32 62.89 -> 60.72; results/bench/piano-step-lookup-*-h100.json)
    if has_switch(model, "fused_lookup"):
        use_fused_lookup(model)
    if has_switch(model, "crop_skips"):
        use_cropped_skips(model)
    # Weight gradients by cuBLAS's batched products (sequnet.core.models.weight_grad) where they were faster: WaveNet
    # uncompiled (H100, 2026-12-06: bf16 199.60 -> 172.86 ms a step, TF32 442.27 -> 276.92). Compiled they were
    # slower for it (bf16 125.03 -> 155.20 ms), and the Seq-U-Net's step was slower with them in every mode
    # (bf16 uncompiled 45.65 -> 52.63, compiled 29.83 -> 34.50; TF32 compiled 60.80 -> 67.21, uncompiled
    # 67.33 -> 73.83), so it keeps cuDNN's (results/bench/piano-step-mm-wgrad-*-h100.json). Every cuDNN plan in
    # those pairs was cuDNN's heuristic choice, the autotuner's included (benchmarks/piano_step.py, check_autotuner):
    # speed_gpu_call.sh call 10 times WaveNet uncompiled with the autotuner each way.
    if isinstance(getattr(model, "body", None), WaveNet) and not compile_:
        use_mm_weight_grad(model)
    return model


# each switch as a record names it, in the order use_fast_kernels sets them
SWITCH_NAMES = {"channels_last": "channels-last activations", "fused_gate": "the fused gate",
                "fused_lookup": "the Triton lookup of the first convolution",
                "crop_skips": "skips computed at the output's samples only",
                "mm_weight_grad": "weight gradients by cuBLAS's batched products"}


def describe(model: nn.Module) -> str:
    """The GPU path's switches in effect on ``model`` as one sentence for its record ("GPU path: channels padded
    to a multiple of 64, channels-last activations, ..."), or "" for a model on none of them."""
    model = getattr(model, "_orig_mod", model)          # compiled: the model itself
    on = [text for name, text in SWITCH_NAMES.items()
          if any(getattr(m, name, False) is True for m in model.modules())]
    if getattr(getattr(model, "body", None), "channel_padding", 0):
        on.insert(0, f"channels padded to a multiple of {model.body.channel_padding}")
    return "GPU path: " + ", ".join(on) if on else ""


def uses_fast_kernels(config: RunConfig, device: torch.device, model: nn.Module) -> bool:
    """Whether the trainer switches the model to this path (:func:`use_fast_kernels`): asked for, on a GPU, and a
    model with the switches (the audio models). On the CPU the switches buy nothing and the default layout keeps
    float64 checks exact."""
    return config.fast_kernels and device.type == "cuda" and has_switch(model, "channels_last")
