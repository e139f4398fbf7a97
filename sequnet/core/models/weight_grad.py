"""Channels-last convolutions whose weight gradient is a product of matrices (cuBLAS), not cuDNN's.

For a valid 1-D convolution (stride s, dilation d, k taps) over channels-last activations, tap j's weight gradient
is one product per sequence of the batch, summed over the batch:

    dW[:, :, j] = sum_b  dY_b^T @ X_b[j d : j d + s (n - 1) + 1 : s]        (out x n) @ (n x in)

where X_b and dY_b are the (time, channels) views of the input and of the output gradient, which channels-last
activations store as they are, so the taps need no copies: one batched product per tap. For a transposed
convolution (weight (in, out, k)) the roles swap: ``X_b^T @ dY_b[j : j + s (n - 1) + 1 : s]``. The input
gradient stays cuDNN's (through :mod:`sequnet.core.models.conv_grads`), the bias gradient is the output
gradient's sum.

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
Seq-U-Net's and 23.6 against 14.1 for WaveNet's in bf16, and 94.1 against 18.4 and 134.3 against 26.6 in float32
(the products there in full float32: the benchmark left cuBLAS at torch's default precision until dc7d64c; in TF32
they took 25.16 against 18.38 and 42.91 against 25.35 ms, H100, results/bench/weight-grad-tf32-products-cf-h100.json).
A fourth way, cuBLAS's products of channels-first copies, lost to cuDNN's too and was removed (H100, dc7d64c:
results/bench/weight-grad-tf32-products-cf-h100.json, and the complexity chapter).

``kernel="cudnn_cf"``: cuDNN's own weight gradient from channels-first copies of the input and the output gradient
(the data and bias gradients stay channels-last), for ``benchmarks/piano_step.py``'s ``cf_wgrad``: in TF32 the
channels-last operands do not suit Hopper's tensor cores (:func:`_cudnn_channels_first`). Measured layer by layer
(H100, c7033da, results/bench/weight-grad-layouts-h100.json): slower for both models in both precisions, even with
the copies made beforehand (the TF32 Seq-U-Net's 24.96 ms against 18.50 channels-last), so the trainer does not take
it.

``kernel="triton"`` (:func:`weight_grad_triton`): the same sums in one Triton launch a convolution, for the TF32
weight gradients. cuDNN's reached at most 157 TFLOP/s a layer in TF32 on an H100 where its forward convolutions
reached about 280 (results/bench/weight-grad-kernels-h100.json): Hopper's wgmma reads TF32 operands only with the
summed axis (the positions) contiguous, which channels-last activations store apart. The kernel's asynchronous
copies write each tile into shared memory transposed, 4 bytes at a time, and a program multiplies one (output
tile, sequence, share of its positions) for all k taps at once, one accumulator a tap, so each tile of the operand
read whole serves every tap and the shifted operand's k overlapping tiles come from the L1 cache. The shares'
float32 partial sums are written apart and added in a fixed order (deterministic, unlike cuDNN's split sums), and
float32 operands are multiplied in TF32 where cuDNN's convolutions are (``torch.backends.cudnn.allow_tf32``). Checked
in Triton's CPU interpreter (``tests/test_kernels_interpreted.py``), compiled for sm_90 there
(``tests/test_kernels_compiled.py``) and on a GPU. Its first design, a program a tap over shares of the batch's
positions found by division, took 60.3 ms for the Seq-U-Net's weight gradients in TF32 against cuDNN's 18.4
(H100, 932025f). This one took 23.7 ms against cuDNN's 18.5, and 42.4 against 27.1 for WaveNet's (H100, 6bbc185,
results/bench/weight-grad-tf32-kernel-h100.json, each layer at its best of 10 tiles): still slower everywhere, most
of all on single-tap layers, where it has no taps to share a tile between and the 4-byte transposing copies are
the likeliest limit. With it the compiled TF32 Seq-U-Net step took 68.0 ms against 56.6 with cuDNN's
(results/bench/piano-step-tf32-triton-wgrad-h100.json), so the trainer does not take it.
"""
from __future__ import annotations

