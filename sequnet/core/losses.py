"""The next-step models' cross-entropy, computed in the layout their logits come in.

The audio models on a GPU run channels-last (``sequnet.core.models.use_channels_last``): their logits (batch,
classes, T) have the classes adjacent in memory. ``F.cross_entropy`` over dimension 1 of such a tensor first copies
it to (batch, classes, T) order and then runs the softmax kernel for a class dimension strided by T. Both were
visible in the compiled bf16 piano Seq-U-Net's step: 0.33 ms for the softmax and 0.15 ms for the copy, of 30.0 ms
(H200, 2026-12-05, torch.profiler: results/logs/2026-12-05-h200-pdl-and-splitk1.tar.xz). Read as (batch * T,
classes) rows, the same logits are a view, and the softmax runs over contiguous rows, forward and backward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``F.cross_entropy`` of ``logits`` (batch, classes, T) against class ids ``targets`` (batch, T), in float32.
    Where the classes are adjacent in memory, it scores the (batch * T, classes) rows; elsewhere it is
    ``F.cross_entropy`` itself. The two differ only in the order of the reduction's sum."""
    logits = logits.float()             # keeps the layout (a no-op for float32 logits)
    if logits.dim() == 3 and logits.stride(1) == 1:
        rows = logits.transpose(1, 2).reshape(-1, logits.shape[1])     # a view unless the logits were cut in time
        return F.cross_entropy(rows, targets.reshape(-1), reduction=reduction)
    return F.cross_entropy(logits, targets, reduction=reduction)
