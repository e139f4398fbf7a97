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
gradients are slowest). In bf16 (e58693b, results/bench/piano-step-mm-wgrad-bf16-*-h100.json) likewise: WaveNet
uncompiled 172.86 against 199.60 ms, every other step slower. All those pairs' cuDNN plans were its heuristics'
(``benchmarks/piano_step.py``, ``check_autotuner``). Against autotuned plans (H100, 932025f, each variant in a
process of its own, results/bench/piano-step-autotuner-h100.json) WaveNet's products lost too, 172.77 against
169.63 ms, so the trainer takes cuDNN's weight gradients everywhere (``sequnet.experiment.fast_path``). Alone, layer
by layer (results/bench/weight-grad-kernels-h100.json), the products took 12.1 ms against cuDNN's 5.2 for the
Seq-U-Net's and 23.6 against 14.1 for WaveNet's in bf16, and 94.1 against 18.4 and 134.3 against 26.6 in TF32.

``kernel="cudnn_cf"``: cuDNN's own weight gradient from channels-first copies of the input and the output gradient
(the data and bias gradients stay channels-last), for ``benchmarks/piano_step.py``'s ``cf_wgrad``: in TF32 the
channels-last operands do not suit Hopper's tensor cores (:func:`_cudnn_channels_first`). Measured layer by layer
(H100, c7033da, results/bench/weight-grad-layouts-h100.json): slower for both models in both precisions, even with
the copies made beforehand (the TF32 Seq-U-Net's 24.96 ms against 18.50 channels-last), so the trainer does not take
it.

``kernel="triton"`` (:func:`weight_grad_triton`): the same sums in one Triton launch a convolution, split over the
positions instead of the batch. cuBLAS's products above are each a few output tiles with a 36,845-long sum, which
leave most multiprocessors idle; here every (output tile, tap, share of the batch's positions) is a program, the
shares' float32 partial sums are written apart and added in a fixed order (deterministic, unlike cuDNN's), and
float32 operands are multiplied in TF32 where cuDNN's convolutions are (``torch.backends.cudnn.allow_tf32``),
the precision cuDNN's weight gradients would have. Checked in Triton's CPU interpreter
(``tests/test_kernels_interpreted.py``) and on a GPU. Slower than cuDNN's autotuned plans everywhere (H100, 932025f,
``benchmarks/weight_grad_kernels.py``): the Seq-U-Net's weight gradients alone took 60.3 ms against cuDNN's 18.4 in
TF32 (at most 59 TFLOP/s a layer, where cuDNN's reached 157) and 35.7 against 5.2 in bf16, and its compiled TF32
step 150.46 ms against 59.38. Not profiled: its loads find each row's (sequence, time) by division, the likeliest
cause. It stays for the benchmark, and the trainer does not take it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sequnet.core.triton_guard import tl, triton, use_triton

KERNELS = ("products", "triton", "cudnn_cf")
# Triton: positions, first and second channels a program multiplies at once; warps; programs to aim for (about
# 4 a multiprocessor of an H100). For float32 operands and 16-bit ones, the tile and warps best over the Seq-U-Net's
# layers of the 8 timed (benchmarks/weight_grad_kernels.py, H100, 932025f: 60.3 ms in TF32, where 64x64x64 took
# 114.7; 35.8 ms in bf16, where 32x128x128 took 66.2); WaveNet's best were the same tiles
TILE = {"float32": ((32, 128, 128), 8), "16-bit": ((64, 64, 64), 8)}
PROGRAMS = 528


def conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, dilation: int,
         transposed: bool, kernel: str = "products") -> torch.Tensor:
    """The valid channels-last convolution (``transposed``: transposed convolution) of ``x`` (batch, in, T) with
    ``weight`` and ``bias``, its weight gradient by ``kernel`` (``KERNELS``). Under autocast the operands are cast
    to autocast's dtype first, as autocast would cast them for cuDNN."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r}: expected one of {KERNELS}")
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    return _ConvMMWeightGrad.apply(x, weight, bias, stride, dilation, transposed, kernel)


def _forward(x, weight, bias, stride: int, dilation: int, transposed: bool) -> torch.Tensor:
    if transposed:
        y = F.conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), dilation=(1, dilation))
    else:
        y = F.conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), dilation=(1, dilation))
    return y.squeeze(2)


def weight_grad(x: torch.Tensor, grad: torch.Tensor, k: int, stride: int, dilation: int,
                transposed: bool, kernel: str = "products") -> torch.Tensor:
    """The weight gradient of the convolution of ``x`` (batch, in, T) whose output gradient is ``grad``
    (batch, out, n), shape (out, in, k) ((in, out, k) transposed), in float32 for 16-bit operands; by ``kernel``
    (``"triton"`` where Triton runs, :func:`weight_grad_triton`, the products elsewhere)."""
    xt, gt = x.transpose(1, 2), grad.transpose(1, 2)          # (batch, time, channels): channels-last, no copies
    # the operand read at every tap's offsets, and the one read whole
    shifted, whole = (gt, xt) if transposed else (xt, gt)
    if kernel == "triton" and use_triton(x.device, x.dtype):
        return weight_grad_triton(whole, shifted, k, stride, dilation)
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


def weight_grad_triton(whole: torch.Tensor, shifted: torch.Tensor, k: int, stride: int, dilation: int, *,
                       tile: tuple[int, int, int] | None = None, warps: int | None = None,
                       programs: int = PROGRAMS) -> torch.Tensor:
    """``out[p, q, j] = sum over b and t < n of whole[b, t, p] * shifted[b, j * dilation + t * stride, q]`` for
    ``whole`` (batch, n, P) and ``shifted`` (batch, T, Q), as (P, Q, k) float32 with the strides of
    :func:`weight_grad`'s products. ``tile``: positions, P and Q channels per program (each at least 16);
    ``programs``: about how many to launch (the positions are split into that many shares over the output tiles
    and taps), for ``benchmarks/weight_grad_kernels.py`` to time; by default TILE's for the operands' dtype."""
    best_tile, best_warps = TILE["float32" if whole.dtype == torch.float32 else "16-bit"]
    tile, warps = tile or best_tile, warps or best_warps
    batch, n, p_ch = whole.shape
    q_ch = shifted.shape[2]
    bt, bp, bq = tile
    tiles = triton.cdiv(p_ch, bp) * triton.cdiv(q_ch, bq)
    total = batch * n
    # each share at least 4 position tiles long; fewer shares where the output tiles and taps fill the GPU
    shares = max(1, min(triton.cdiv(programs, tiles * k), triton.cdiv(total, 4 * bt)))
    per_share = triton.cdiv(triton.cdiv(total, shares), bt) * bt
    shares = triton.cdiv(total, per_share)
    part = torch.empty(shares, p_ch, k, q_ch, dtype=torch.float32, device=whole.device)
    tf32 = whole.dtype == torch.float32 and torch.backends.cudnn.allow_tf32
    _wgrad_kernel[(tiles, k, shares)](
        whole, shifted, part, n, p_ch, q_ch, total, per_share, *whole.stride(), *shifted.stride(), stride,
        dilation, K=k, BT=bt, BP=bp, BQ=bq, PRECISION="tf32" if tf32 else "ieee", num_warps=warps)
    # the shares added in order; (P, k, Q) as (P, Q, k): the products' layout, the weight's channels-last strides
    return part.sum(0).transpose(1, 2)


class _ConvMMWeightGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride: int, dilation: int, transposed: bool, kernel: str = "products"):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, dilation, transposed, bias is not None, kernel)
        return _forward(x, weight, bias, stride, dilation, transposed)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, dilation, transposed, has_bias, kernel = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        if need_x or (need_b and has_bias):
            out_channels = weight.shape[1] if transposed else weight.shape[0]
            gx, _, gb = torch.ops.aten.convolution_backward(
                grad.unsqueeze(2), x.unsqueeze(2), weight.unsqueeze(2), [out_channels] if has_bias else None,
                [1, stride], [0, 0], [1, dilation], transposed, [0, 0], 1, [need_x, False, need_b and has_bias])
            gx = gx.squeeze(2) if gx is not None else None
        if need_w and kernel == "cudnn_cf":
            gw = _cudnn_channels_first(x, grad, weight, stride, dilation, transposed)
        elif need_w:
            gw = weight_grad(x, grad, weight.shape[-1], stride, dilation, transposed, kernel).to(weight.dtype)
        return gx, gw, gb, None, None, None, None


def _cudnn_channels_first(x, grad, weight, stride: int, dilation: int, transposed: bool) -> torch.Tensor:
    """cuDNN's weight gradient (the same kernels, precision and sums as the convolution's own backward) from
    channels-first copies of ``x`` and ``grad``, in ``weight``'s strides. Why: the weight gradient sums over the
    positions, and Hopper's wgmma reads TF32 operands only with the summed axis contiguous (its transposed layouts
    are for 16-bit types), which channels-last activations do not have."""
    gw = torch.ops.aten.convolution_backward(
        grad.contiguous().unsqueeze(2), x.contiguous().unsqueeze(2), weight.unsqueeze(2), None, [1, stride], [0, 0],
        [1, dilation], transposed, [0, 0], 1, [False, True, False])[1].squeeze(2)
    return gw if gw.stride() == weight.stride() else torch.empty_like(weight).copy_(gw)


if triton is not None:   # pragma: no cover - GPU only (and Triton's interpreter: tests/test_kernels_interpreted.py)

    @triton.jit(do_not_specialize=["n", "total", "per_share", "s_wb", "s_sb"])
    def _wgrad_kernel(whole, shifted, part, n, p_ch, q_ch, total, per_share, s_wb, s_wt, s_wp, s_sb, s_st, s_sq,
                      stride, dilation, K: tl.constexpr, BT: tl.constexpr, BP: tl.constexpr, BQ: tl.constexpr,
                      PRECISION: tl.constexpr):
        """part[share, p, j, q] = the sum over this share's positions r = b * n + t of whole[b, t, p] *
        shifted[b, j * dilation + t * stride, q], for one (BP x BQ) output tile and tap j."""
        tiles_q = tl.cdiv(q_ch, BQ)
        p = (tl.program_id(0) // tiles_q) * BP + tl.arange(0, BP)
        q = (tl.program_id(0) % tiles_q) * BQ + tl.arange(0, BQ)
        j = tl.program_id(1)
        share = tl.program_id(2)
        start = share * per_share
        stop = tl.minimum(start + per_share, total)
        pmask, qmask = p < p_ch, q < q_ch
        acc = tl.zeros((BP, BQ), dtype=tl.float32)
        for r0 in range(start, stop, BT):
            r = r0 + tl.arange(0, BT)
            ok = r < stop
            b = (r // n).to(tl.int64)
            t = r - (r // n) * n
            a = tl.load(whole + b[:, None] * s_wb + t[:, None] * s_wt + p[None, :] * s_wp,
                        mask=ok[:, None] & pmask[None, :], other=0.0)
            c = tl.load(shifted + b[:, None] * s_sb + (j * dilation + t * stride)[:, None] * s_st + q[None, :] * s_sq,
                        mask=ok[:, None] & qmask[None, :], other=0.0)
            acc = tl.dot(tl.trans(a), c, acc, input_precision=PRECISION)
        out = part + ((share * p_ch + p[:, None]) * K + j) * q_ch + q[None, :]
        tl.store(out, acc, mask=pmask[:, None] & qmask[None, :])
