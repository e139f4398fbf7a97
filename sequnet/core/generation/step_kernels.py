"""The kernels of a generation step outside its layers: its start, WaveNet's ring write, and sampling.

At batch 1 a step is a chain of kernels of a few microseconds each, so every kernel counts, and the bookkeeping
around the layers used to be torch kernels. A Seq-U-Net step ran 16 (H200, 2026-12-04,
results/bench/generation-kernels-h200.json counts 14.99 a step, without the copy of each sampled id into the
record of a multi-step graph): one window shift per updated level (two on average), the input layer, 11 layers
(the head included), sampling and that copy. A WaveNet step began with six torch kernels (its clock, the ring
rows, two gathers) and ended with two (the ring write, the copy). Torch kernels also break a chain launched with
programmatic dependent launch (``triton_guard.pdl_options``): a kernel can start early only behind one that lets
it.

Here, for every Triton path, each of those groups is one launch that opens with ``pdl_enter`` (unless
``SEQUNET_STEP_KERNELS=0``, ``triton_guard.use_step_kernels``):

* :func:`sequnet_start_triton`: all the window shifts of a step (every level it updates) and the input layer.
  The shifts write slots 0..k-2 of the windows the step uses and read the other windows; the input layer writes
  the newest slot of the first stream and its own partial sums: no two programs touch the same element, so they
  need no order among themselves. The windows of all levels are views of one buffer (``_Windows.flat``), so a
  shift is a row of a small table of offsets.
* :func:`wavenet_start_triton`: the ring rows from the clock, every layer's x_{t-d} from the ring, x_0 from the
  start table. :func:`wavenet_end_triton`: every layer's x_t into the ring, and the clock advanced (the start
  kernel's programs all read it; only this kernel writes it).
* sampling (:func:`sample_rows`): the argmax of logits plus noise, also written into the record of a multi-step
  graph, at the end of the head's own kernel (``kernels.rowdot_triton``: the last of its programs to finish reads
  all the logits; ``kernels.activate_triton``: one program per sequence), or as a kernel of its own
  (:func:`sample_triton`) for logits of more than ``kernels.HEAD_SAMPLE_MAX_CLASSES`` classes and from the
  logits of a save pass.

For the paper's piano models (``InferenceState.ops_per_step``, which counts the record's copy): a Seq-U-Net step
at batch 1 is 12.0 kernels (from 16.0), all of them Triton, and 23.0 at batch 64 (from 27.0); a WaveNet step 108
(from 115) and 214 (from 221).
"""
from __future__ import annotations

import torch

from sequnet.core.triton_guard import pdl_enter, pdl_options, tl, triton

_COPY_BLOCK = 1024