import torch

from sequnet.core.models import conv_grads
from sequnet.core.triton_guard import tl, triton, use_triton

KERNELS = ("products", "triton", "cudnn_cf")
# Triton: (positions, first and second channels a program multiplies at a time), warps and pipeline stages, for
# float32 operands and 16-bit ones. The taps share a program, so k accumulators of (first x second) float32 live in
# its registers. The float32 tile was the fastest of 10 over both piano models' layers (H100, 6bbc185,
# results/bench/weight-grad-tf32-kernel-h100.json: 24.1 ms for the Seq-U-Net's, against 29.5 for 32x128x32 at 4
# stages), though ptxas spills 44 bytes of it at k = 5
TILE = {"float32": ((32, 128, 64), 8, 3), "16-bit": ((64, 64, 32), 4, 3)}
MAX_TAPS = 5            # the kernel's accumulators: the audio models' convolutions have 1, 2 or 5 taps
SHARED_BYTES = 227 * 1024   # an H100's shared memory a program may use


def conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, dilation: int,
         transposed: bool, kernel: str = "products") -> torch.Tensor:
    """The valid channels-last convolution (``transposed``: transposed convolution) of ``x`` (batch, in, T) with
    ``weight`` and ``bias``, its weight gradient by ``kernel`` (``KERNELS``). Under autocast the operands are cast
    to autocast's dtype first, as autocast would cast them for cuDNN."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r}: expected one of {KERNELS}")
    return _ConvMMWeightGrad.apply(*conv_grads.autocast_operands(x, weight, bias), stride, dilation, transposed,
                                   kernel)


def weight_grad(x: torch.Tensor, grad: torch.Tensor, k: int, stride: int, dilation: int,
                transposed: bool, kernel: str = "products") -> torch.Tensor:
    """The weight gradient of the convolution of ``x`` (batch, in, T) whose output gradient is ``grad``
    (batch, out, n), shape (out, in, k) ((in, out, k) transposed), in float32 for 16-bit operands; by ``kernel``
    (``"triton"`` where Triton runs, :func:`weight_grad_triton`, the products elsewhere)."""
    xt, gt = x.transpose(1, 2), grad.transpose(1, 2)          # (batch, time, channels): channels-last, no copies
    # the operand read at every tap's offsets, and the one read whole
    shifted, whole = (gt, xt) if transposed else (xt, gt)
    if kernel == "triton" and use_triton(x.device, x.dtype):
        return torch.ops.sequnet.weight_grad_triton(whole, shifted, k, stride, dilation).transpose(1, 2)
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
                       stages: int | None = None, programs: int | None = None) -> torch.Tensor:
    """``out[p, q, j] = sum over b and t < n of whole[b, t, p] * shifted[b, j * dilation + t * stride, q]`` for
    ``whole`` (batch, n, P) and ``shifted`` (batch, T, Q), as (P, Q, k) float32 with the strides of
    :func:`weight_grad`'s products. ``tile``: positions, P and Q channels per program (each at least 16), with
    ``warps`` and ``stages``, by default TILE's for the operands' dtype; ``programs``: how many run at once (by
    default the GPU's multiprocessors times the tile's programs per multiprocessor), whose whole waves the
    sequences' shares are chosen to fill (:func:`shares_for`)."""
    if not 1 <= k <= MAX_TAPS:
        raise ValueError(f"a convolution of {k} taps: the Triton weight gradient takes 1 to {MAX_TAPS}; take "
                         f'kernel="products" or cuDNN\'s for it')
    best_tile, best_warps, best_stages = TILE["float32" if whole.dtype == torch.float32 else "16-bit"]
    (bt, bp, bq), warps, stages = tile or best_tile, warps or best_warps, stages or best_stages
    batch, n, p_ch = whole.shape
    q_ch = shifted.shape[2]
    tiles = triton.cdiv(p_ch, bp) * triton.cdiv(q_ch, bq)
    if programs is None:
        programs = _at_once(whole, (bt, bp, bq), k, warps, stages)
    shares = shares_for(tiles * batch, n, bt, programs)
    per_share = triton.cdiv(triton.cdiv(n, shares), bt) * bt
    shares = triton.cdiv(n, per_share)
    part = torch.empty(batch * shares, p_ch, k, q_ch, dtype=torch.float32, device=whole.device)
    tf32 = whole.dtype == torch.float32 and torch.backends.cudnn.allow_tf32
    _wgrad_kernel[(tiles, batch * shares)](
        whole, shifted, part, n, p_ch, q_ch, per_share, shares, *whole.stride(), *shifted.stride(), stride,
        dilation, K=k, BT=bt, BP=bp, BQ=bq, PRECISION="tf32" if tf32 else "ieee", num_warps=warps,
        num_stages=stages)
    # the shares added in order; (P, k, Q) as (P, Q, k): the products' layout, the weight's channels-last strides
    return part.sum(0).transpose(1, 2)


