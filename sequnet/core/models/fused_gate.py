"""The gated residual of the residual Seq-U-Net's layers in one pass: ``out = identity + tanh(f) * sigmoid(g)``,
and WaveNet's gate ``tanh(f) * sigmoid(g)`` alone (:func:`fused_gate`, the same kernels without an identity).

Unfused, a layer's gate is a chain of element-wise passes over the network's largest tensors (chunk, tanh,
sigmoid, mul, the identity's repeat or slice, add), each keeping its inputs for the backward pass, whose
slices then zero-fill and copy their gradients. :func:`gated_residual` is one autograd function that

* reads ``(f, g)``, the channel halves of the convolution's output ``y``, in a window ``[start, start + n)`` of
  its time axis: the transposed layer's crop costs no slice;
* reads the identity from the layer's input ``x`` by index, ``x[..., (step * j + offset) // repeat]`` for
  output j: the input itself (step 1), its decimation (step 2) or its nearest-neighbour upsampling (repeat 2),
  none of them materialised, cropped at the front so that the newest output reads x's newest sample;
* keeps only ``y`` for the backward pass, which recomputes tanh and sigmoid and writes the gradient of ``y`` as
  one tensor in ``y``'s layout (zero outside the window) and that of ``x`` in ``x``'s layout.

The Triton kernels (CUDA; float32, bfloat16 or float16 tensors, computed in float32) tile channels x time and
take every tensor's strides, so (batch, channels, time) and channels-last tensors are both accessed along their
contiguous axis. They allocate through PyTorch and never wait for the GPU, so a training step using them can be
captured in a CUDA graph. Elsewhere (CPU, float64, ``SEQUNET_TRITON=0``) the same function runs as torch
operations, in float32 at least.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from sequnet.core.models.layers import set_switch
from sequnet.core.triton_guard import tl, triton, use_triton

_BC, _BT = 32, 64                       # channels x time per Triton program


def use_fused_gate(model: nn.Module, flag: bool = True) -> nn.Module:
    """Switch the gated layers of ``model`` to the fused kernels, or back: a residual Seq-U-Net's to
    :func:`gated_residual`, a WaveNet's to :func:`fused_gate`. Raises for a model without gated layers."""
    set_switch(model, "fused_gate", flag)
    return model


def gated_residual(y: torch.Tensor, x: torch.Tensor, start: int, n: int, step: int = 1,
                   repeat: int = 1) -> torch.Tensor:
    """``out[:, c, j] = x[:, c, (step * j + offset) // repeat] + tanh(y[:, c, start + j]) * sigmoid(y[:, C + c,
    start + j])`` for j < n and C = ``y.shape[1] // 2``, where ``offset = repeat * (T - 1) - step * (n - 1)``
    lines the last output up with x's newest sample (T = ``x.shape[-1]``). ``out`` takes ``y``'s layout and the
    promoted dtype of ``y`` and ``x``."""
    batch, channels, length = x.shape
    if y.shape[0] != batch or y.shape[1] != 2 * channels:
        raise ValueError(f"gate input {tuple(y.shape)} does not match the identity {tuple(x.shape)}: "
                         "expected (batch, 2 * channels, time)")
    if step not in (1, 2) or repeat not in (1, 2) or step * repeat > 2:
        raise ValueError(f"step={step}, repeat={repeat}: the identity is x, its decimation or its upsampling")
    offset = repeat * (length - 1) - step * (n - 1)
    if n < 1 or start < 0 or start + n > y.shape[-1] or offset < 0:
        raise ValueError(f"window [{start}, {start + n}) of a gate input of length {y.shape[-1]} with an identity "
                         f"of length {length} (step {step}, repeat {repeat})")
    return _GatedResidual.apply(y, x, start, n, step, repeat, offset)


