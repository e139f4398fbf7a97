"""Split-K products of cached generation, and the activations every generation kernel applies.

From batch 5 to 64 a layer update ``act(x @ W + bias) (+ identity)`` is split over the rows of W: each program
multiplies a chunk of rows of W by the batch's windows and writes its partial sums, so that about a hundred
programs stream the weights at once (cuBLAS runs a 1 x 900 x 360 product on a few multiprocessors).

``kernel="splitk"``: :func:`matvec_triton` writes the partial sums; a second launch (:func:`activate_triton`, which
also finishes the cuBLAS path's products and samples a head's logits) adds them in split order and applies the
activation. Two launches a layer. Split-K in one launch (the last program
of each block of outputs adding the block's partial sums after an atomic count) was tried and removed: it ran at
about half split-K's speed at every batch, and a second state did not repeat its logits bit for bit (H200,
2026-12-05: results/logs/2026-12-05-h200-pdl-and-splitk1.tar.xz).

The kernel loads its rows of W (two tiles of half a chunk) before ``pdl_enter``: launched with programmatic
dependent launch, a program streams its weights, which no kernel writes, while the kernel before it still runs.

A program's tile, its rows of W and output columns, is chosen per product by :func:`tile_for`'s rule (``TILE =
None``, the default), or fixed for every product by ``TILE`` (``benchmarks/generation.py --splitk-tiles``). One
fixed tile did not suit both piano models: on an H100 at 786c915 (results/bench/generation-splitk-tiles-h100.json,
bf16) 128 x 64 made the Seq-U-Net 12 % faster at batch 64 than 64 x 64 and WaveNet 4 % slower; 32 x 32 made WaveNet
13 % faster and the Seq-U-Net 16 % slower. The Seq-U-Net's 900 x 360 products run 90 programs of 64 x 64, WaveNet's
256 x 256 ones 16. The rule, timed beside the fixed tiles on an H100 at 61c99ab
(results/bench/generation-splitk-rule-h100.json), was faster than 64 x 64 for both models on the tensor cores:
at batch 64 the Seq-U-Net by 11 % and WaveNet by 22 %, at batch 28 by 8 % and 16 %. At batch 8, where the products
run element-wise, its narrow tiles made WaveNet 13 % slower, and every tile of fewer than 64 columns lost for both
models there; so element-wise products choose among 64-column tiles only. Timed as adopted, beside 64 x 64 and
128 x 64 for every product (H100, 2c0e1db: results/bench/generation-splitk-default-h100.json), the rule was the
fastest of the three for both models at batches 8, 28 and 64.
"""
from __future__ import annotations

import os

import torch

from sequnet.core.generation.step_kernels import sample_args, sample_rows, shift_share, start_args, start_rows
from sequnet.core.triton_guard import pdl_enter, pdl_options, tl, triton

KINDS = {"gate": 0, "leaky": 1, "none": 2, "relu": 3}   # the activations, as the kernels' KIND

TILE: tuple[int, int] | None = None   # every product's tile (rows of W, output columns a program); None: the rule
# The rule's tiles on the tensor cores, in the order it prefers them: fewest splits first (each split's partial sums,
# batch x n floats, are written by the product and read by the activation), then the widest columns; it takes the
# first that runs at least MIN_PROGRAMS programs, else the one that runs the most. 48 is the most that still gives
# the Seq-U-Net's main products 128 x 64 (48 programs), its fastest tile at 786c915; WaveNet's then take 32 x 32
# (64 programs), which tied its fastest.
RULE_TILES = ((128, 64), (128, 32), (64, 64), (64, 32), (32, 64), (32, 32))
# The same rule's tiles for products run element-wise (batches of 8 and less): at batch 8 the Seq-U-Net was fastest
# with 128 x 64 and WaveNet with 64 x 64, whose products run too few programs for 128 x 64 (61c99ab, above).
ELEMENTWISE_TILES = ((128, 64), (64, 64))
MIN_PROGRAMS = 48
_ACT_BLOCK = 64                        # columns per program of the activation
# A head samples in its own kernel (``sample=``) up to this many classes (the audio models' 256): the activation
# then holds a sequence's logits in one program.
HEAD_SAMPLE_MAX_CLASSES = 1024


