"""The first convolution over integer ids (``layers.input_conv``) in Triton kernels, through a body's
``fused_lookup`` switch (``layers.use_fused_lookup``), which the trainer sets on a GPU.

``input_conv`` computes ``conv(one_hot(ids))`` as one ``embedding_bag`` lookup: output t sums row
``ids[t + j] * k + j`` of a (classes * k, channels) table over the taps j. At the piano models' training shape
(batch 16, 5,000 targets) that lookup took 1.9 ms forward and 2.1 ms backward of a 43.6 ms bf16 step on an H200,
and the float32 result was cast to bf16 in a further pass (torch.profiler, 2026-12-02:
results/logs/2026-12-02b-h200-speed.tar.xz). The bags are all of k rows and the table is small (256 * 5 rows), so

* the forward is a gather: each program sums the k rows of a block of positions in float32, in the taps' order as
  ``embedding_bag`` does, and writes the result once, in the output dtype, channels-last;
* the backward of the table, ``grad[v * k + j] = sum of grad_out[b, t] over the positions with ids[b, t + j] =
  v`` (:func:`table_grad_sorted`), sorts the input positions by id within chunks of ``CHUNK`` consecutive
  positions, so that the positions of one class in one chunk lie together; each program sums, in float32, the
  gradient rows that a run of up to ``_PIECE`` positions of one class feeds to each tap (rows t = s - j for input
  position s and tap j), then adds its k sums to the table's rows atomically, in an order that varies from run to
  run (as cuDNN's weight gradients do; ``REDUCE = "partials"``, and deterministic algorithms, store them for a
  second kernel instead).
  A float32 gradient is summed in float32, with no products to round.
  Every gradient row is read by k positions. Sorted over all positions at once (``chunk=None``, the kernel until
  2026-12-06), those k reads of a row come at unrelated times, each from memory: about k times the gradient's
  226 MB in the piano step's bf16, 2.25 ms of its 31 ms on an H100. Sorted within chunks, the programs running
  at once read the rows of a chunk or two (16,384 positions x 384 bytes), which stay in the L2 cache for the
  other taps' reads; the price is more programs and atomic adds, one piece per class present in a chunk. In the
  compiled bf16 Seq-U-Net step that took the kernel from 2.99 to 1.17 ms and the step from 27.7 to 25.9 ms on an
  H100 (97db1f9, results/bench/piano-step-lookup-chunks-h100.json); alone, on a channels-last gradient, it did not
  help (1.49 -> 1.66 ms, lookup-backward-chunks-h100.json). Compiled, the gradient comes channels-first, so that
  a position's channels lie apart, which the cache then serves.

Two other backwards were timed against it and removed (H100, 2026-12-05, ``benchmarks/piano_step.py``, the
piano Seq-U-Net's compiled bf16 step: results/bench/piano-step-lookup-backward-h100.json): one-hot tiles
multiplied with the gradient on the tensor cores in a Triton kernel (32.31 ms a step; all but one product in 256
is by zero) and cuBLAS batched GEMMs on a one-hot tensor (30.66 ms, 98 MiB more at the peak; the sorted sums
30.76 ms). Uncompiled only the sorted sums beat ``embedding_bag`` (results/bench/piano-step-lookup-eager-h100.json:
the Seq-U-Net 48.36 -> 46.69 ms in bf16 and 69.17 -> 68.27 ms in float32, WaveNet 201.47 -> 200.53 ms in bf16;
the one-hot kernel was 0.46 ms slower than ``embedding_bag``). With the one-hot kernel, the lookup had saved
2.1 ms of the compiled bf16 step on an H200 (31.5 -> 29.4 ms, results/bench/piano-step-compiled-h200.json).

Elsewhere (CPU, float64, no Triton, ``SEQUNET_TRITON=0``) ``input_conv`` keeps ``embedding_bag``.
"""
from __future__ import annotations

import torch

from sequnet.core.triton_guard import tl, triton, use_triton

