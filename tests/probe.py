"""Measure what a model's outputs depend on, from input gradients.

A structural zero in the Jacobian is exact, so ``dependencies`` finds the receptive field and checks causality
without relying on closed forms. Use float64: in float32 a saturated tanh/sigmoid can round a real dependency's
gradient to zero and make the receptive field look smaller than it is: output j (aligned with input ``history + j``) must have zero
gradient with respect to every later input.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def dependencies(body: nn.Module, x: torch.Tensor, outputs: list[int] | None = None) -> dict[int, torch.Tensor]:
    """For each output position j, a boolean mask over input positions with a non-zero gradient.

    ``body`` takes float input ``(batch, channels, T)``; only the first batch element is differentiated. Dropout
    must be off (eval mode or p = 0) for the answer to be deterministic.
    """
    x = x.detach().clone().requires_grad_(True)
    y = body(x)
    positions = range(y.shape[-1]) if outputs is None else outputs
    masks = {}
    for j in positions:
        (g,) = torch.autograd.grad(y[0, :, j].sum(), x, retain_graph=True)
        masks[j] = g[0].abs().sum(0) != 0
    return masks


def receptive_fields(body: nn.Module, x: torch.Tensor, outputs: list[int] | None = None,
                     check_causal: bool = True) -> dict[int, int]:
    """Receptive field (inputs from the earliest one used up to the aligned one, inclusive) per output position.

    With ``check_causal`` an output that depends on any input after its aligned position raises AssertionError.
    """
    history = body.history
    rfs = {}
    for j, mask in dependencies(body, x, outputs).items():
        used = torch.nonzero(mask).flatten()
        aligned = history + j
        if check_causal and used.numel() and int(used.max()) > aligned:
            raise AssertionError(f"output {j} depends on input {int(used.max())}, later than its aligned input "
                                 f"{aligned}: the model is not causal")
        rfs[j] = aligned - int(used.min()) + 1 if used.numel() else 0
    return rfs
