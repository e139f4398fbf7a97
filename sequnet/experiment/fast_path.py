"""The trainer's GPU path for the audio models: which runs take it, and the switches it sets on a model.

Channels padded (the residual Seq-U-Net's 180 to 192), channels-last activations, the fused gate (uncompiled;
compiled, Inductor fuses it), the Triton lookup of the first convolution and WaveNet's cropped skips: each computes
the same model, and each was measured faster on a GPU (``benchmarks/piano_step.py``, ``results/bench/``).
"""
from __future__ import annotations

import contextlib

import torch
import torch._inductor.config as inductor_config
import torch.nn as nn

from sequnet.core.models import (ResSeqUNet, use_channels_last, use_cropped_skips, use_fused_gate,
                                 use_fused_lookup)
from sequnet.core.models.layers import has_switch
from sequnet.core.models.padding import pad_channels
from sequnet.core.triton_guard import has_pdl
from sequnet.experiment.scales import RunConfig

CHANNEL_MULTIPLE = 64     # the piano Seq-U-Net's 180 channels train stored as 192 (benchmarks/piano_step.py)


def use_fast_kernels(model: nn.Module, compile_: bool = False) -> nn.Module:
    """Switch an audio model to the trainer's GPU path in place: the residual Seq-U-Net's channels padded to a
    multiple of CHANNEL_MULTIPLE, channels-last, the fused gate (uncompiled), the Triton lookup and WaveNet's
    cropped skips, each where the model has it.
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
    # Weight gradients stay cuDNN's, autotuned (steps.torch_settings), for both models in every mode: the products
    # (sequnet.core.models.weight_grad, use_mm_weight_grad) had been faster for WaveNet uncompiled only against
    # cuDNN's heuristic plans (bf16 172.86 against 199.60 ms); against autotuned ones they lost (H100, 932025f, each
    # variant in a process of its own: 172.77 against 169.63 ms, results/bench/piano-step-autotuner-h100.json), and
    # the layers' weight gradients alone took 23.6 ms by products against cuDNN's 14.1 in bf16 and 134.3 against
    # 26.6 in TF32 (results/bench/weight-grad-kernels-h100.json). The Triton kernel there was slower still, and
    # rebuilt for TF32 it still lost: the compiled TF32 Seq-U-Net step took 68.0 ms with it against 56.6 with cuDNN's
    # (H100, 6bbc185, results/bench/piano-step-tf32-triton-wgrad-h100.json).
    return model


# Inductor's settings for the trainer's compiled steps on a GPU with programmatic dependent launch (H100, H200)
GPU_COMPILER_SETTINGS = {"triton.enable_pdl": True, "combo_kernels": True}


@contextlib.contextmanager
def compiler_settings(device: torch.device):
    """Inductor's settings for the trainer's compiled steps, restored afterwards; Inductor reads them when it
    compiles, at a step's first call (and at a new shape's), which must lie inside.
    On a GPU with programmatic dependent launch, Inductor's Triton kernels are launched with it: each may start
    while the kernel before it finishes, waiting only where it reads that kernel's output, which hides part of the
    gap between launches. In the compiled bf16 piano steps, each variant in a process of its own on one H100
    (497c612, results/bench/piano-step-pdl-h100.json), the Seq-U-Net's took 24.50 and 24.43 ms with it
    against 24.89 and 25.06 without, WaveNet's 92.48 against 93.15. There too, Inductor's combo kernels put
    independent kernels into one launch, fewer launches for the same work: on one H100 (910499d,
    results/bench/piano-step-combo-h100.json and piano-step-tf32-combo-h100.json) bf16 steps of 24.10 against
    24.34 ms for the Seq-U-Net and 91.45 against 91.74 for WaveNet; in TF32 56.25 against 56.41 and 250.38
    against 250.23 (a tie). Both models compile through here alike."""
    with inductor_config.patch(GPU_COMPILER_SETTINGS) if has_pdl(device) else contextlib.nullcontext():
        yield


# each switch as a record names it, in the order use_fast_kernels sets them
SWITCH_NAMES = {"channels_last": "channels-last activations", "fused_gate": "the fused gate",
                "fused_lookup": "the Triton lookup of the first convolution",
                "crop_skips": "skips computed at the output's samples only",
                "mm_weight_grad": "weight gradients by {kernel}"}
# the weight gradients' ways (sequnet.core.models.weight_grad.KERNELS), named in a record
WEIGHT_GRAD_KERNELS = {"products": "cuBLAS's batched products", "triton": "a Triton kernel",
                       "cudnn_cf": "cuDNN from channels-first copies"}


def describe(model: nn.Module) -> str:
    """The GPU path's switches in effect on ``model`` as one sentence for its record ("GPU path: channels padded
    to a multiple of 64, channels-last activations, ..."), or "" for a model on none of them."""
    model = getattr(model, "_orig_mod", model)          # compiled: the model itself
    on = []
    for name, text in SWITCH_NAMES.items():
        switched = [m for m in model.modules() if getattr(m, name, False) is True]
        if switched:
            on.append(text.format(kernel=WEIGHT_GRAD_KERNELS.get(getattr(switched[0], "weight_grad_kernel", ""))))
    if getattr(getattr(model, "body", None), "channel_padding", 0):
        on.insert(0, f"channels padded to a multiple of {model.body.channel_padding}")
    return "GPU path: " + ", ".join(on) if on else ""


def uses_fast_kernels(config: RunConfig, device: torch.device, model: nn.Module) -> bool:
    """Whether the trainer switches the model to this path (:func:`use_fast_kernels`): asked for, on a GPU, and a
    model with the switches (the audio models). On the CPU the switches buy nothing and the default layout keeps
    float64 checks exact."""
    return config.fast_kernels and device.type == "cuda" and has_switch(model, "channels_last")
