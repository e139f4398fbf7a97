"""cuDNN's input and weight gradients of a valid channels-last 1-D convolution, as one operator of its own.

Why: compiled, the backward pass hands ``aten.convolution_backward`` the output gradient as Inductor lays it out.
The channels-last models run a 1-D convolution as a 2-D one on (batch, channels, 1, time), and Inductor gave the
gradient of some of those convolutions the stride 0 on the size-1 axis (its view of a (batch, time, channels)
buffer, ``reinterpret_tensor(buf25, (16, 384, 1, 2566), (985344, 1, 0, 384))`` in the compiled TF32 piano
Seq-U-Net's backward on an H100, 2026-12-05). Memory is the same, but PyTorch's test for channels-last strides
then fails, so ``cudnn_convolution_backward`` copied the gradient into a channels-last tensor first: 22 such copies
a step of that model, one a level, 1.3 ms of its 57 (``results/logs/2026-12-07b-*``, the profile's table of
copies). This operator takes the 3-D tensors, which have no size-1 axis, and adds the axis itself, at run time,
where ``unsqueeze`` gives it a real stride. Eager, the same function runs without the operator's dispatch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, dilation: int,
         transposed: bool) -> torch.Tensor:
    """The valid channels-last convolution (``transposed``: transposed convolution) of ``x`` (batch, in, T), its
    backward pass by :func:`grads` (compiled, the operator ``sequnet::conv_grads``)."""
    return _Conv.apply(*autocast_operands(x, weight, bias), stride, dilation, transposed)


def autocast_operands(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """``x``, ``weight`` and ``bias`` cast to autocast's dtype where it is on, as autocast would cast them for
    cuDNN: a custom backward pass then meets one dtype, and autograd casts the gradients back."""
    if not torch.is_autocast_enabled(x.device.type):
        return x, weight, bias
    dtype = torch.get_autocast_dtype(x.device.type)
    return x.to(dtype), weight.to(dtype), bias.to(dtype) if bias is not None else None


def forward(x, weight, bias, stride: int, dilation: int, transposed: bool) -> torch.Tensor:
    """The convolution itself, as the 2-D one cuDNN runs on (batch, channels, 1, time) channels-last tensors."""
    if transposed:
        y = F.conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), dilation=(1, dilation))
    else:
        y = F.conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), dilation=(1, dilation))
    return y.squeeze(2)


def grads(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: int, dilation: int, transposed: bool,
          need_x: bool, need_w: bool) -> list[torch.Tensor]:
    """The input gradient (if ``need_x``) and the weight gradient (if ``need_w``), in that order, of the
    convolution of ``x`` with ``weight`` whose output gradient is ``grad`` (all 3-D): cuDNN's, through the
    operator when compiling."""
    if torch.compiler.is_compiling():
        return torch.ops.sequnet.conv_grads(grad, x, weight, stride, dilation, transposed, need_x, need_w)
    # eager, without the operator's dispatch: torch's flop counter (benchmarks/piano_step.py) then sees cuDNN's call
    return _grads(grad, x, weight, stride, dilation, transposed, need_x, need_w)


def _grads(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: int, dilation: int, transposed: bool,
           need_x: bool, need_w: bool) -> list[torch.Tensor]:
    gx, gw, _ = torch.ops.aten.convolution_backward(
        grad.unsqueeze(2), x.unsqueeze(2), weight.unsqueeze(2), None, [1, stride], [0, 0], [1, dilation],
        transposed, [0, 0], 1, [need_x, need_w, False])
    # in the strides the fake below promises: those of x and of the weight (cuDNN's, as a rule)
    return [_like(g.squeeze(2), t) for g, t, need in ((gx, x, need_x), (gw, weight, need_w)) if need]


_grads_op = torch.library.custom_op("sequnet::conv_grads", _grads, mutates_args=())


@_grads_op.register_fake
def _(grad, x, weight, stride, dilation, transposed, need_x, need_w):
    return [torch.empty_like(t) for t, need in ((x, need_x), (weight, need_w)) if need]


def _like(g: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return g if g.stride() == t.stride() else torch.empty_like(t).copy_(g)


class _Conv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride: int, dilation: int, transposed: bool):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, dilation, transposed)
        return forward(x, weight, bias, stride, dilation, transposed)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        out = iter(grads(grad, x, weight, *ctx.conf, need_x, need_w) if need_x or need_w else [])
        gx = next(out) if need_x else None
        gw = next(out) if need_w else None
        # the bias gradient summed over the batch and time (Inductor fuses it with the gradient's producer)
        gb = grad.sum((0, 2)) if need_b else None
        return gx, gw, gb, None, None, None
