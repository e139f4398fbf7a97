"""The kernels of a cached layer update: out = act(sum_p x_p @ W_p + bias) (+ identity).

A step of cached generation is a chain of tiny operations (at batch 1 a layer update multiplies a window of a
few hundred values by a weight matrix of one or two megabytes), so its speed is set by kernel launches and by
how well each product streams its weights, not by arithmetic. Four implementations, chosen per state:

* torch (CPU, float64, or no Triton): an MKL/cuBLAS product (``matmul``), then ``activate_torch``: a few
  in-place element-wise operations.
* cuBLAS product + one fused Triton activation (CUDA, batch > ``GEMV_MAX_BATCH``).
* split-K GEMV + fused activation (CUDA, batch <= 64): cuBLAS runs a 1 x 900 x 360 product on a few
  multiprocessors (about 5 us; measured on an H200); the split-K kernel spreads the rows of W over about a
  hundred programs that write partial sums, and the activation adds them in a fixed order (no atomics).
* one fused kernel per layer (CUDA, batch <= ``ROWDOT_MAX_BATCH``): with W stored transposed (n, k), each program
  streams whole rows for its output columns, the filter and the gate column of an output side by side, and
  applies the activation in its epilogue: one launch per layer (about 2.6 us on an H200 for the piano model).
  Up to batch ``ROWDOT_TILE_MAX_BATCH`` a program holds the whole batch and multiplies element-wise; above it,
  each program takes a block of ``_DOT_BB`` sequences and multiplies on the tensor cores (``tl.dot``), so that
  a larger batch also runs one launch per layer where split-K runs two (product, then activation). Pinned
  (``kernel="rowdot"``) or timed (``tuning.fastest_kernel``) only: the batch rule keeps split-K above batch 4,
  since the fewer launches did not pay (H200, 2026-12-04, results/bench/generation-kernels-h200.json, bf16:
  the Seq-U-Net at batch 64 made 299,605 samples/s against split-K's 718,971; WaveNet 108,707 against 105,886).

The activations, for ``out`` of shape (batch, rows, c) (rows = 2 for a transposed layer's two fine samples, which
share the bias) and ``identity`` (batch, 1 or rows, c) or None:

* ``"gate"``:  out = identity + tanh(f) * sigmoid(g), with (f, g) = pre + bias split in halves   (n = 2c)
* ``"leaky"``: out = identity + leaky_relu(pre + bias, 0.01)                                     (n = c)
* ``"relu"``:  out = identity + relu(pre + bias)                                                 (n = c)
* ``"none"``:  out = identity + pre + bias                                                       (n = c)

A head's last kernel (rowdot, or the activation after split-K or cuBLAS) can also sample the next ids from the
logits it wrote (``sample=``), and then run the next step's start (``next_start=``; ``step_kernels`` says how).

``init_state(..., kernel=)`` pins one of them by name (``KERNELS``) where the batch rule would guess, and
``sequnet.core.generation.tuning.fastest_kernel`` times them for a model and batch.

Every tensor may be a strided view, so the outputs go straight into the state's windows. The eager and the
CUDA-graph paths run the same kernels, so they give bit-identical results; the Triton kernels compute in float32
(hence float64 states always take the torch path). ``SEQUNET_TRITON=0`` turns Triton off and
``SEQUNET_GEMV=cublas`` or ``=splitk`` pins the product (for comparisons).
"""
from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F

from sequnet.core.generation import splitk
# activate_triton and HEAD_SAMPLE_MAX_CLASSES live beside the split-K products whose sums the activation adds; the
# state and the tests reach them here, with the other kernels
from sequnet.core.generation.splitk import (HEAD_SAMPLE_MAX_CLASSES, KINDS, activate_triton, activation,  # noqa: F401
                                            matvec_triton)
from sequnet.core.generation.step_kernels import sample_args, sample_rows, shift_share, start_args, start_rows
from sequnet.core.triton_guard import pdl_enter, pdl_options, tl, triton, use_triton

GEMV_MAX_BATCH = 64
ROWDOT_MAX_BATCH = 4
# rowdot's element-wise tile takes one output column a program, doubled while at least this many programs remain
# (the Seq-U-Net's gated layers: 90 programs of 2 columns; benchmarks/generation.py --rowdot-programs varies it)
ROWDOT_PROGRAMS = 64
# Up to this batch the fused per-layer kernel holds the whole batch in one element-wise tile. Above it, a tile so
# built was 6x slower than split-K for the Seq-U-Net at batch 20 on an H200, and WaveNet's did not finish in
# minutes (results/logs/2026-12-02f-h200-kernels-and-suite.tar.xz): so larger batches go in blocks of _DOT_BB
# sequences through tl.dot, whose tiles stay the same size at any batch.
ROWDOT_TILE_MAX_BATCH = 8
_DOT_BB, _DOT_BK = 16, 64               # rowdot on the tensor cores: sequences and rows of W^T per tile