# As an operator of its own, torch.compile's graphs call the kernel as one opaque node in the backward, as they call
# cuDNN's, instead of tracing its Python (the launch's arguments, the multiprocessors' count)
@torch.library.custom_op("sequnet::weight_grad_triton", mutates_args=())
def _weight_grad_op(whole: torch.Tensor, shifted: torch.Tensor, k: int, stride: int, dilation: int) -> torch.Tensor:
    """:func:`weight_grad_triton` in TILE's tile, as (P, k, Q): contiguous, the layout the operator promises."""
    return weight_grad_triton(whole, shifted, k, stride, dilation).transpose(1, 2).contiguous()


@_weight_grad_op.register_fake
def _(whole: torch.Tensor, shifted: torch.Tensor, k: int, stride: int, dilation: int) -> torch.Tensor:
    return whole.new_empty(whole.shape[2], k, shifted.shape[2], dtype=torch.float32)


def _at_once(whole: torch.Tensor, tile: tuple[int, int, int], k: int, warps: int, stages: int) -> int:
    """About how many programs of this tile run at once: the multiprocessors (4 in the interpreter) times as many
    as fit one by shared memory (the stages' tiles) and by registers (the k accumulators, plus about 64 a thread)."""
    sms = torch.cuda.get_device_properties(whole.device).multi_processor_count if whole.is_cuda else 4
    bt, bp, bq = tile
    shared = stages * bt * (bp + k * bq) * whole.element_size()
    registers = warps * 32 * (k * bp * bq // (warps * 32) + 64)
    return sms * max(1, min(SHARED_BYTES // shared, 65536 // registers))


def shares_for(units: int, n: int, bt: int, programs: int) -> int:
    """Into how many shares to cut each sequence's ``n`` positions, given ``units`` (output tiles x sequences) and
    ``programs`` running at once: the count whose waves of programs carry the least idle time per share of work,
    each share at least 4 tiles of ``bt`` positions long, and every further share charged 1 % (its partial sums are
    written and added). For example the piano Seq-U-Net's (384 x 192)-channel layers in 128 x 32 tiles
    (18 output tiles, one program a multiprocessor) at batch 16 on an H100's 132: one share is 288 programs, 3
    waves the last of which is 18 % full; 5 shares fill 11 waves to 99 %."""
    best_score, best = None, 1
    for s in range(1, max(1, n // (4 * bt)) + 1):
        score = -(-units * s // programs) / s * (1 + 0.01 * s)     # waves per share, charged
        if best_score is None or score < best_score - 1e-12:
            best_score, best = score, s
        if units * s >= 16 * programs:      # past 16 waves the last one's idle share is at most 1/16
            break
    return best


class _ConvMMWeightGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride: int, dilation: int, transposed: bool, kernel: str = "products"):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, dilation, transposed, bias is not None, kernel)
        return conv_grads.forward(x, weight, bias, stride, dilation, transposed)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, dilation, transposed, has_bias, kernel = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        # channels-last (no copy where it is already): the kernels read whole rows of channels, and a channels-first
        # gradient would cost the Triton kernel uncoalesced loads
        grad = grad.transpose(1, 2).contiguous().transpose(1, 2)
        if need_x:
            gx, = conv_grads.grads(grad, x, weight, stride, dilation, transposed, True, False)
        gb = grad.sum((0, 2)) if need_b and has_bias else None
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

    @triton.jit(do_not_specialize=["n", "per_share", "shares", "s_wb", "s_sb"])
    def _wgrad_kernel(whole, shifted, part, n, p_ch, q_ch, per_share, shares, s_wb, s_wt, s_wp, s_sb, s_st, s_sq,
                      stride, dilation, K: tl.constexpr, BT: tl.constexpr, BP: tl.constexpr, BQ: tl.constexpr,
                      PRECISION: tl.constexpr):
        """part[r, p, j, q] = the sum over the share's positions t of whole[b, t, p] * shifted[b, j * dilation +
        t * stride, q], for program r = b * shares + share, one (BP x BQ) output tile and every tap j < K."""
        tiles_q = tl.cdiv(q_ch, BQ)
        p = (tl.program_id(0) // tiles_q) * BP + tl.arange(0, BP)
        q = (tl.program_id(0) % tiles_q) * BQ + tl.arange(0, BQ)
        b = tl.program_id(1) // shares
        start = (tl.program_id(1) % shares) * per_share
        stop = tl.minimum(start + per_share, n)
        pmask, qmask = p < p_ch, q < q_ch
        w_at = whole + b.to(tl.int64) * s_wb + p[None, :] * s_wp
        s_at = shifted + b.to(tl.int64) * s_sb + q[None, :] * s_sq
        # one accumulator a tap (a constexpr K leaves the unused ones out)
        acc0 = tl.zeros((BP, BQ), dtype=tl.float32)
        acc1 = tl.zeros((BP, BQ), dtype=tl.float32)
        acc2 = tl.zeros((BP, BQ), dtype=tl.float32)
        acc3 = tl.zeros((BP, BQ), dtype=tl.float32)
        acc4 = tl.zeros((BP, BQ), dtype=tl.float32)
        for t0 in range(start, stop, BT):
            t = t0 + tl.arange(0, BT)
            ok = t < stop
            a = tl.trans(tl.load(w_at + t[:, None] * s_wt, mask=ok[:, None] & pmask[None, :], other=0.0))
            cmask = ok[:, None] & qmask[None, :]
            row = t * stride
            acc0 = _tap(a, s_at, row, s_st, cmask, acc0, PRECISION)
            if K > 1:
                acc1 = _tap(a, s_at, row + dilation, s_st, cmask, acc1, PRECISION)
            if K > 2:
                acc2 = _tap(a, s_at, row + 2 * dilation, s_st, cmask, acc2, PRECISION)
            if K > 3:
                acc3 = _tap(a, s_at, row + 3 * dilation, s_st, cmask, acc3, PRECISION)
            if K > 4:
                acc4 = _tap(a, s_at, row + 4 * dilation, s_st, cmask, acc4, PRECISION)
        out = part + (tl.program_id(1) * p_ch + p[:, None]).to(tl.int64) * (K * q_ch) + q[None, :]
        omask = pmask[:, None] & qmask[None, :]
        tl.store(out, acc0, mask=omask)
        if K > 1:
            tl.store(out + q_ch, acc1, mask=omask)
        if K > 2:
            tl.store(out + 2 * q_ch, acc2, mask=omask)
        if K > 3:
            tl.store(out + 3 * q_ch, acc3, mask=omask)
        if K > 4:
            tl.store(out + 4 * q_ch, acc4, mask=omask)

    @triton.jit
    def _tap(a, s_at, row, s_st, cmask, acc, PRECISION: tl.constexpr):
        """acc + a @ the shifted operand's rows ``row`` (one tap's tile)."""
        return tl.dot(a, tl.load(s_at + row[:, None] * s_st, mask=cmask, other=0.0), acc, input_precision=PRECISION)