_BT, _BC = 64, 64              # forward: positions x channels per program
_PIECE = 512                   # backward: at most this many positions of one class per program
# backward: positions per gathered tile, channels per program; warps. At the piano shape on an H100 (2026-12-05,
# benchmarks/lookup_backward.py, results/bench/lookup-backward-h100.json) 16x64 with 8 warps took 1.42 ms, the
# earlier 32x64 with 4 warps 2.38 ms; in the compiled bf16 step the change was within the run-to-run spread.
# A program sums each gathered tile over its positions, one cross-warp reduction a tap. Gathering all taps of a
# position at once into a (positions, taps, channels) accumulator, reduced at the end, was slower at every tile
# and removed (H100, 2026-12-06, results/bench/lookup-backward-ids-h100.json: 1.55 ms at best against 1.43 ms on
# synthetic ids, 1.52 against 1.39 on the piano audio's).
SORT_TILE, SORT_WARPS = (16, 64), 8
# backward: input positions sorted by id together, so that a chunk's gradient rows stay in the L2 cache while its
# pieces run (see above); None sorts all positions at once
CHUNK: int | None = 16384
# backward: how the pieces' sums reach the table. "atomic": each piece adds its k rows atomically (in an order that
# varies from run to run). "partials": each piece writes its k rows to a buffer of its own (pieces, k, channels),
# and a second kernel adds the pieces of each class in a fixed order, so the table's gradient repeats bit for bit
# and no row is added to by two programs at once; in chunks there are about seven pieces for every one sorted
# all at once (10,368 against 1,408 at the piano shape; a 40 MB buffer). They tied on an H100 (497c612,
# results/bench/lookup-backward-reduce-h100.json, piano-step-lookup-reduce-h100.json): alone 1.135 against 1.136 ms
# on the piano audio's ids, channels-first; the compiled bf16 Seq-U-Net step 24.83 and 24.83 ms atomic, 24.83 and
# 24.88 with partials, WaveNet's 93.12 and 93.14. So the atomic adds stay the default, and the partials run where
# torch is asked for deterministic algorithms (torch.use_deterministic_algorithms), as embedding_bag's own
# backward switches to a deterministic kernel there.
REDUCE = "atomic"
REDUCES = ("atomic", "partials")
_QB, _RBC = 32, 16             # the reduction: chunks a tile, channels a program
# On a channels-first gradient (the compiled step's) a position's k taps of a channel are neighbours. Gathering
# them together, one (positions, channels, taps) tile, was slower and removed (H100, 2026-12-06,
# results/bench/lookup-backward-layouts-h100.json: 3.88 ms against 1.13 ms alone on the piano audio's ids; the
# compiled bf16 Seq-U-Net step 27.43 against 25.76 ms, results/bench/piano-step-taps-loss-h100.json).