def use_gemv(device: torch.device, dtype: torch.dtype, batch: int) -> bool:
    return use_triton(device, dtype) and batch <= GEMV_MAX_BATCH and os.environ.get("SEQUNET_GEMV") != "cublas"


def use_rowdot(device: torch.device, dtype: torch.dtype, batch: int) -> bool:
    return (use_gemv(device, dtype, batch) and batch <= ROWDOT_MAX_BATCH
            and os.environ.get("SEQUNET_GEMV") != "splitk")


# The products a state can be told to use (``init_state(..., kernel=)``), as (fused activation, split-K GEMV,
# rowdot) switches. "auto" is the batch rule above; the others pin one path, for a state whose batch the rule
# guesses wrong (``sequnet.core.generation.tuning`` times them) and for comparisons.
KERNELS = {"rowdot": (True, True, True), "splitk": (True, True, False), "cublas": (True, False, False),
           "torch": (False, False, False)}


def kernel_switches(kernel: str, device: torch.device, dtype: torch.dtype,
                    batch: int) -> tuple[bool, bool, bool]:
    """(fused activation, split-K GEMV, rowdot) for ``kernel``: "auto" or one of ``KERNELS``. A Triton path needs a
    CUDA device, Triton and a float32/bf16/fp16 state; the GEMV paths a batch of at most ``GEMV_MAX_BATCH``:
    asked for elsewhere, it is a ValueError that says so."""
    if kernel == "auto":
        return use_triton(device, dtype), use_gemv(device, dtype, batch), use_rowdot(device, dtype, batch)
    if kernel not in KERNELS:
        chain = " ('chain' runs WaveNet's layers only)" if kernel == "chain" else ""
        raise ValueError(f"kernel={kernel!r}: expected 'auto' or one of {', '.join(map(repr, KERNELS))}{chain}")
    switches = KERNELS[kernel]
    if switches[0] and not use_triton(device, dtype):
        raise ValueError(f"kernel={kernel!r} runs Triton kernels, which need a CUDA device, Triton and a float32, "
                         f"bfloat16 or float16 state (here: {device.type}, {dtype}, Triton "
                         f"{'off' if triton is not None else 'not installed'}); use kernel='auto'")
    if switches[1] and batch > GEMV_MAX_BATCH:
        raise ValueError(f"kernel={kernel!r} takes a batch of at most {GEMV_MAX_BATCH}, got {batch}; use "
                         f"kernel='cublas' or 'auto'")
    return switches


def resolved_kernel(kernel: str, device: torch.device, dtype: torch.dtype, batch: int) -> str:
    """The name in ``KERNELS`` of what ``kernel`` ("auto" or a name) runs on this device, dtype and batch."""
    switches = kernel_switches(kernel, device, dtype, batch)
    return next(name for name, s in KERNELS.items() if s == switches)


# -- torch reference path ----------------------------------------------------------------------------------------

def activate_torch(kind: str, pre: torch.Tensor, bias: torch.Tensor | None, identity: torch.Tensor | None,
                   out: torch.Tensor) -> None:
    """Reference implementation; modifies ``pre`` in place."""
    if pre.dim() == 4:
        pre = pre.sum(0)
    if bias is not None:
        pre.add_(bias)
    if kind == "gate":
        c = out.shape[-1]
        f, g = pre[..., :c], pre[..., c:]
        f.tanh_()
        g.sigmoid_()
        if identity is None:
            torch.mul(f, g, out=out)
        else:
            torch.addcmul(identity, f, g, out=out)
        return
    if kind == "leaky":
        F.leaky_relu_(pre, 0.01)
    elif kind == "relu":
        pre.clamp_min_(0)
    elif kind != "none":
        raise ValueError(f"unknown activation {kind!r}")
    if identity is None:
        out.copy_(pre)
    else:
        torch.add(identity, pre, out=out)