def on_tensor_cores(batch: int) -> bool:
    """Whether the products of a batch run by tl.dot: its rows, padded to a power of 2, fill tl.dot's least 16."""
    return batch > 8


def splits(parts, rows: int) -> int:
    """The chunks of ``rows`` rows of W over the parts [(x_p, w_p (k_p, n))]."""
    return sum(-(-w.shape[0] // rows) for _, w in parts)


def tile_for(parts) -> tuple[int, int]:
    """The tile (rows of W, output columns a program) of the product of ``parts``: ``TILE``, or by the rule."""
    if TILE is not None:
        return TILE
    n = parts[0][1].shape[1]
    tiles = RULE_TILES if on_tensor_cores(parts[0][0].shape[0]) else ELEMENTWISE_TILES
    programs = {t: splits(parts, t[0]) * -(-n // t[1]) for t in tiles}
    return next((t for t in tiles if programs[t] >= MIN_PROGRAMS), max(tiles, key=programs.get))


def partial_sums(parts) -> torch.Tensor:
    """The float32 tensor (splits, batch, n) the split-K products write for parts [(x_p, w_p (k_p, n))]."""
    (x0, w0) = parts[0]
    return torch.zeros(splits(parts, tile_for(parts)[0]), x0.shape[0], w0.shape[1], dtype=torch.float32,
                       device=x0.device)


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
    def _x_tile(x, sx, ks, k, rb, bmask, wt, RELU_X: tl.constexpr):
        """x[rb, ks] for :func:`_times` (relu'd with RELU_X, then in W's dtype)."""
        xt = tl.load(x + rb[:, None] * sx + ks[None, :], mask=bmask[:, None] & (ks < k)[None, :], other=0.0)
        if RELU_X:
            xt = tl.maximum(xt, 0.0).to(wt.dtype)
        return xt

    @triton.jit
    def _times(acc, xt, wt, DOT: tl.constexpr, IEEE: tl.constexpr):
        """acc (BB, len(cols)) += xt @ wt, tiles of :func:`_x_tile` and :func:`_w_tile`."""
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
        # both tiles of x before the first product, whose tile passes a barrier that a later load would wait behind
        xa = _x_tile(x, sx, ka, k, rb, bmask, wa, RELU_X)
        xb = _x_tile(x, sx, kb, k, rb, bmask, wb, RELU_X)
        acc = tl.zeros((BB, BN), dtype=tl.float32)
        acc = _times(acc, xa, wa, DOT, IEEE)
        acc = _times(acc, xb, wb, DOT, IEEE)
        tl.store(part + s * sp_s + rb[:, None] * sp_b + cols[None, :], acc, mask=bmask[:, None] & cmask[None, :])


else:
    activation = None


def _check_parts(parts, batch: int) -> tuple:   # pragma: no cover - GPU only
    (x1, w1), (x2, w2) = parts[0], parts[-1]
    assert len(parts) <= 2, "the split-K products take one or two input parts"
    for x, w in parts:
        assert x.stride(1) == 1 and w.is_contiguous() and w.shape[1] == w1.shape[1] and x.shape[0] == batch
    k2 = w2.shape[0] if len(parts) == 2 else 0
    # the batch's rows padded to a power of 2: on the tensor cores at least tl.dot's 16, else element-wise in float32
    return x1, w1, x2, w2, k2, triton.next_power_of_2(batch), on_tensor_cores(batch)


def matvec_triton(parts, part: torch.Tensor, relu_x: bool = False) -> None:   # pragma: no cover - GPU only
    """part[s, b] = the s-th chunk's share of sum_p x_p @ w_p, for parts [(x_p (batch, k_p), w_p (k_p, n))]."""
    x1, w1, x2, w2, k2, bb, dot = _check_parts(parts, part.shape[1])
    (rows, cols), n = tile_for(parts), w1.shape[1]
    if part.shape[0] != splits(parts, rows):
        raise RuntimeError(f"split-K's partial sums hold {part.shape[0]} splits, but a {rows} x {cols} tile makes "
                           f"{splits(parts, rows)}: set splitk.TILE before the state is built, not after")
    ns1 = triton.cdiv(w1.shape[0], rows)
    grid = (triton.cdiv(n, cols), ns1 + triton.cdiv(k2, rows))
    _matvec_kernel[grid](x1, x1.stride(0), w1, w1.shape[0], ns1, x2, x2.stride(0), w2, k2, n, part,
                         part.stride(0), part.stride(1), part.shape[1], CHUNK=rows, BK=rows // 2, BN=cols, BB=bb,
                         DOT=dot, IEEE=w1.dtype == torch.float32, RELU_X=relu_x, **pdl_options(part.device))


if triton is not None:   # pragma: no cover - GPU only

    @triton.jit
    def _add_split(f, g, p, c, mask, KIND: tl.constexpr):
        """f (and the gate's g) += one split's partial sums at ``p``."""
        f += tl.load(p, mask=mask, other=0.0).to(tl.float32)
        if KIND == 0:
            g += tl.load(p + c, mask=mask, other=0.0).to(tl.float32)
        return f, g

    @triton.jit(do_not_specialize=["nsplit", "c", "s_ps", "s_pb", "s_pr", "s_ib", "s_ir", "s_ob", "s_or", "s_nb",
                                   "s_rb", "n_ndesc", "n_runs", "n_s_ab", "n_s_ob", "n_c"])
    def _activate_kernel(pre, bias, ident, out, nsplit, c, s_ps, s_pb, s_pr, s_ib, s_ir, s_ob, s_or,
                         noise, s_nb, ids, rec, s_rb, n_buf, n_desc, n_ndesc, n_runs, n_table, n_src, n_dst, n_s_ab,
                         n_out, n_s_ob, n_c, n_clock, KIND: tl.constexpr, HAS_BIAS: tl.constexpr,
                         HAS_ID: tl.constexpr, BLOCK: tl.constexpr, SAMPLE: tl.constexpr, HAS_NOISE: tl.constexpr,
                         HAS_REC: tl.constexpr, VB: tl.constexpr, NEXT: tl.constexpr, N_K: tl.constexpr,
                         N_LEAKY: tl.constexpr, N_SUMS: tl.constexpr, N_CLOCK: tl.constexpr, N_BLOCK: tl.constexpr,
                         N_IBLOCK: tl.constexpr, N_KB: tl.constexpr, N_RPP: tl.constexpr, NSPLIT: tl.constexpr,
                         PDL: tl.constexpr):
        """With SAMPLE (a head: one program per sequence, BLOCK >= c) the program then samples the sequence's next
        id from the logits it wrote (``step_kernels.sample_rows``); with NEXT it also runs the next step's start
        (``step_kernels.start_args``): that sequence's inputs, and a share of the shifts.

        With NSPLIT > 0 (``splits_unrolled()``) the loop over the splits is unrolled, so that all their loads are in
        flight at once; with 0, a loop over ``nsplit``, one split's loads after the last one's sum. The sum's order
        is the same either way. The bias, which no kernel writes, is loaded before ``pdl_enter``."""
        b = tl.program_id(0)
        r = tl.program_id(1)
        cols = tl.program_id(2) * BLOCK + tl.arange(0, BLOCK)
        mask = cols < c
        bf = tl.zeros((BLOCK,), dtype=tl.float32)
        bg = tl.zeros((BLOCK,), dtype=tl.float32)
        if HAS_BIAS:
            bf = tl.load(bias + cols, mask=mask, other=0.0).to(tl.float32)
            if KIND == 0:
                bg = tl.load(bias + c + cols, mask=mask, other=0.0).to(tl.float32)
        pdl_enter(PDL)
        # The splits one after another, in their order: a tl.sum over a (splits, BLOCK) tile adds them in an order
        # that follows the tile's layout, so a head's sampling variant (a wider BLOCK) rounded its logits otherwise
        # (H200, 2026-12-05: differences of 1e-8 against the plain activation, results/logs/2026-12-05-h200-suite).
        p = pre + b * s_pb + r * s_pr + cols
        idv = bf
        if HAS_ID:      # with the splits' loads, not after the sums (rowdot's reason, kernels._rowdot_kernel)
            idv = tl.load(ident + b * s_ib + r * s_ir + cols, mask=mask, other=0.0).to(tl.float32)
        f = tl.zeros((BLOCK,), dtype=tl.float32)
        g = tl.zeros((BLOCK,), dtype=tl.float32)
        if NSPLIT > 0:
            for t in tl.static_range(NSPLIT):
                f, g = _add_split(f, g, p + t * s_ps, c, mask, KIND)
        else:
            for t in range(0, nsplit):
                f, g = _add_split(f, g, p + t * s_ps, c, mask, KIND)
        if HAS_BIAS:
            f += bf
            if KIND == 0:
                g += bg
        y = activation(f, g, KIND)
        if HAS_ID:
            y += idv
        tl.store(out + b * s_ob + r * s_or + cols, y.to(out.dtype.element_ty), mask=mask)
        if SAMPLE:
            tl.debug_barrier()          # the logits this program's threads wrote, visible to all of them
            rb = b + tl.arange(0, 1)
            idx = sample_rows(out, s_ob, noise, s_nb, ids, rec, s_rb, rb, rb >= 0, c, VB, HAS_NOISE, HAS_REC)
            if NEXT:
                start_rows(n_table, idx, rb, rb >= 0, n_src, n_dst, n_s_ab, n_out, n_s_ob, n_c, n_clock, b == 0,
                           N_K, N_LEAKY, N_SUMS, N_CLOCK, N_IBLOCK, N_KB)
        if NEXT:
            shift_share(n_buf, n_desc, n_ndesc, n_runs, b, tl.num_programs(0), N_RPP, N_BLOCK)


def splits_unrolled() -> bool:
    """Whether the fused activation unrolls its loop over split-K's partial sums (``_activate_kernel``'s NSPLIT):
    ``SEQUNET_SPLITS_UNROLLED=0`` turns it off, read at each launch (for comparisons)."""
    return os.environ.get("SEQUNET_SPLITS_UNROLLED", "1") != "0"


def activate_triton(kind: str, pre: torch.Tensor, bias: torch.Tensor | None, identity: torch.Tensor | None,
                    out: torch.Tensor, sample: tuple | None = None,
                    next_start: tuple | None = None) -> None:   # pragma: no cover - GPU only
    """out = act(the partial sums of ``pre`` + bias) (+ identity); with ``sample`` and ``next_start`` as for
    :func:`rowdot_triton`, a head's logits, then the next ids sampled from them and the next step's start."""
    batch, rows, c = out.shape
    nsplit, s_ps = (pre.shape[0], pre.stride(0)) if pre.dim() == 4 else (1, 0)
    for t in (pre, out) + ((identity,) if identity is not None else ()):
        assert t.stride(-1) == 1, "the fused activation needs unit stride along channels"
    if bias is not None:
        assert bias.is_contiguous()
    s_ib = s_ir = 0
    if identity is not None:
        s_ib = identity.stride(0)
        s_ir = identity.stride(1) if identity.shape[1] > 1 else 0
    block = min(triton.next_power_of_2(c), _ACT_BLOCK if nsplit > 1 else 1024)
    if sample is not None:      # a sequence's logits in one program
        assert rows == 1 and c <= HEAD_SAMPLE_MAX_CLASSES
        block = triton.next_power_of_2(c)
    grid = (batch, rows, triton.cdiv(c, block))
    _activate_kernel[grid](pre, bias if bias is not None else pre, identity if identity is not None else pre, out,
                           nsplit, c, s_ps, pre.stride(-3), pre.stride(-2), s_ib, s_ir, out.stride(0),
                           out.stride(1), **sample_args(sample, c, out), **start_args(next_start, sample, out, batch),
                           KIND=KINDS[kind],
                           HAS_BIAS=bias is not None, HAS_ID=identity is not None, BLOCK=block,
                           NSPLIT=nsplit if splits_unrolled() else 0, **pdl_options(out.device))
