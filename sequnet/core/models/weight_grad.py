"""Channels-last convolutions whose weight gradient is a product of matrices (cuBLAS), not cuDNN's.

For a valid 1-D convolution (stride s, dilation d, k taps) over channels-last activations, tap j's weight gradient
is one product per sequence of the batch, summed over the batch:

    dW[:, :, j] = sum_b  dY_b^T @ X_b[j d : j d + s (n - 1) + 1 : s]        (out x n) @ (n x in)

where X_b and dY_b are the (time, channels) views of the input and of the output gradient, which channels-last
activations store as they are, so the taps need no copies: one batched product per tap. For a transposed
convolution (weight (in, out, k)) the roles swap: ``X_b^T @ dY_b[j : j + s (n - 1) + 1 : s]``. The input and
bias gradients stay cuDNN's (``aten.convolution_backward`` with the weight left out).

Why: in float32 (TF32) cuDNN's weight gradients of the piano Seq-U-Net took 19.5 ms of its 60 ms compiled step on
an H100, 2.3 times the forward convolutions' 8.6 ms for the same FLOPs
(``piano-step-cudnn-benchmark-h100.profile.txt`` in ``results/logs/2026-12-05d-*``). The products run in the
precision cuBLAS is allowed for float32 matrices (``torch.set_float32_matmul_precision``): ``"high"`` gives TF32,
as cuDNN's convolutions have by default, and the step benchmark sets it with the switch. In 16-bit each sequence's
products are summed in float32 and rounded to 16 bits (see ``_bmm``).

Measured (H100, 2026-12-06, ``benchmarks/piano_step.py``, results/bench/piano-step-mm-wgrad-*-h100.json): slower
for the Seq-U-Net, compiled in TF32 67.21 ms a step against cuDNN's 60.80 (the products took 23.2 ms where cuDNN's
weight gradients took 19.5: each is a batch of 16 products of (out x 36,845) by (36,845 x in), a few output tiles
with long sums, which cuBLAS spreads over few multiprocessors) and uncompiled 73.83 against 67.33; faster for
WaveNet uncompiled in float32, 276.92 against 442.27 ms (its dilated convolutions are where cuDNN's weight
gradients are slowest). The 16-bit variants did not run: torch 2.11's flop counter, with which the benchmark
counts FLOPs, fails on bmm's float32-output overload ("bmm_flop() got multiple values for argument 'out_shape'"),
which ``_bmm`` no longer uses.
The trainer leaves the switch off.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, dilation: int,
         transposed: bool) -> torch.Tensor:
    """The valid channels-last convolution (``transposed``: transposed convolution) of ``x`` (batch, in, T) with
    ``weight`` and ``bias``, its weight gradient by products. Under autocast the operands are cast to autocast's
    dtype first, as autocast would cast them for cuDNN."""
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    return _ConvMMWeightGrad.apply(x, weight, bias, stride, dilation, transposed)


def _forward(x, weight, bias, stride: int, dilation: int, transposed: bool) -> torch.Tensor:
    if transposed:
        y = F.conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), dilation=(1, dilation))
    else:
        y = F.conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), dilation=(1, dilation))
    return y.squeeze(2)


def weight_grad(x: torch.Tensor, grad: torch.Tensor, k: int, stride: int, dilation: int,
                transposed: bool) -> torch.Tensor:
    """The weight gradient of the convolution of ``x`` (batch, in, T) whose output gradient is ``grad``
    (batch, out, n), shape (out, in, k) ((in, out, k) transposed), in float32 for 16-bit operands."""
    xt, gt = x.transpose(1, 2), grad.transpose(1, 2)          # (batch, time, channels): channels-last, no copies
    # the operand read at every tap's offsets, and the one read whole
    shifted, whole = (gt, xt) if transposed else (xt, gt)
    n = whole.shape[1]
    span = stride * (n - 1) + 1
    parts = [_bmm(whole.transpose(1, 2), shifted[:, j * dilation:j * dilation + span:stride]) for j in range(k)]
    # (batch, first, k, second) summed over the batch: (first, k, second), returned as (first, second, k) with the
    # channels-last strides of the weight it is the gradient of
    return torch.stack(parts, dim=2).sum(0).transpose(1, 2)


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.dtype in (torch.float32, torch.float64):
        return torch.bmm(a, b)
    if a.is_cuda:
        # a sequence's 16-bit sum rounded to 16 bits, as cuDNN rounds its whole weight gradient; the batch is then
        # summed in float32. Not bmm's out_dtype=float32: torch 2.11's flop counter fails on that overload
        # (see the module's docstring)
        return torch.bmm(a, b).float()
    return torch.bmm(a.float(), b.float())                    # the CPU's 16-bit products, summed in float32


class _ConvMMWeightGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride: int, dilation: int, transposed: bool):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, dilation, transposed, bias is not None)
        return _forward(x, weight, bias, stride, dilation, transposed)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, dilation, transposed, has_bias = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        if need_x or (need_b and has_bias):
            out_channels = weight.shape[1] if transposed else weight.shape[0]
            gx, _, gb = torch.ops.aten.convolution_backward(
                grad.unsqueeze(2), x.unsqueeze(2), weight.unsqueeze(2), [out_channels] if has_bias else None,
                [1, stride], [0, 0], [1, dilation], transposed, [0, 0], 1, [need_x, False, need_b and has_bias])
            gx = gx.squeeze(2) if gx is not None else None
        if need_w:
            gw = weight_grad(x, grad, weight.shape[-1], stride, dilation, transposed).to(weight.dtype)
        return gx, gw, gb, None, None, None
