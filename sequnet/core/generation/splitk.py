"""Split-K products of cached generation, and the activations every generation kernel applies.

From batch 5 to 64 a layer update ``act(x @ W + bias) (+ identity)`` is split over the rows of W: each program
multiplies ``CHUNK`` rows of W by the batch's windows and writes its partial sums, so that about a hundred
programs stream the weights at once (cuBLAS runs a 1 x 900 x 360 product on a few multiprocessors).

* ``kernel="splitk"``: :func:`matvec_triton` writes the partial sums; a second launch
  (``kernels.activate_triton``) adds them in split order and applies the activation. Two launches a layer.
* ``kernel="splitk1"``: :func:`matvec_act_triton`, the same in one launch. A program writes its partial sums of a
  block of outputs (their filter and gate columns together), then counts itself in at the block's counter; the
  last program of the block to arrive adds the block's partial sums in split order, as the second launch would,
  applies the activation and sets the counter back to zero for the next launch (a CUDA graph replays it). At
  batch 64 a step of the Seq-U-Net ran 26 kernels with split-K and WaveNet's 220 (H200, 2026-12-04,
  results/bench/generation-kernels-h200.json), about half of them activations: launches, not arithmetic, set the
  time of a step there. Opt-in (``init_state(..., kernel="splitk1")``) until a GPU has timed it beside split-K.

Both kernels load their rows of W (two tiles of ``BK``) before ``pdl_enter``: launched with programmatic
dependent launch, a program streams its weights, which no kernel writes, while the kernel before it still runs.

The partial sums are written and counted under the CUDA memory model's rules for this pattern (the programs'
threads meet at a barrier before one of them counts with release semantics at GPU scope; the last program
acquires and reads the partial sums from L2), and they are added in a fixed order, so the results do not depend
on which program finishes last.
"""
from __future__ import annotations

import torch

from sequnet.core.triton_guard import pdl_enter, pdl_options, tl, triton

CHUNK, BK, BN = 64, 32, 64          # rows of W per program, rows per iteration, columns per program
KINDS = {"gate": 0, "leaky": 1, "none": 2, "relu": 3}   # the activations, as the kernels' KIND