if triton is not None:   # pragma: no cover - GPU only

    @triton.jit
    def sample_rows(logits, s_lb, noise, s_nb, ids, rec, s_rb, rb, bmask, v, VB: tl.constexpr,
                    HAS_NOISE: tl.constexpr, HAS_REC: tl.constexpr):
        """ids[rb] = argmax(logits[rb, :v] + noise[rb, :v]), also into rec[rb * s_rb]: the sampling of every path,
        here and at the end of a head's kernel (``kernels``), which reads logits other programs wrote: through L2."""
        cols = tl.arange(0, VB)
        m = bmask[:, None] & (cols < v)[None, :]
        x = tl.load(logits + rb[:, None] * s_lb + cols[None, :], mask=m, other=-float("inf"),
                    cache_modifier=".cg").to(tl.float32)
        if HAS_NOISE:
            x += tl.load(noise + rb[:, None] * s_nb + cols[None, :], mask=m, other=0.0).to(tl.float32)
        i = tl.argmax(x, axis=1).to(tl.int64)
        tl.store(ids + rb, i, mask=bmask)
        if HAS_REC:
            tl.store(rec + rb * s_rb, i, mask=bmask)

    @triton.jit(do_not_specialize=["s_lb", "s_nb", "s_rb", "v"])
    def _sample_kernel(logits, s_lb, noise, s_nb, out, rec, s_rb, v, HAS_NOISE: tl.constexpr,
                       HAS_REC: tl.constexpr, BLOCK: tl.constexpr, PDL: tl.constexpr):
        pdl_enter(PDL)
        rb = tl.program_id(0) + tl.arange(0, 1)
        sample_rows(logits, s_lb, noise, s_nb, out, rec, s_rb, rb, rb >= 0, v, BLOCK, HAS_NOISE, HAS_REC)

    @triton.jit(do_not_specialize=["ndesc", "s_ab", "s_ob", "c", "batch", "ncb"])
    def _sequnet_start_kernel(buf, desc, ndesc, table, ids, src, dst, s_ab, out, s_ob, c, batch, ncb,
                              K: tl.constexpr, LEAKY: tl.constexpr, HAS_INPUT: tl.constexpr,
                              BLOCK: tl.constexpr, IBLOCK: tl.constexpr, PDL: tl.constexpr):
        """Program (d, r), d < ndesc: run r of shift d, desc[d] = (source, destination, runs, run length, run
        stride) in elements of ``buf``. Program (ndesc, r): the input layer for sequence r // ncb, channel block
        r % ncb: dst[b, m] = src[b, m + 1] + table[ids[b], m] (m < K; src[b, K] is zero); out[b] = act(dst[b, 0])."""
        pdl_enter(PDL)
        d = tl.program_id(0)
        r = tl.program_id(1)
        if d < ndesc:
            row = desc + d * 5
            runs = tl.load(row + 2)
            if r < runs:
                length = tl.load(row + 3)
                shift = r * tl.load(row + 4)
                s0 = buf + tl.load(row) + shift
                d0 = buf + tl.load(row + 1) + shift
                for o in range(0, length, BLOCK):
                    i = o + tl.arange(0, BLOCK)
                    m = i < length
                    tl.store(d0 + i, tl.load(s0 + i, mask=m), mask=m)
        if HAS_INPUT:
            b = r // ncb
            if (d == ndesc) & (b < batch):
                cols = (r % ncb) * IBLOCK + tl.arange(0, IBLOCK)
                mask = cols < c
                trow = table + tl.load(ids + b) * (K * c)
                for m in tl.static_range(K):
                    v = (tl.load(trow + m * c + cols, mask=mask, other=0.0).to(tl.float32)
                         + tl.load(src + b * s_ab + (m + 1) * c + cols, mask=mask, other=0.0).to(tl.float32))
                    v = v.to(dst.dtype.element_ty)
                    tl.store(dst + b * s_ab + m * c + cols, v, mask=mask)
                    if m == 0:
                        y = v.to(tl.float32)
                        if LEAKY:
                            y = tl.where(y > 0, y, 0.01 * y)
                        tl.store(out + b * s_ob + cols, y.to(out.dtype.element_ty), mask=mask)

    @triton.jit(do_not_specialize=["n", "bc", "c"])
    def _wavenet_start_kernel(ring, old, rows, clock, period, base, table, ids, x0, n, bc, c, BLOCK: tl.constexpr,
                              PDL: tl.constexpr):
        """Program (j, blk), j < n: rows[:, j] = base_j + ((t + 1, t) mod period_j) for the clock t, and block blk of
        old[j] = ring[rows[0, j]]. Program (n, blk): block blk of x0 = table[ids] (x0 flat, (batch, c))."""
        pdl_enter(PDL)
        j = tl.program_id(0)
        i = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        m = i < bc
        if j < n:
            t = tl.load(clock)
            p = tl.load(period + j)
            b0 = tl.load(base + j)
            r_old = b0 + (t + 1) % p
            tl.store(old + j * bc + i, tl.load(ring + r_old * bc + i, mask=m), mask=m)
            if tl.program_id(1) == 0:
                tl.store(rows + j, r_old)
                tl.store(rows + n + j, b0 + t % p)
        else:
            idx = tl.load(ids + i // c, mask=m, other=0)
            tl.store(x0 + i, tl.load(table + idx * c + i % c, mask=m), mask=m)

    @triton.jit(do_not_specialize=["n", "bc"])
    def _wavenet_end_kernel(ring, x, rows, clock, n, bc, BLOCK: tl.constexpr, PDL: tl.constexpr):
        """ring[rows[1, j]] = x[j] (block program_id(1)); program (0, 0) also advances the clock."""
        pdl_enter(PDL)
        j = tl.program_id(0)
        i = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        m = i < bc
        row = tl.load(rows + n + j)
        tl.store(ring + row * bc + i, tl.load(x + j * bc + i, mask=m), mask=m)
        if (j == 0) & (tl.program_id(1) == 0):
            tl.store(clock, tl.load(clock) + 1)

else:
    sample_rows = None


def sample_triton(logits: torch.Tensor, noise: torch.Tensor | None, out: torch.Tensor,
                  record: torch.Tensor | None = None) -> None:   # pragma: no cover - GPU only
    """out = argmax(logits + noise, -1), one program per sequence; also into ``record`` (batch,) when given."""
    batch, v = logits.shape
    _sample_kernel[(batch,)](logits, logits.stride(0), noise if noise is not None else logits,
                             noise.stride(0) if noise is not None else 0, out,
                             record if record is not None else out, record.stride(0) if record is not None else 0,
                             v, HAS_NOISE=noise is not None, HAS_REC=record is not None,
                             BLOCK=triton.next_power_of_2(v), **pdl_options(out.device))


def sample_args(sample: tuple | None, classes: int, dummy: torch.Tensor) -> dict:
    """The sampling arguments of a head's kernel (``kernels.rowdot_triton``, ``kernels.activate_triton``) for
    ``sample`` = (noise or None, ids, record or None) or None (no sampling); ``dummy`` fills unused pointers."""
    noise, ids, record = sample if sample is not None else (None, None, None)
    return dict(noise=dummy if noise is None else noise, s_nb=0 if noise is None else noise.stride(0),
                ids=dummy if ids is None else ids, rec=dummy if record is None else record,
                s_rb=0 if record is None else record.stride(0), SAMPLE=sample is not None,
                HAS_NOISE=noise is not None, HAS_REC=record is not None,
                VB=triton.next_power_of_2(classes) if sample is not None else 16)


def shift_table(rows: list[list[int]], device: torch.device) -> tuple[torch.Tensor, int, int]:
    """The descriptors of :func:`sequnet_start_triton`'s shifts, (source, destination, runs, run length, run
    stride) each, as a device tensor, with the most runs and the longest run (kept on the host for the grid)."""
    table = torch.tensor(rows or [[0] * 5], dtype=torch.int64, device=device)
    return table, max((r[2] for r in rows), default=0), max((r[3] for r in rows), default=0)


def sequnet_start_triton(buf: torch.Tensor, shifts: tuple[torch.Tensor, int, int], ndesc: int,
                         inputs: tuple | None = None) -> None:   # pragma: no cover - GPU only
    """The start of a Seq-U-Net step: the ``ndesc`` shifts of ``shifts`` (:func:`shift_table`) within ``buf``, and,
    with ``inputs`` = (table (classes, k * c), ids (batch,), src, dst (batch, k + 1, c), out (batch, c), leaky),
    the input layer's partial sums: dst[:, m] = src[:, m + 1] + table[ids, m], out = act(dst[:, 0])."""
    desc, runs, longest = shifts
    block = max(16, min(_COPY_BLOCK, triton.next_power_of_2(max(longest, 1))))
    if inputs is None:
        table = ids = src = dst = out = buf
        s_ab = s_ob = c = batch = ncb = 0
        k, leaky, iblock, grid = 1, False, 16, (ndesc, runs)
    else:
        table, ids, src, dst, out, leaky = inputs
        batch, k1, c = src.shape
        assert src.is_contiguous() and dst.is_contiguous() and table.is_contiguous() and out.stride(-1) == 1
        k, s_ab, s_ob = k1 - 1, src.stride(0), out.stride(0)
        iblock = min(256, triton.next_power_of_2(c))
        ncb = triton.cdiv(c, iblock)
        grid = (ndesc + 1, max(runs, batch * ncb))
    _sequnet_start_kernel[grid](buf, desc, ndesc, table, ids, src, dst, s_ab, out, s_ob, c, batch, ncb, K=k,
                                LEAKY=leaky, HAS_INPUT=inputs is not None, BLOCK=block, IBLOCK=iblock,
                                **pdl_options(buf.device))


def wavenet_start_triton(ring: torch.Tensor, old: torch.Tensor, rows: torch.Tensor, clock: torch.Tensor,
                         period: torch.Tensor, base: torch.Tensor, table: torch.Tensor, ids: torch.Tensor,
                         x0: torch.Tensor) -> None:   # pragma: no cover - GPU only
    """The start of a WaveNet step: ``rows`` (2, n) = base + ((t + 1, t) mod period) for the clock t, ``old`` (n,
    batch, C) = ring[rows[0]], ``x0`` (batch, C) = table[ids]."""
    n, batch, c = old.shape
    assert ring.is_contiguous() and old.is_contiguous() and rows.is_contiguous() and x0.is_contiguous()
    block = min(_COPY_BLOCK, triton.next_power_of_2(batch * c))
    _wavenet_start_kernel[(n + 1, triton.cdiv(batch * c, block))](ring, old, rows, clock, period, base, table, ids,
                                                                   x0, n, batch * c, c, BLOCK=block,
                                                                   **pdl_options(ring.device))


def wavenet_end_triton(ring: torch.Tensor, x: torch.Tensor, rows: torch.Tensor,
                       clock: torch.Tensor) -> None:   # pragma: no cover - GPU only
    """The end of a WaveNet step: ring[rows[1]] = x, then the clock advanced by one."""
    n, batch, c = x.shape
    assert ring.is_contiguous() and x.is_contiguous() and rows.is_contiguous()
    block = min(_COPY_BLOCK, triton.next_power_of_2(batch * c))
    _wavenet_end_kernel[(n, triton.cdiv(batch * c, block))](ring, x, rows, clock, n, batch * c, BLOCK=block,
                                                             **pdl_options(ring.device))