def fused_gate(y: torch.Tensor) -> torch.Tensor:
    """WaveNet's gated activation ``tanh(f) * sigmoid(g)`` of the channel halves ``(f, g)`` of ``y`` in one pass,
    keeping only ``y`` for the backward pass (unfused: a split, tanh, sigmoid and a product, each of whose inputs
    is kept). ``out`` takes ``y``'s layout and dtype."""
    if y.dim() != 3 or y.shape[1] % 2:
        raise ValueError(f"gate input {tuple(y.shape)}: expected (batch, 2 * channels, time)")
    return _GatedResidual.apply(y, None, 0, y.shape[-1], 1, 1, 0)


class _GatedResidual(torch.autograd.Function):

    @staticmethod
    def forward(ctx, y, x, start, n, step, repeat, offset):
        # x is None for WaveNet's gate: no identity is read, and out has y's dtype
        dtype = y.dtype if x is None else torch.result_type(y, x)
        out = _empty((y.shape[0], y.shape[1] // 2, n), _time_major(y), dtype, y.device)
        fused = (use_triton(y.device, y.dtype) and (x is None or use_triton(x.device, x.dtype))
                 and all(_int32_indexable(t) for t in (y, x, out) if t is not None))
        (_forward_triton if fused else _forward_torch)(y, x, out, start, step, repeat, offset)
        ctx.save_for_backward(y)
        ctx.geometry = start, n, step, repeat, offset
        ctx.x_like = None if x is None else (x.shape, _time_major(x), x.dtype)
        ctx.fused = fused
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        start, n, step, repeat, offset = ctx.geometry
        grad_y = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_y = _empty(y.shape, _time_major(y), y.dtype, y.device)
            (_gate_backward_triton if ctx.fused else _gate_backward_torch)(grad_out, y, grad_y, start)
        if ctx.x_like is not None and ctx.needs_input_grad[1]:
            shape, time_major, dtype = ctx.x_like
            grad_x = _empty(shape, time_major, dtype, y.device)
            (_identity_backward_triton if ctx.fused else _identity_backward_torch)(grad_out, grad_x, step, repeat,
                                                                                   offset)
        return grad_y, grad_x, None, None, None, None, None


def _time_major(t: torch.Tensor) -> bool:
    """Whether ``t`` (batch, channels, time) is laid out channels-last, time-major."""
    return t.stride(1) < t.stride(2)


def _int32_indexable(t: torch.Tensor) -> bool:
    """The kernels index within a sequence with 32-bit integers (the batch offset is 64-bit)."""
    return sum((size - 1) * stride for size, stride in zip(t.shape[1:], t.stride()[1:])) < 2 ** 31 - 1


def _empty(shape, time_major: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A dense (batch, channels, time) tensor, channels-last if ``time_major``."""
    batch, channels, length = shape
    if time_major:
        return torch.empty(batch, length, channels, dtype=dtype, device=device).transpose(1, 2)
    return torch.empty(batch, channels, length, dtype=dtype, device=device)


# -- torch path ----------------------------------------------------------------------------------------------------

def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _identity_index(n: int, step: int, repeat: int, offset: int, device: torch.device) -> torch.Tensor:
    return (torch.arange(n, device=device) * step + offset) // repeat


def _gate_torch(y: torch.Tensor, start: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """tanh(f) and sigmoid(g) over the window, in float32 at least."""
    c = y.shape[1] // 2
    window = y[..., start:start + n].to(_opmath(y.dtype))
    return torch.tanh(window[:, :c]), torch.sigmoid(window[:, c:])


def _forward_torch(y, x, out, start, step, repeat, offset) -> None:
    t, s = _gate_torch(y, start, out.shape[-1])
    if x is None:
        out.copy_(t * s)
        return
    identity = x.index_select(2, _identity_index(out.shape[-1], step, repeat, offset, x.device))
    torch.add(identity, t * s, out=out)


def _gate_backward_torch(grad_out, y, grad_y, start) -> None:
    c, n = grad_out.shape[1], grad_out.shape[-1]
    t, s = _gate_torch(y, start, n)
    g = grad_out.to(t.dtype)
    grad_y.zero_()
    grad_y[:, :c, start:start + n] = g * s * (1 - t * t)
    grad_y[:, c:, start:start + n] = g * t * s * (1 - s)


def _identity_backward_torch(grad_out, grad_x, step, repeat, offset) -> None:
    acc = torch.zeros_like(grad_x, dtype=_opmath(grad_x.dtype))
    index = _identity_index(grad_out.shape[-1], step, repeat, offset, grad_out.device)
    acc.index_add_(2, index, grad_out.to(acc.dtype))
    grad_x.copy_(acc)


# -- Triton path ---------------------------------------------------------------------------------------------------

if triton is not None:   # pragma: no cover - GPU only

    @triton.jit
    def _tanh(f):
        # 2 sigmoid(2f) - 1 is tanh, but near 0 it is the difference of two numbers near 1: in float32 its relative
        # error reaches 1e-4 at |f| = 1e-3 (and 100 % below 1e-7), which WaveNet's 52 gated layers carried into a
        # 3e-4 relative error of the first layer's gradient on an H200. Below |f| = 0.1 the series to f^7 is exact
        # to float32 (the next term is 2e-10 of tanh there); above, the sigmoid form's relative error is 1.3e-6.
        f2 = f * f
        series = f * (1.0 + f2 * (-1.0 / 3.0 + f2 * (2.0 / 15.0 - f2 * (17.0 / 315.0))))
        return tl.where(tl.abs(f) < 0.1, series, 2.0 * tl.sigmoid(2.0 * f) - 1.0)

    # Sizes and offsets change from layer to layer and are not specialised on (one compiled kernel for all); the
    # strides are, so that a stride of 1 is known and each tensor is read along its contiguous axis.
    @triton.jit(do_not_specialize=["c", "n", "start", "offset"])
    def _gate_forward_kernel(y, x, out, c, n, start, offset, s_yb, s_yc, s_yt, s_xb, s_xc, s_xt, s_ob, s_oc,
                             s_ot, STEP: tl.constexpr, REPEAT: tl.constexpr, HAS_X: tl.constexpr, BC: tl.constexpr,
                             BT: tl.constexpr):
        j = tl.program_id(0) * BT + tl.arange(0, BT)
        ch = tl.program_id(1) * BC + tl.arange(0, BC)
        b = tl.program_id(2).to(tl.int64)
        mask = (ch < c)[:, None] & (j < n)[None, :]
        yp = y + b * s_yb + ch[:, None] * s_yc + (start + j)[None, :] * s_yt
        f = tl.load(yp, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(yp + c * s_yc, mask=mask, other=0.0).to(tl.float32)
        r = _tanh(f) * tl.sigmoid(g)
        if HAS_X:                       # the residual Seq-U-Net's identity; WaveNet's gate has none
            i = (STEP * j + offset) // REPEAT
            r += tl.load(x + b * s_xb + ch[:, None] * s_xc + i[None, :] * s_xt, mask=mask, other=0.0).to(tl.float32)
        tl.store(out + b * s_ob + ch[:, None] * s_oc + j[None, :] * s_ot, r.to(out.dtype.element_ty), mask=mask)

    @triton.jit(do_not_specialize=["c", "n", "start", "length"])
    def _gate_backward_kernel(go, y, gy, c, n, start, length, s_gb, s_gc, s_gt, s_yb, s_yc, s_yt, s_db, s_dc, s_dt,
                              BC: tl.constexpr, BT: tl.constexpr):
        """grad_y over the whole of y: the gate's derivatives inside the window [start, start + n), zero outside."""
        p = tl.program_id(0) * BT + tl.arange(0, BT)
        ch = tl.program_id(1) * BC + tl.arange(0, BC)
        b = tl.program_id(2).to(tl.int64)
        j = p - start
        mask = (ch < c)[:, None] & (p < length)[None, :]
        inside = mask & ((j >= 0) & (j < n))[None, :]
        yp = y + b * s_yb + ch[:, None] * s_yc + p[None, :] * s_yt
        f = tl.load(yp, mask=inside, other=0.0).to(tl.float32)
        g = tl.load(yp + c * s_yc, mask=inside, other=0.0).to(tl.float32)
        d = tl.load(go + b * s_gb + ch[:, None] * s_gc + j[None, :] * s_gt, mask=inside, other=0.0).to(tl.float32)
        t = _tanh(f)
        s = tl.sigmoid(g)
        dp = gy + b * s_db + ch[:, None] * s_dc + p[None, :] * s_dt
        tl.store(dp, (d * s * (1.0 - t * t)).to(gy.dtype.element_ty), mask=mask)
        tl.store(dp + c * s_dc, (d * t * s * (1.0 - s)).to(gy.dtype.element_ty), mask=mask)

    @triton.jit(do_not_specialize=["c", "n", "length", "offset"])
    def _identity_backward_kernel(go, gx, c, n, length, offset, s_gb, s_gc, s_gt, s_xb, s_xc, s_xt,
                                  STEP: tl.constexpr, REPEAT: tl.constexpr, BC: tl.constexpr, BT: tl.constexpr):
        """grad_x[i] = sum of grad_out[j] over the outputs j that read sample i: those with
        step * j + offset = repeat * i + r, r < repeat (at most one for a decimation, two for an upsampling)."""
        i = tl.program_id(0) * BT + tl.arange(0, BT)
        ch = tl.program_id(1) * BC + tl.arange(0, BC)
        b = tl.program_id(2).to(tl.int64)
        mask = (ch < c)[:, None] & (i < length)[None, :]
        acc = tl.zeros((BC, BT), dtype=tl.float32)
        for r in tl.static_range(REPEAT):
            q = REPEAT * i + r - offset
            qc = tl.maximum(q, 0)
            j = qc // STEP
            hit = (q >= 0) & (qc % STEP == 0) & (j < n)
            acc += tl.load(go + b * s_gb + ch[:, None] * s_gc + j[None, :] * s_gt, mask=mask & hit[None, :],
                           other=0.0).to(tl.float32)
        tl.store(gx + b * s_xb + ch[:, None] * s_xc + i[None, :] * s_xt, acc.to(gx.dtype.element_ty), mask=mask)


def _grid(channels: int, length: int, batch: int) -> tuple[int, int, int]:   # pragma: no cover - GPU only
    return triton.cdiv(length, _BT), triton.cdiv(channels, _BC), batch


def _forward_triton(y, x, out, start, step, repeat, offset) -> None:   # pragma: no cover - GPU only
    batch, c, n = out.shape
    # without an identity, y stands in for x's pointer and strides (never read: HAS_X is False)
    xs = y if x is None else x
    _gate_forward_kernel[_grid(c, n, batch)](y, xs, out, c, n, start, offset, *y.stride(), *xs.stride(),
                                             *out.stride(), STEP=step, REPEAT=repeat, HAS_X=x is not None, BC=_BC,
                                             BT=_BT)


def _gate_backward_triton(grad_out, y, grad_y, start) -> None:   # pragma: no cover - GPU only
    batch, c, n = grad_out.shape
    length = y.shape[-1]
    _gate_backward_kernel[_grid(c, length, batch)](grad_out, y, grad_y, c, n, start, length, *grad_out.stride(),
                                                   *y.stride(), *grad_y.stride(), BC=_BC, BT=_BT)


def _identity_backward_triton(grad_out, grad_x, step, repeat, offset) -> None:   # pragma: no cover - GPU only
    batch, c, length = grad_x.shape
    _identity_backward_kernel[_grid(c, length, batch)](grad_out, grad_x, c, grad_out.shape[-1], length, offset,
                                                       *grad_out.stride(), *grad_x.stride(), STEP=step,
                                                       REPEAT=repeat, BC=_BC, BT=_BT)