def matmul(parts: list[tuple[torch.Tensor, torch.Tensor]], bias: torch.Tensor | None = None, gemv: bool = False,
           pre: torch.Tensor | None = None, relu_x: bool = False) -> tuple[list, torch.Tensor]:
    """Operations that compute sum_p x_p @ w_p (+ bias, cuBLAS/MKL path only) into ``pre`` (allocated when
    None), and ``pre``. ``relu_x`` (split-K GEMV only) applies a ReLU to the inputs as they are loaded."""
    x0, w0 = parts[0]
    if gemv:
        assert len(parts) <= 2, "the split-K GEMV takes one or two input parts"
        pre = splitk.partial_sums(parts) if pre is None else pre
        return [functools.partial(matvec_triton, parts, pre, relu_x)], pre
    assert not relu_x
    if pre is None:
        pre = torch.zeros(x0.shape[0], w0.shape[1], dtype=x0.dtype, device=x0.device)
    first = (functools.partial(torch.mm, x0, w0, out=pre) if bias is None
             else functools.partial(torch.addmm, bias, x0, w0, out=pre))
    return [first] + [functools.partial(pre.addmm_, x, w) for x, w in parts[1:]], pre


# -- Triton path ---------------------------------------------------------------------------------------------------

if triton is not None:   # pragma: no cover - GPU only

    @triton.jit
    def _rows_times(xt, wt, DOT: tl.constexpr, IEEE: tl.constexpr):
        """xt (BB, BK) @ wt (N, BK)^T in float32: on the tensor cores with DOT (IEEE float32 for a float32 state),
        else element-wise (xt already float32)."""
        if DOT:
            if IEEE:
                return tl.dot(xt, tl.trans(wt), input_precision="ieee")
            return tl.dot(xt, tl.trans(wt))
        return tl.sum(xt[:, None, :] * wt.to(tl.float32)[None, :, :], axis=2)

    @triton.jit
    def _row_weights(w, k, col, c, ks, jmask, KIND: tl.constexpr):
        """The filter (or only) and the gate rows of W^T (n, k) for output columns ``col``, taps ``ks``; for a
        layer without a gate the second is the first (not loaded twice)."""
        m2 = jmask[:, None] & (ks < k)[None, :]
        wf = tl.load(w + col[:, None] * k + ks[None, :], mask=m2, other=0.0)
        wg = wf
        if KIND == 0:
            wg = tl.load(w + (col + c)[:, None] * k + ks[None, :], mask=m2, other=0.0)
        return wf, wg

    @triton.jit
    def _row_x(x, sx, k, ks, rb, bmask, w, RELU_X: tl.constexpr, DOT: tl.constexpr):
        """x[rb, ks] as the products take it: relu'd with RELU_X, in the dtype of the rows ``w`` for the tensor
        cores, else float32."""
        xt = tl.load(x + rb[:, None] * sx + ks[None, :], mask=bmask[:, None] & (ks < k)[None, :], other=0.0)
        if RELU_X:
            xt = tl.maximum(xt, 0.0)
        # one return: Triton refuses returns of two types (bf16 and float32), even behind a constexpr
        if DOT:
            xt = xt.to(w.dtype)
        else:
            xt = xt.to(tl.float32)
        return xt

    @triton.jit
    def _row_products(acc_f, acc_g, xt, wf, wg, KIND: tl.constexpr, DOT: tl.constexpr, IEEE: tl.constexpr):
        """acc += xt . rows: on the tensor cores with DOT, else element-wise in float32."""
        acc_f += _rows_times(xt, wf, DOT, IEEE)
        if KIND == 0:
            acc_g += _rows_times(xt, wg, DOT, IEEE)
        return acc_f, acc_g

    @triton.jit(do_not_specialize=["sx1", "k1", "sx2", "k2", "c", "batch", "s_ib", "s_ir", "s_ob", "s_or", "s_nb",
                                   "s_rb", "n_ndesc", "n_runs", "n_s_ab", "n_s_ob", "n_c"])
    def _rowdot_kernel(x1, sx1, w1, k1, x2, sx2, w2, k2, bias, ident, out, c, batch, s_ib, s_ir, s_ob, s_or,
                       noise, s_nb, ids, rec, s_rb, count, n_buf, n_desc, n_ndesc, n_runs, n_table, n_src, n_dst,
                       n_s_ab, n_out, n_s_ob, n_c, n_clock, KIND: tl.constexpr, NPART: tl.constexpr,
                       ROWS: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_ID: tl.constexpr, RELU_X: tl.constexpr,
                       BB: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, NK: tl.constexpr, DOT: tl.constexpr,
                       IEEE: tl.constexpr, SAMPLE: tl.constexpr, HAS_NOISE: tl.constexpr, HAS_REC: tl.constexpr,
                       VB: tl.constexpr, NEXT: tl.constexpr, N_K: tl.constexpr, N_LEAKY: tl.constexpr,
                       N_SUMS: tl.constexpr, N_CLOCK: tl.constexpr, N_BLOCK: tl.constexpr, N_IBLOCK: tl.constexpr,
                       N_KB: tl.constexpr, N_RPP: tl.constexpr, PDL: tl.constexpr):
        """A whole layer update: out[b, r, j] = act(x[b] . W^T[col(r, j)] + bias) (+ identity) for the BC output
        columns j of this program and its BB sequences, with the gate's filter and gate columns side by side.

        W^T is (n, k) with k contiguous, so every program streams whole rows of it; no partial sums. With DOT the
        products run on the tensor cores (BB, BK and ROWS * BC at least 16), else element-wise in float32.

        The weights and the bias do not depend on the kernel before (only x and the identity do). When a part's
        rows are one tile (NK = 1: every layer of the paper's piano models at batch 1), they are loaded before
        ``pdl_enter``: launched with programmatic dependent launch, the kernel streams its weights while the one
        before it still runs, and after the wait only reads x, multiplies and stores. Every load after the wait (x
        of both parts, the identity) is issued before the first product: until 2026-12-07 the second part's x and
        the identity were loaded after the first sum over the taps, each a trip to the L2 cache of its own.

        With SAMPLE (a head) each program then counts itself in at its block of sequences' counter, and the last
        to arrive samples the block's next ids from all the logits (``step_kernels.sample_rows``) and sets the
        counter back to zero. The count follows the CUDA memory model's rule for this pattern: a program's threads
        meet at a barrier after their stores, then one counts with release semantics at GPU scope; the last
        program's count acquires, so the logits it reads are the ones written.

        With NEXT (a sampling head) the kernel also runs the next step's start (``step_kernels.start_args``): the
        last program of a block of sequences feeds the ids it sampled to the inputs, and every program copies a
        share of the shifts."""
        q = 2 if KIND == 0 else 1                               # columns per output: (filter, gate) or one
        t = tl.arange(0, ROWS * BC)
        r = t // BC
        j = tl.program_id(0) * BC + t % BC
        jmask = j < c
        col = r * q * c + j                                     # filter (or only) column of output (r, j)
        rb = tl.program_id(1) * BB + tl.arange(0, BB)
        bmask = rb < batch
        acc_f = tl.zeros((BB, ROWS * BC), dtype=tl.float32)
        acc_g = tl.zeros((BB, ROWS * BC), dtype=tl.float32)
        bf = tl.zeros((ROWS * BC,), dtype=tl.float32)          # one bias for all rows (a transposed layer's two)
        bg = bf
        if HAS_BIAS:
            bf = tl.load(bias + j, mask=jmask, other=0.0).to(tl.float32)
            if KIND == 0:
                bg = tl.load(bias + c + j, mask=jmask, other=0.0).to(tl.float32)
        m = bmask[:, None] & jmask[None, :]
        ident_at = ident + rb[:, None] * s_ib + (r * s_ir + j)[None, :]
        idv = acc_f
        if NK == 1:
            ks = tl.arange(0, BK)
            wf1, wg1 = _row_weights(w1, k1, col, c, ks, jmask, KIND)
            wf2, wg2 = wf1, wg1
            if NPART == 2:
                wf2, wg2 = _row_weights(w2, k2, col, c, ks, jmask, KIND)
            pdl_enter(PDL)
            # every load the kernel before it gates, before the first product: a product's sum over the taps
            # meets at a barrier, past which the next load would have waited for a trip to the L2 cache of its own
            xt1 = _row_x(x1, sx1, k1, ks, rb, bmask, wf1, RELU_X, DOT)
            xt2 = xt1
            if NPART == 2:
                xt2 = _row_x(x2, sx2, k2, ks, rb, bmask, wf2, RELU_X, DOT)
            if HAS_ID:
                idv = tl.load(ident_at, mask=m, other=0.0).to(tl.float32)
            acc_f, acc_g = _row_products(acc_f, acc_g, xt1, wf1, wg1, KIND, DOT, IEEE)
            if NPART == 2:
                acc_f, acc_g = _row_products(acc_f, acc_g, xt2, wf2, wg2, KIND, DOT, IEEE)
        else:
            pdl_enter(PDL)
            if HAS_ID:
                idv = tl.load(ident_at, mask=m, other=0.0).to(tl.float32)
            for p in tl.static_range(NPART):
                if p == 0:
                    x, w, sx, k = x1, w1, sx1, k1
                else:
                    x, w, sx, k = x2, w2, sx2, k2
                for it in tl.static_range(NK):                  # unrolled: all loads can be in flight
                    ks = it * BK + tl.arange(0, BK)
                    wf, wg = _row_weights(w, k, col, c, ks, jmask, KIND)
                    xt = _row_x(x, sx, k, ks, rb, bmask, wf, RELU_X, DOT)
                    acc_f, acc_g = _row_products(acc_f, acc_g, xt, wf, wg, KIND, DOT, IEEE)
        if HAS_BIAS:
            acc_f += bf[None, :]
            acc_g += bg[None, :]
        y = activation(acc_f, acc_g, KIND)
        if HAS_ID:
            y += idv
        tl.store(out + rb[:, None] * s_ob + (r * s_or + j)[None, :], y.to(out.dtype.element_ty), mask=m)
        if SAMPLE:
            tl.debug_barrier()          # this program's logits are written before it counts itself in
            arrived = tl.atomic_add(count + tl.program_id(1), 1, sem="acq_rel", scope="gpu")
            if arrived == tl.num_programs(0) - 1:
                idx = sample_rows(out, s_ob, noise, s_nb, ids, rec, s_rb, rb, bmask, c, VB, HAS_NOISE, HAS_REC)
                if NEXT:
                    start_rows(n_table, idx, rb, bmask, n_src, n_dst, n_s_ab, n_out, n_s_ob, n_c, n_clock,
                               tl.program_id(1) == 0, N_K, N_LEAKY, N_SUMS, N_CLOCK, N_IBLOCK, N_KB)
                tl.store(count + tl.program_id(1), 0)
        if NEXT:
            shift_share(n_buf, n_desc, n_ndesc, n_runs, tl.program_id(0) + tl.program_id(1) * tl.num_programs(0),
                        tl.num_programs(0) * tl.num_programs(1), N_RPP, N_BLOCK)