def fusable(ids: torch.Tensor, table: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether the kernels can run: a CUDA device with Triton, a float32/bf16/fp16 table and output."""
    return use_triton(ids.device, table.dtype) and use_triton(ids.device, dtype)


def lookup(ids: torch.Tensor, table: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
    """(batch, channels, T - k + 1) = sum over the taps j of ``table[ids[:, t + j] * k + j]``, laid out
    channels-last, in ``dtype``; ``ids`` (batch, T) integers, ``table`` (classes * k, channels)."""
    if ids.dim() != 2 or table.dim() != 2 or table.shape[0] % k or ids.shape[1] < k:
        raise ValueError(f"ids {tuple(ids.shape)} and table {tuple(table.shape)}: expected (batch, T >= {k}) ids "
                         f"and a (classes * {k}, channels) table")
    return _Lookup.apply(ids, table, k, dtype)


class _Lookup(torch.autograd.Function):

    @staticmethod
    def forward(ctx, ids, table, k, dtype):
        batch, length = ids.shape
        n = length - k + 1
        rows, c = table.shape
        table = table.contiguous()
        out = torch.empty(batch, n, c, dtype=dtype, device=ids.device)
        _lookup_kernel[(triton.cdiv(n, _BT), triton.cdiv(c, _BC), batch)](
            ids, table, out, n, c, ids.stride(0), ids.stride(1), out.stride(0), K=k, BT=_BT, BC=_BC)
        ctx.save_for_backward(ids)
        ctx.k, ctx.rows, ctx.table_dtype = k, rows, table.dtype
        return out.transpose(1, 2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        if not ctx.needs_input_grad[1]:
            return None, None, None, None
        (ids,) = ctx.saved_tensors
        # CHUNK and REDUCE as now set (benchmarks/piano_step.py switches them); the same bits every run if asked
        reduce = "partials" if torch.are_deterministic_algorithms_enabled() else REDUCE
        grad_table = table_grad_sorted(ids, grad, ctx.k, ctx.rows // ctx.k, chunk=CHUNK, reduce=reduce)
        return None, grad_table.to(ctx.table_dtype), None, None


def table_grad_sorted(ids: torch.Tensor, grad: torch.Tensor, k: int, classes: int, *,
                      tile: tuple[int, int] = SORT_TILE, warps: int = SORT_WARPS,
                      chunk: int | None = CHUNK, reduce: str = REDUCE) -> torch.Tensor:
    """The table's gradient (classes * k, c) in float32 for ``grad`` (batch, c, n) of the lookup's output, summed
    over the input positions grouped by id: row v * k + j adds grad[b, :, s - j] for every input position (b, s)
    with ids[b, s] = v (and 0 <= s - j < n). All on the device, without a host synchronisation (CUDA graphs):
    a stable sort of the positions by (chunk, id) (16-bit keys where they fit: fewer radix passes), each
    segment's run of sorted positions (``searchsorted``), how many pieces of ``_PIECE`` positions it takes, and
    the segment of each piece. ``chunk``: positions sorted together (the flattened positions b * T + s, so a chunk
    may span two rows of the batch; None: all at once), ``tile``: positions gathered at once and channels per
    program (powers of 2) and ``warps`` per program, for ``benchmarks/lookup_backward.py`` to time; ``reduce``:
    how the pieces' sums reach the table (``REDUCES``, see ``REDUCE``)."""
    batch, c, n = grad.shape
    total = ids.numel()
    chunk = total if chunk is None else chunk
    if chunk < 1:
        raise ValueError(f"chunk {chunk}: expected a positive number of positions (or None: all at once)")
    if reduce not in REDUCES:
        raise ValueError(f"reduce {reduce!r}: expected one of {', '.join(REDUCES)}")
    segments = triton.cdiv(total, chunk) * classes
    key_dtype = torch.int16 if segments < 2 ** 15 else torch.int32
    keys = ids.reshape(-1).to(torch.int32)
    if segments > classes:      # segment = chunk * classes + id
        keys = keys + torch.arange(total, dtype=torch.int32, device=ids.device) // chunk * classes
    sorted_keys, order = torch.sort(keys.to(key_dtype), stable=True)
    bounds = torch.searchsorted(sorted_keys, torch.arange(segments + 1, dtype=key_dtype, device=ids.device))
    ends = torch.cumsum((bounds[1:] - bounds[:-1] + _PIECE - 1) // _PIECE, 0)    # segment g's pieces end at ends[g]
    pieces = triton.cdiv(total, _PIECE) + segments                           # at least sum(ceil(count / _PIECE))
    # piece i's segment: how many segments' pieces end at or before it (segments past the last piece)
    segment_of = torch.searchsorted(ends, torch.arange(pieces, device=ids.device), right=True)
    partials = reduce == "partials"
    # every row is written where the pieces' sums are added afterwards (a class without positions sums to zero)
    grad_table = (torch.empty if partials else torch.zeros)(classes * k, c, dtype=torch.float32, device=grad.device)
    # the pieces' own rows, or (unused) the table itself
    target = torch.empty(pieces, k, c, dtype=torch.float32, device=grad.device) if partials else grad_table
    blocks = triton.cdiv(c, tile[1])
    # one axis, the channel blocks of a piece next to each other: they read the same rows, and a second axis would
    # hold at most 65,535 pieces
    _sorted_grad_kernel[(pieces * blocks,)](
        order, bounds, ends, segment_of, grad, target, ids.shape[1], n, c, classes, segments, blocks,
        grad.stride(0), grad.stride(1), grad.stride(2), K=k, KP=triton.next_power_of_2(k), PIECE=_PIECE,
        BT=tile[0], BC=tile[1], PARTIALS=partials, num_warps=warps)
    if partials:
        _add_pieces_kernel[(classes, triton.cdiv(c, _RBC))](
            target, ends, grad_table, c, classes, segments // classes, K=k, KP=triton.next_power_of_2(k), QB=_QB,
            BC=_RBC)
    return grad_table


if triton is not None:   # pragma: no cover - GPU only (and Triton's interpreter: tests/test_kernels_interpreted.py)

    @triton.jit(do_not_specialize=["n", "c", "s_ib", "s_ob"])
    def _lookup_kernel(ids, table, out, n, c, s_ib, s_it, s_ob, K: tl.constexpr, BT: tl.constexpr,
                       BC: tl.constexpr):
        t = tl.program_id(0) * BT + tl.arange(0, BT)
        ch = tl.program_id(1) * BC + tl.arange(0, BC)
        b = tl.program_id(2).to(tl.int64)
        tmask = t < n
        mask = tmask[:, None] & (ch < c)[None, :]
        acc = tl.zeros((BT, BC), dtype=tl.float32)
        for j in tl.static_range(K):
            v = tl.load(ids + b * s_ib + (t + j) * s_it, mask=tmask, other=0)
            acc += tl.load(table + (v * K + j)[:, None] * c + ch[None, :], mask=mask, other=0.0).to(tl.float32)
        tl.store(out + b * s_ob + t[:, None] * c + ch[None, :], acc.to(out.dtype.element_ty), mask=mask)

    @triton.jit(do_not_specialize=["length", "n", "c", "classes", "segments", "blocks", "s_gb"])
    def _sorted_grad_kernel(order, bounds, ends, segment_of, grad, gtable, length, n, c, classes, segments, blocks,
                            s_gb, s_gc, s_gt, K: tl.constexpr, KP: tl.constexpr, PIECE: tl.constexpr,
                            BT: tl.constexpr, BC: tl.constexpr, PARTIALS: tl.constexpr):
        """gtable[v * K + j, ch] += the sum of grad[b, ch, s - j] over this program's piece of the sorted positions
        p = b * length + s of segment g (class v = g % classes): piece i is the (i - ends[g - 1])-th of segment
        g = segment_of[i] (segments past the last piece), one (positions, channels) tile a tap. With PARTIALS,
        ``gtable`` is the pieces' buffer (pieces, K, c) and the sum is stored as piece i's rows instead."""
        i = tl.program_id(0) // blocks
        g = tl.load(segment_of + i).to(tl.int32)
        has = g < segments
        g = tl.minimum(g, segments - 1)
        first_piece = tl.where(g > 0, tl.load(ends + g - 1, mask=g > 0, other=0), 0)
        start = tl.load(bounds + g) + (i - first_piece) * PIECE
        stop = tl.where(has, tl.minimum(start + PIECE, tl.load(bounds + g + 1)), start)
        ch = (tl.program_id(0) % blocks) * BC + tl.arange(0, BC)
        cmask = ch < c
        taps = tl.arange(0, KP)
        rows = tl.where(has, K, 0)            # a program past the last piece adds no row
        v = g % classes
        acc = tl.zeros((KP, BC), dtype=tl.float32)
        for q0 in range(start, stop, BT):
            q = q0 + tl.arange(0, BT)
            p = tl.load(order + q, mask=q < stop, other=0)
            b = p // length
            s = p % length
            for j in tl.static_range(K):
                t = s - j
                ok = (q < stop) & (t >= 0) & (t < n)
                g_rows = tl.load(grad + b[:, None] * s_gb + t[:, None] * s_gt + ch[None, :] * s_gc,
                                 mask=ok[:, None] & cmask[None, :], other=0.0)
                acc += tl.where(taps[:, None] == j, tl.sum(g_rows.to(tl.float32), axis=0)[None, :], 0.0)
        if PARTIALS:
            tl.store(gtable + (i * K + taps)[:, None] * c + ch[None, :], acc,
                     mask=(taps < rows)[:, None] & cmask[None, :])
        else:
            tl.atomic_add(gtable + (v * K + taps)[:, None] * c + ch[None, :], acc,
                          mask=(taps < rows)[:, None] & cmask[None, :])

    @triton.jit(do_not_specialize=["c", "classes", "chunks"])
    def _add_pieces_kernel(part, ends, gtable, c, classes, chunks, K: tl.constexpr, KP: tl.constexpr,
                           QB: tl.constexpr, BC: tl.constexpr):
        """gtable[v * K + j, ch] = the sum of the pieces' rows part[i, j, ch] over the pieces i of class v's
        segments g = q * classes + v, chunk by chunk (QB chunks a tile), in a fixed order."""
        v = tl.program_id(0)
        ch = tl.program_id(1) * BC + tl.arange(0, BC)
        taps = tl.arange(0, KP)
        rows_ok = (taps < K)[None, :, None] & (ch < c)[None, None, :]
        acc = tl.zeros((KP, BC), dtype=tl.float32)
        for q0 in range(0, chunks, QB):
            q = q0 + tl.arange(0, QB)
            g = q * classes + v
            last = tl.load(ends + g, mask=q < chunks, other=0)
            first = tl.load(ends + g - 1, mask=(q < chunks) & (g > 0), other=0)
            count = tl.where(q < chunks, last - first, 0)
            for r in range(0, tl.max(count, axis=0)):
                i = first + r
                tile = tl.load(part + (i * K)[:, None, None] * c + taps[None, :, None] * c + ch[None, None, :],
                               mask=(r < count)[:, None, None] & rows_ok, other=0.0)
                acc += tl.sum(tile, axis=0)
        tl.store(gtable + (v * K + taps)[:, None] * c + ch[None, :], acc, mask=(taps < K)[:, None] & (ch < c)[None, :])
