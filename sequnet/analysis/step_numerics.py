"""How far the trainer's fast piano step computes from the plain float32 model: its loss and its gradients.

The fast step (``sequnet.experiment.fast_path.use_fast_kernels``: channels padded, channels-last, the fused gate or
Inductor's, the Triton lookup, WaveNet's cropped skips, optionally the weight gradients by products) runs in
bf16 autocast or in float32 with TF32 convolutions and products; the reference is the unswitched model in full
float32 (no TF32) on the same batch and weights. The errors are relative: ``|a - b| / |b|`` for the loss, and
for the gradients the same of all parameters' gradients as one vector (the paper's shapes: padding cut off),
with the worst single parameter and the smallest cosine between a parameter's two gradients beside it.
``benchmarks/step_numerics.py`` writes them as JSON; ``tests/test_fast_training_cuda.py`` holds them to bounds.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Callable

import torch
import torch.nn as nn

from sequnet.core.models import use_mm_weight_grad
from sequnet.core.models.padding import logical_tensors
from sequnet.experiment.fast_path import compiler_settings, use_fast_kernels

MODES = ("fp32", "tf32", "bf16")        # full float32; TF32 convolutions and products; bf16 autocast over TF32


@contextlib.contextmanager
def precision(mode: str, device_type: str = "cuda"):
    """The numerics of ``mode`` (one of ``MODES``) for the block, restored afterwards."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = mode != "fp32"
    torch.set_float32_matmul_precision("highest" if mode == "fp32" else "high")
    try:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=mode == "bf16"):
            yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved[0]
        torch.set_float32_matmul_precision(saved[1])


def loss_and_grads(model: nn.Module, ids: torch.Tensor, target: torch.Tensor,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], mode: str,
                   compile_: bool = False) -> tuple[float, dict[str, torch.Tensor]]:
    """The loss of one forward and backward in ``mode`` and the gradients, keyed by parameter name in the paper's
    shapes (float64 on the host). Compiled, the model and the loss are one function, as the trainer compiles them
    (``sequnet.experiment.steps.step_function``), under the trainer's compiler settings."""
    names, params = zip(*model.named_parameters())
    autocast = torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=mode == "bf16")

    def objective(ids, target):
        with autocast:
            logits = model(ids)
        return loss_fn(logits.float(), target)

    if compile_:
        objective = torch.compile(objective, dynamic=False)
    # the trainer's compiler settings where it compiles (its kernels' launches), for the backward's compile too
    with compiler_settings(ids.device) if compile_ else contextlib.nullcontext():
        with precision(mode, ids.device.type):
            loss = objective(ids, target)
        grads = torch.autograd.grad(loss, params)
    logical = logical_tensors(model, dict(zip(names, grads)))
    return float(loss.detach()), {name: g.detach().double().cpu() for name, g in logical.items()}


def compare(reference: tuple[float, dict], candidate: tuple[float, dict]) -> dict:
    """The relative errors of ``candidate``'s loss and gradients against ``reference``'s (see the module)."""
    (loss, grads), (loss2, grads2) = reference, candidate
    if grads.keys() != grads2.keys():
        raise ValueError("the two models have different parameters")
    diff = sum(float((grads2[n] - g).square().sum()) for n, g in grads.items())
    norm = sum(float(g.square().sum()) for g in grads.values())
    per = {n: float((grads2[n] - g).norm() / g.norm().clamp_min(1e-30)) for n, g in grads.items()}
    cos = {n: float(torch.nn.functional.cosine_similarity(grads2[n].flatten(), g.flatten(), dim=0))
           for n, g in grads.items() if g.norm() > 0}
    worst = max(per, key=per.get)
    least = min(cos, key=cos.get)
    return {"loss": loss2, "reference_loss": loss, "loss_relative_error": abs(loss2 - loss) / abs(loss),
            "gradient_relative_error": (diff / norm) ** 0.5, "worst_parameter": worst,
            "worst_parameter_relative_error": per[worst], "least_cosine_parameter": least,
            "least_cosine": cos[least]}


def fast_step_errors(model: nn.Module, ids: torch.Tensor, target: torch.Tensor,
                     loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], modes=("tf32", "bf16"),
                     compile_: bool = False, mm_weight_grad: bool = False) -> dict[str, dict]:
    """:func:`compare` of the fast step of a copy of ``model`` (as the trainer switches it; with
    ``mm_weight_grad``, its weight gradients by products) in each of ``modes`` against ``model`` in full float32.
    ``model`` itself is left unswitched."""
    reference = loss_and_grads(model, ids, target, loss_fn, "fp32")
    fast = use_fast_kernels(copy.deepcopy(model), compile_)
    use_mm_weight_grad(fast, mm_weight_grad)
    return {mode: compare(reference, loss_and_grads(fast, ids, target, loss_fn, mode, compile_)) for mode in modes}