def rowdot_triton(parts, bias: torch.Tensor | None, kind: str, identity: torch.Tensor | None, out: torch.Tensor,
                  relu_x: bool = False, sample: tuple | None = None, count: torch.Tensor | None = None,
                  next_start: tuple | None = None) -> None:   # pragma: no cover - GPU only
    """out (batch, rows, c) = act(sum_p x_p @ wt_p.T + bias) (+ identity) for parts [(x_p, wt_p (n, k_p))]; with
    ``sample`` = (noise or None, ids, record or None), a head's logits (rows 1), then ids = argmax(out + noise)
    (and the record), counted in at ``count`` (int32 zeros, one per block of sequences; zero again after), and
    then the next step's start (``next_start``, the arguments of a ``step_kernels.start_triton`` operation)."""
    batch, rows, c = out.shape
    (x1, w1), (x2, w2) = parts[0], parts[-1]
    for x, w in parts:
        assert x.stride(1) == 1 and w.is_contiguous() and x.shape[0] == batch
    assert out.stride(-1) == 1 and (identity is None or identity.stride(-1) == 1) and len(parts) <= 2
    s_ib = s_ir = 0
    if identity is not None:
        s_ib = identity.stride(0)
        s_ir = identity.stride(1) if identity.shape[1] > 1 else 0
    k_max = max(w.shape[1] for _, w in parts)
    dot = batch > ROWDOT_TILE_MAX_BATCH
    if dot:     # blocks of _DOT_BB sequences, 16 columns a tile (tl.dot's least): the most programs at any batch
        bb, bc, bk = _DOT_BB, 16 // rows, _DOT_BK
    else:       # the whole batch in one element-wise tile of at most 4,096 products a row block
        bc = 1
        while bc < 16 and triton.cdiv(c, 2 * bc) >= ROWDOT_PROGRAMS:
            bc *= 2
        bb = triton.next_power_of_2(batch)
        bk = max(32, min(triton.next_power_of_2(k_max), 4096 // (bb * rows * bc)))
    if sample is not None:
        assert rows == 1 and count is not None and count.numel() >= triton.cdiv(batch, bb)
    grid = (triton.cdiv(c, bc), triton.cdiv(batch, bb))
    _rowdot_kernel[grid](
        x1, x1.stride(0), w1, w1.shape[1], x2, x2.stride(0), w2, w2.shape[1],
        bias if bias is not None else w1, identity if identity is not None else out, out, c, batch,
        s_ib, s_ir, out.stride(0), out.stride(1), count=count if count is not None else out,
        **sample_args(sample, c, out), **start_args(next_start, sample, out, grid[0] * grid[1]), KIND=KINDS[kind],
        NPART=len(parts), ROWS=rows,
        HAS_BIAS=bias is not None, HAS_ID=identity is not None, RELU_X=relu_x, BB=bb, BC=bc, BK=bk,
        NK=triton.cdiv(k_max, bk), DOT=dot, IEEE=w1.dtype == torch.float32, **pdl_options(out.device))