def partial_sums(parts) -> torch.Tensor:
    """The float32 tensor (splits, batch, n) the split-K products write for parts [(x_p, w_p (k_p, n))]."""
    (x0, w0) = parts[0]
    splits = sum(-(-w.shape[0] // CHUNK) for _, w in parts)
    return torch.zeros(splits, x0.shape[0], w0.shape[1], dtype=torch.float32, device=x0.device)


def _outputs_per_block(kind: str) -> int:
    """Outputs a program of :func:`matvec_act_triton` covers: BN columns, a gate's two per output."""
    return BN // (2 if kind == "gate" else 1)


def scratch(parts, out: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The partial sums and the per-block counters of :func:`matvec_act_triton` for a layer writing ``out``
    (batch, rows, c)."""
    _, rows, c = out.shape
    count = torch.zeros(rows * -(-c // _outputs_per_block(kind)), dtype=torch.int32, device=out.device)
    return partial_sums(parts), count


if triton is not None:   # pragma: no cover - GPU only

    @triton.jit
    def activation(f, g, KIND: tl.constexpr):
        """The activation of a layer's pre-activations: the gate tanh(f) sigmoid(g) (tanh(f) = 2 sigmoid(2f) - 1),
        leaky ReLU, ReLU or none (``KINDS``; ``g`` is read by the gate only)."""
        if KIND == 0:
            y = (2.0 * tl.sigmoid(2.0 * f) - 1.0) * tl.sigmoid(g)
        elif KIND == 1:
            y = tl.where(f > 0, f, 0.01 * f)
        elif KIND == 3:
            y = tl.maximum(f, 0.0)
        else:
            y = f
        return y

    @triton.jit
    def _split(s, ns1, x1, sx1, w1, k1, x2, sx2, w2, k2, CHUNK: tl.constexpr, BK: tl.constexpr):
        """Split s's part and rows: x, its row stride, W, W's rows, and the chunk's two tiles of rows."""
        x, sx, w, k, start = x1, sx1, w1, k1, s * CHUNK
        if s >= ns1:
            x, sx, w, k, start = x2, sx2, w2, k2, (s - ns1) * CHUNK
        ka = start + tl.arange(0, BK)
        return x, sx, w, k, ka, ka + BK

    @triton.jit
    def _w_tile(w, n, ks, k, cols, cmask):
        """Rows ``ks`` of W (k, n), columns ``cols``."""
        return tl.load(w + ks[:, None] * n + cols[None, :], mask=(ks < k)[:, None] & cmask[None, :], other=0.0)

    @triton.jit
    def _times(acc, x, sx, ks, k, rb, bmask, wt, DOT: tl.constexpr, IEEE: tl.constexpr, RELU_X: tl.constexpr):
        """acc (BB, len(cols)) += x[rb, ks] @ wt, a tile of :func:`_w_tile`."""
        xt = tl.load(x + rb[:, None] * sx + ks[None, :], mask=bmask[:, None] & (ks < k)[None, :], other=0.0)
        if RELU_X:
            xt = tl.maximum(xt, 0.0).to(wt.dtype)
        if DOT:
            if IEEE:
                acc += tl.dot(xt.to(wt.dtype), wt, input_precision="ieee")
            else:
                acc += tl.dot(xt.to(wt.dtype), wt)
        else:
            acc += tl.sum(xt.to(tl.float32)[:, :, None] * wt.to(tl.float32)[None, :, :], axis=1)
        return acc

    @triton.jit(do_not_specialize=["sx1", "k1", "ns1", "sx2", "k2", "n", "sp_s", "sp_b", "batch"])
    def _matvec_kernel(x1, sx1, w1, k1, ns1, x2, sx2, w2, k2, n, part, sp_s, sp_b, batch,
                       CHUNK: tl.constexpr, BK: tl.constexpr, BN: tl.constexpr, BB: tl.constexpr,
                       DOT: tl.constexpr, IEEE: tl.constexpr, RELU_X: tl.constexpr, PDL: tl.constexpr):
        """part[s, b, cols] = x[b, rows] @ w[rows, cols] over the s-th chunk of CHUNK rows of the two parts."""
        tl.static_assert(CHUNK == 2 * BK)
        s = tl.program_id(1)
        cols = tl.program_id(0) * BN + tl.arange(0, BN)
        cmask = cols < n
        rb = tl.arange(0, BB)
        bmask = rb < batch
        x, sx, w, k, ka, kb = _split(s, ns1, x1, sx1, w1, k1, x2, sx2, w2, k2, CHUNK, BK)
        wa = _w_tile(w, n, ka, k, cols, cmask)          # the weights before the wait (see the module docstring)
        wb = _w_tile(w, n, kb, k, cols, cmask)
        pdl_enter(PDL)
        acc = tl.zeros((BB, BN), dtype=tl.float32)
        acc = _times(acc, x, sx, ka, k, rb, bmask, wa, DOT, IEEE, RELU_X)
        acc = _times(acc, x, sx, kb, k, rb, bmask, wb, DOT, IEEE, RELU_X)
        tl.store(part + s * sp_s + rb[:, None] * sp_b + cols[None, :], acc, mask=bmask[:, None] & cmask[None, :])

    @triton.jit(do_not_specialize=["sx1", "k1", "ns1", "sx2", "k2", "n", "sp_s", "sp_b", "c", "batch", "nsplit",
                                   "s_ib", "s_ir", "s_ob", "s_or"])
    def _matvec_act_kernel(x1, sx1, w1, k1, ns1, x2, sx2, w2, k2, n, part, sp_s, sp_b, count, bias, ident, out, c,
                           batch, nsplit, s_ib, s_ir, s_ob, s_or, KIND: tl.constexpr, HAS_BIAS: tl.constexpr,
                           HAS_ID: tl.constexpr, RELU_X: tl.constexpr, CHUNK: tl.constexpr, BK: tl.constexpr,
                           BJ: tl.constexpr, BB: tl.constexpr, DOT: tl.constexpr, IEEE: tl.constexpr,
                           PDL: tl.constexpr):
        """out[b, r, j] = act(x[b] @ W[:, col(r, j)] + bias) (+ identity) for the BJ outputs j of block
        program_id(0) (row r of a transposed layer's two), in one launch: see the module docstring."""
        tl.static_assert(CHUNK == 2 * BK)
        blk = tl.program_id(0)
        s = tl.program_id(1)
        nj = tl.cdiv(c, BJ)
        r = blk // nj
        j = (blk % nj) * BJ + tl.arange(0, BJ)
        jmask = j < c
        fcol = r * (2 if KIND == 0 else 1) * c + j                # the filter (or only) column; the gate's is + c
        rb = tl.arange(0, BB)
        bmask = rb < batch
        m = bmask[:, None] & jmask[None, :]
        acc_f = tl.zeros((BB, BJ), dtype=tl.float32)
        acc_g = tl.zeros((BB, BJ), dtype=tl.float32)
        x, sx, w, k, ka, kb = _split(s, ns1, x1, sx1, w1, k1, x2, sx2, w2, k2, CHUNK, BK)
        wfa = _w_tile(w, n, ka, k, fcol, jmask)         # the weights before the wait (see the module docstring)
        wfb = _w_tile(w, n, kb, k, fcol, jmask)
        wga, wgb = wfa, wfb
        if KIND == 0:
            wga = _w_tile(w, n, ka, k, fcol + c, jmask)
            wgb = _w_tile(w, n, kb, k, fcol + c, jmask)
        pdl_enter(PDL)
        acc_f = _times(acc_f, x, sx, ka, k, rb, bmask, wfa, DOT, IEEE, RELU_X)
        acc_f = _times(acc_f, x, sx, kb, k, rb, bmask, wfb, DOT, IEEE, RELU_X)
        pp = part + s * sp_s + rb[:, None] * sp_b
        tl.store(pp + fcol[None, :], acc_f, mask=m)
        if KIND == 0:
            acc_g = _times(acc_g, x, sx, ka, k, rb, bmask, wga, DOT, IEEE, RELU_X)
            acc_g = _times(acc_g, x, sx, kb, k, rb, bmask, wgb, DOT, IEEE, RELU_X)
            tl.store(pp + (fcol + c)[None, :], acc_g, mask=m)
        tl.debug_barrier()             # all of this program's partial sums are written before it counts itself in
        arrived = tl.atomic_add(count + blk, 1, sem="acq_rel", scope="gpu")
        if arrived == nsplit - 1:      # the block's last program: every other one has written and counted
            f = tl.zeros((BB, BJ), dtype=tl.float32)
            g = tl.zeros((BB, BJ), dtype=tl.float32)
            for t in range(0, nsplit):                            # split order, as kernels.activate_triton adds
                pt = part + t * sp_s + rb[:, None] * sp_b
                f += tl.load(pt + fcol[None, :], mask=m, other=0.0, cache_modifier=".cg")     # from L2
                if KIND == 0:
                    g += tl.load(pt + (fcol + c)[None, :], mask=m, other=0.0, cache_modifier=".cg")
            if HAS_BIAS:                                          # one bias for all rows (a transposed layer's)
                f += tl.load(bias + j, mask=jmask, other=0.0).to(tl.float32)[None, :]
                if KIND == 0:
                    g += tl.load(bias + c + j, mask=jmask, other=0.0).to(tl.float32)[None, :]
            y = activation(f, g, KIND)
            if HAS_ID:
                y += tl.load(ident + rb[:, None] * s_ib + (r * s_ir + j)[None, :], mask=m, other=0.0).to(tl.float32)
            tl.store(out + rb[:, None] * s_ob + (r * s_or + j)[None, :], y.to(out.dtype.element_ty), mask=m)
            tl.store(count + blk, 0)                              # ready for the next launch


else:
    activation = None


def _check_parts(parts, batch: int) -> tuple:   # pragma: no cover - GPU only
    (x1, w1), (x2, w2) = parts[0], parts[-1]
    assert len(parts) <= 2, "the split-K products take one or two input parts"
    for x, w in parts:
        assert x.stride(1) == 1 and w.is_contiguous() and w.shape[1] == w1.shape[1] and x.shape[0] == batch
    k2 = w2.shape[0] if len(parts) == 2 else 0
    bb = triton.next_power_of_2(batch)
    dot = bb >= 16              # tl.dot's least tile; below it the products run element-wise in float32
    return x1, w1, x2, w2, k2, triton.cdiv(w1.shape[0], CHUNK), max(bb, 16) if dot else bb, dot


def matvec_triton(parts, part: torch.Tensor, relu_x: bool = False) -> None:   # pragma: no cover - GPU only
    """part[s, b] = the s-th chunk's share of sum_p x_p @ w_p, for parts [(x_p (batch, k_p), w_p (k_p, n))]."""
    x1, w1, x2, w2, k2, ns1, bb, dot = _check_parts(parts, part.shape[1])
    n = w1.shape[1]
    grid = (triton.cdiv(n, BN), ns1 + triton.cdiv(k2, CHUNK))
    _matvec_kernel[grid](x1, x1.stride(0), w1, w1.shape[0], ns1, x2, x2.stride(0), w2, k2, n, part,
                         part.stride(0), part.stride(1), part.shape[1], CHUNK=CHUNK, BK=BK, BN=BN, BB=bb, DOT=dot,
                         IEEE=w1.dtype == torch.float32, RELU_X=relu_x, **pdl_options(part.device))


def matvec_act_triton(parts, part: torch.Tensor, count: torch.Tensor, bias: torch.Tensor | None, kind: str,
                      identity: torch.Tensor | None, out: torch.Tensor,
                      relu_x: bool = False) -> None:   # pragma: no cover - GPU only
    """out (batch, rows, c) = act(sum_p x_p @ w_p + bias) (+ identity) in one launch, with the scratch tensors of
    :func:`scratch` (``count`` all zero between launches)."""
    batch, rows, c = out.shape
    x1, w1, x2, w2, k2, ns1, bb, dot = _check_parts(parts, batch)
    assert out.stride(-1) == 1 and (identity is None or identity.stride(-1) == 1)
    assert bias is None or bias.is_contiguous()
    s_ib = s_ir = 0
    if identity is not None:
        s_ib = identity.stride(0)
        s_ir = identity.stride(1) if identity.shape[1] > 1 else 0
    bj = _outputs_per_block(kind)
    nsplit = ns1 + triton.cdiv(k2, CHUNK)
    grid = (rows * triton.cdiv(c, bj), nsplit)
    assert part.shape[0] == nsplit and count.numel() == grid[0] and count.dtype == torch.int32
    _matvec_act_kernel[grid](x1, x1.stride(0), w1, w1.shape[0], ns1, x2, x2.stride(0), w2, k2, w1.shape[1], part,
                             part.stride(0), part.stride(1), count, bias if bias is not None else part,
                             identity if identity is not None else out, out, c, batch, nsplit, s_ib, s_ir,
                             out.stride(0), out.stride(1), KIND=KINDS[kind], HAS_BIAS=bias is not None,
                             HAS_ID=identity is not None, RELU_X=relu_x, CHUNK=CHUNK, BK=BK, BJ=bj, BB=bb, DOT=dot,
                             IEEE=w1.dtype == torch.float32, **pdl_options(out.device))
