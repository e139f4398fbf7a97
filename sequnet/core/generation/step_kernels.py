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

* :func:`start_triton`, a step's start: the Seq-U-Net's window shifts (every level the step updates) and input
  layer (:class:`StartInputs`: each new id adds its table row to k running partial sums); WaveNet's x_0 from its
  start table, and its clock advanced. The shifts write slots 0..k-2 of the windows the step uses and read the
  other windows; the input layer writes the newest slot of the first stream and its own partial sums: no two
  programs touch the same element, so they need no order among themselves. The windows of all levels are views of
  one buffer (``_Windows.flat``), so a shift is a row of a small table of offsets.
* :func:`wavenet_end_triton`: every layer's x_t into the ring, and every layer's x_{t+1-d} read from it for the
  next step (the only rows a step reads are written a step or more before, so the read needs no start kernel).
* sampling (:func:`sample_rows`): the argmax of logits plus noise, also written into the record of a multi-step
  graph, at the end of the head's own kernel (``kernels.rowdot_triton``: the last of its programs to finish reads
  all the logits; ``kernels.activate_triton``: one program per sequence), or as a kernel of its own
  (:func:`sample_triton`) for logits of more than ``kernels.HEAD_SAMPLE_MAX_CLASSES`` classes and from the
  logits of a save pass.

The start in the head before it (the default in bf16, ``SEQUNET_START_IN_HEAD=1`` or ``0`` decides;
``triton_guard.start_in_head``). Inside a multi-step graph the next step's start can run in this step's head
kernel: the programs that sampled the ids feed them to the input layer (:func:`input_rows`) and every program
copies a share of the shifts (:func:`shift_share`): one launch fewer for every step of a graph but its first.
Nothing they write is read by the head: the shifts write the windows of the next step's parity and read those
the step just wrote (a level above 0 that the next step updates is not updated by this one), and the input layer
writes the other half of its partial sums. WaveNet's clock is advanced there too, after this step's end kernel
has read it.

For the paper's piano models (``InferenceState.ops_per_step``, which counts the record's copy): a Seq-U-Net step
at batch 1 is 12.0 kernels (from 16.0), all of them Triton, and 23.0 at batch 64 (from 27.0); a WaveNet step 108
(from 115) and 214 (from 221). With the start in the head, 1 - 1/16 fewer each.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from sequnet.core.triton_guard import pdl_enter, pdl_options, tl, triton

_COPY_BLOCK = 1024
_SHARE_TILE = 8192      # elements of a head program's tile of shift runs (shift_share)


@dataclass
class StartInputs:
    """The input part of a step's start, for the ids in ``ids``: v_m = table[ids, m] (+ src[:, m + 1] with partial
    sums) for m < k; out = act(v_0), with the sums dst[:, m] = v_m; with a clock, the clock advanced by one."""
    table: torch.Tensor                     # (classes, k * c)
    ids: torch.Tensor                       # (batch,)
    out: torch.Tensor                       # (batch, c), unit stride along c
    src: torch.Tensor | None = None         # the partial sums before, (batch, k + 1, c) with src[:, k] zero
    dst: torch.Tensor | None = None         # and after, the same shape
    leaky: bool = False                     # act = leaky ReLU (0.01), else none
    clock: torch.Tensor | None = None       # a step counter (0-d, int64)

    @property
    def k(self) -> int:
        return 1 if self.src is None else self.src.shape[1] - 1

    def launch_args(self) -> dict:
        """The kernels' arguments for these inputs (``IBLOCK`` channels a block)."""
        batch, c = self.out.shape
        sums = self.src is not None
        assert self.table.is_contiguous() and self.out.stride(-1) == 1 and self.table.shape[1] == self.k * c
        if sums:
            assert self.src.is_contiguous() and self.dst.is_contiguous() and self.src.shape == self.dst.shape
        return dict(table=self.table, ids=self.ids, src=self.src if sums else self.table,
                    dst=self.dst if sums else self.table, s_ab=self.src.stride(0) if sums else 0, out=self.out,
                    s_ob=self.out.stride(0), c=c, clock=self.clock if self.clock is not None else self.ids,
                    K=self.k, LEAKY=self.leaky, SUMS=sums, CLOCK=self.clock is not None,
                    IBLOCK=min(256, triton.next_power_of_2(c)), KB=triton.next_power_of_2(self.k))


if triton is not None:   # pragma: no cover - GPU only

    @triton.jit
    def sample_rows(logits, s_lb, noise, s_nb, ids, rec, s_rb, rb, bmask, v, VB: tl.constexpr,
                    HAS_NOISE: tl.constexpr, HAS_REC: tl.constexpr):
        """ids[rb] = argmax(logits[rb, :v] + noise[rb, :v]), also into rec[rb * s_rb], and returned: the sampling of
        every path, here and at the end of a head's kernel (``kernels``), which reads logits other programs wrote:
        through L2."""
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
        return i

    @triton.jit(do_not_specialize=["s_lb", "s_nb", "s_rb", "v"])
    def _sample_kernel(logits, s_lb, noise, s_nb, out, rec, s_rb, v, HAS_NOISE: tl.constexpr,
                       HAS_REC: tl.constexpr, BLOCK: tl.constexpr, PDL: tl.constexpr):
        pdl_enter(PDL)
        rb = tl.program_id(0) + tl.arange(0, 1)
        sample_rows(logits, s_lb, noise, s_nb, out, rec, s_rb, rb, rb >= 0, v, BLOCK, HAS_NOISE, HAS_REC)

    @triton.jit
    def copy_runs(buf, desc, d, rs, BLOCK: tl.constexpr):
        """Runs ``rs`` (a vector; those past the shift's count are left alone) of shift d, desc[d] = (source,
        destination, runs, run length, run stride) in elements of ``buf``, as one tile of loads, then one of
        stores."""
        row = desc + d * 5
        src, dst, nr, length, stride = (tl.load(row), tl.load(row + 1), tl.load(row + 2), tl.load(row + 3),
                                        tl.load(row + 4))
        rmask = rs < nr
        for o in range(0, length, BLOCK):
            i = o + tl.arange(0, BLOCK)
            m = rmask[:, None] & (i < length)[None, :]
            at = rs[:, None] * stride + i[None, :]
            tl.store(buf + dst + at, tl.load(buf + src + at, mask=m), mask=m)

    @triton.jit
    def shift_share(buf, desc, ndesc, runs, p, nprog, RPP: tl.constexpr, BLOCK: tl.constexpr):
        """Program p of ``nprog``: runs p, p + nprog, ..., p + (RPP - 1) nprog of each of the ``ndesc`` shifts, as
        one tile (``runs``, the most runs of a shift, is at most RPP nprog). A run after another in a loop waited
        for each one's loads; a program past ``runs`` has no run and reads no descriptor: at batch 1 that is nearly
        every program of a head, whose last to finish samples."""
        if p < runs:
            rs = p + tl.arange(0, RPP) * nprog
            for d in range(0, ndesc):
                copy_runs(buf, desc, d, rs, BLOCK)

    @triton.jit
    def input_rows(table, idx, rb, bmask, src, dst, s_ab, out, s_ob, c, cols, K: tl.constexpr,
                   LEAKY: tl.constexpr, SUMS: tl.constexpr, KB: tl.constexpr):
        """:class:`StartInputs` for sequences ``rb`` with ids ``idx``, channels ``cols``: v_m = table[idx, m] (+
        src[rb, m + 1]) in float32, stored as dst[rb, m] with SUMS; out[rb] = act(v_0 as stored).

        Every load comes before the first store: a store may alias a later load as far as the compiler knows, so
        a loop over m of load, add and store waited for each tap's loads in turn (K trips to the L2 cache, in the
        tail of a head that samples). The taps are one tile (sequences, KB >= K, channels); v_0 is loaded again
        apart, since a row of a tile is not a tensor of its own."""
        m2 = bmask[:, None] & (cols < c)[None, :]
        trow = table + idx[:, None] * (K * c) + cols[None, :]
        v0 = tl.load(trow, mask=m2, other=0.0).to(tl.float32)
        if SUMS:
            ms = tl.arange(0, KB)
            m3 = m2[:, None, :] & (ms < K)[None, :, None]
            taps = ms[None, :, None] * c + cols[None, None, :]
            v = tl.load(trow[:, None, :] + (ms * c)[None, :, None], mask=m3, other=0.0).to(tl.float32)
            srow = src + rb[:, None, None] * s_ab + taps
            v += tl.load(srow + c, mask=m3, other=0.0).to(tl.float32)
            v0 += tl.load(src + rb[:, None] * s_ab + c + cols[None, :], mask=m2, other=0.0).to(tl.float32)
            tl.store(dst + rb[:, None, None] * s_ab + taps, v.to(dst.dtype.element_ty), mask=m3)
            v0 = v0.to(dst.dtype.element_ty).to(tl.float32)
        if LEAKY:
            v0 = tl.where(v0 > 0, v0, 0.01 * v0)
        tl.store(out + rb[:, None] * s_ob + cols[None, :], v0.to(out.dtype.element_ty), mask=m2)

    @triton.jit
    def advance_clock(clock, first, CLOCK: tl.constexpr):
        """With CLOCK, the one program ``first`` of a start advances the clock by one."""
        if CLOCK:
            if first:
                tl.store(clock, tl.load(clock) + 1)

    @triton.jit
    def start_rows(table, idx, rb, bmask, src, dst, s_ab, out, s_ob, c, clock, first, K: tl.constexpr,
                   LEAKY: tl.constexpr, SUMS: tl.constexpr, CLOCK: tl.constexpr, IBLOCK: tl.constexpr,
                   KB: tl.constexpr):
        """:func:`input_rows` over every channel, and :func:`advance_clock`."""
        for c0 in range(0, c, IBLOCK):
            input_rows(table, idx, rb, bmask, src, dst, s_ab, out, s_ob, c, c0 + tl.arange(0, IBLOCK), K, LEAKY,
                       SUMS, KB)
        advance_clock(clock, first, CLOCK)

    @triton.jit(do_not_specialize=["ndesc", "s_ab", "s_ob", "c", "batch", "ncb"])
    def _start_kernel(buf, desc, ndesc, table, ids, src, dst, s_ab, out, s_ob, c, batch, ncb, clock,
                      K: tl.constexpr, LEAKY: tl.constexpr, SUMS: tl.constexpr, CLOCK: tl.constexpr,
                      HAS_INPUT: tl.constexpr, BLOCK: tl.constexpr, IBLOCK: tl.constexpr, KB: tl.constexpr,
                      PDL: tl.constexpr):
        """Program (d, r), d < ndesc: run r of shift d (:func:`copy_runs`). Program (ndesc, r): the inputs of
        sequence r // ncb, channel block r % ncb (:func:`input_rows`); program (ndesc, 0) also advances the clock."""
        pdl_enter(PDL)
        d = tl.program_id(0)
        r = tl.program_id(1)
        if d < ndesc:
            copy_runs(buf, desc, d, r + tl.arange(0, 1), BLOCK)
        if HAS_INPUT:
            b = r // ncb
            if (d == ndesc) & (b < batch):
                rb = b + tl.arange(0, 1)
                cols = (r % ncb) * IBLOCK + tl.arange(0, IBLOCK)
                input_rows(table, tl.load(ids + rb), rb, rb >= 0, src, dst, s_ab, out, s_ob, c, cols, K, LEAKY,
                           SUMS, KB)
                advance_clock(clock, r == 0, CLOCK)

    @triton.jit(do_not_specialize=["n", "bc"])
    def _wavenet_end_kernel(ring, x, old, clock, period, base, n, bc, BLOCK: tl.constexpr, PDL: tl.constexpr):
        """Program (j, blk), block blk of layer j, for the step of time t = clock - 1 (the start advanced it):
        ring[base_j + t mod p_j] = x[j]; then the next step's old[j] = x_{t+1-d_j}, which is ring row
        base_j + (t + 2) mod p_j, another row unless p_j = 2 (d_j = 1): then x[j] itself."""
        pdl_enter(PDL)
        j = tl.program_id(0)
        i = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        m = i < bc
        t = tl.load(clock) - 1
        p = tl.load(period + j)
        b0 = tl.load(base + j)
        xj = tl.load(x + j * bc + i, mask=m)
        if p == 2:
            nxt = xj
        else:   # loaded before the store to row t mod p (another row): a load after it waited for x's
            nxt = tl.load(ring + (b0 + (t + 2) % p) * bc + i, mask=m)
        tl.store(ring + (b0 + t % p) * bc + i, xj, mask=m)
        tl.store(old + j * bc + i, nxt, mask=m)

else:
    sample_rows = shift_share = start_rows = None


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


def _inputs_args(inputs: StartInputs | None, dummy: torch.Tensor) -> dict:
    if inputs is not None:
        return inputs.launch_args()
    return dict(table=dummy, ids=dummy, src=dummy, dst=dummy, s_ab=0, out=dummy, s_ob=0, c=0, clock=dummy, K=1,
                LEAKY=False, SUMS=False, CLOCK=False, IBLOCK=16, KB=1)


def _copy_block(longest: int) -> int:
    return max(16, min(_COPY_BLOCK, triton.next_power_of_2(max(longest, 1))))


def start_args(start: tuple | None, sample: tuple | None, dummy: torch.Tensor, nprog: int) -> dict:
    """The arguments of a head's kernel of ``nprog`` programs that also runs the next step's start, ``start`` = the
    (buf, shifts, ndesc, inputs) of a :func:`start_triton` operation, or none (None). The head must sample the ids
    the inputs read. Each program copies its runs of a shift as one tile (:func:`shift_share`) of at most
    ``_SHARE_TILE`` elements."""
    if start is None:
        buf, (desc, runs, longest), ndesc, inputs = dummy, (dummy, 0, 0), 0, None
    else:
        buf, (desc, runs, longest), ndesc, inputs = start
        assert sample is not None and inputs is not None and inputs.ids is sample[1], \
            "the next step's start reads the ids that this head samples"
    args = {("N_" if k.isupper() else "n_") + k: v for k, v in _inputs_args(inputs, dummy).items() if k != "ids"}
    rpp = triton.next_power_of_2(triton.cdiv(max(runs, 1), nprog))
    block = max(16, min(_copy_block(longest), _SHARE_TILE // rpp))
    return args | dict(n_buf=buf, n_desc=desc, n_ndesc=ndesc, n_runs=runs, N_RPP=rpp, N_BLOCK=block,
                       NEXT=start is not None)


def shift_table(rows: list[list[int]], device: torch.device) -> tuple[torch.Tensor, int, int]:
    """The descriptors of :func:`start_triton`'s shifts, (source, destination, runs, run length, run stride) each,
    as a device tensor, with the most runs and the longest run (kept on the host for the grid)."""
    table = torch.tensor(rows or [[0] * 5], dtype=torch.int64, device=device)
    return table, max((r[2] for r in rows), default=0), max((r[3] for r in rows), default=0)


def start_triton(buf: torch.Tensor, shifts: tuple[torch.Tensor, int, int], ndesc: int,
                 inputs: StartInputs | None = None) -> None:   # pragma: no cover - GPU only
    """A step's start: the ``ndesc`` shifts of ``shifts`` (:func:`shift_table`) within ``buf``, and the
    :class:`StartInputs`, if any."""
    desc, runs, _ = shifts
    grid = (ndesc, runs)
    batch = ncb = 0
    args = _inputs_args(inputs, buf)
    if inputs is not None:
        batch = inputs.out.shape[0]
        ncb = triton.cdiv(args["c"], args["IBLOCK"])
        grid = (ndesc + 1, max(runs, batch * ncb))
    _start_kernel[grid](buf, desc, ndesc, batch=batch, ncb=ncb, HAS_INPUT=inputs is not None,
                        BLOCK=_copy_block(shifts[2]), **args, **pdl_options(buf.device))


def wavenet_end_triton(ring: torch.Tensor, x: torch.Tensor, old: torch.Tensor, clock: torch.Tensor,
                       period: torch.Tensor, base: torch.Tensor) -> None:   # pragma: no cover - GPU only
    """The end of a WaveNet step (the start advanced the clock to t + 1): ring rows of time t = x, and ``old``
    (n, batch, C) = every layer's x_{t+1-d} for the next step."""
    n, batch, c = x.shape
    assert ring.is_contiguous() and x.is_contiguous() and old.is_contiguous()
    block = min(_COPY_BLOCK, triton.next_power_of_2(batch * c))
    _wavenet_end_kernel[(n, triton.cdiv(batch * c, block))](ring, x, old, clock, period, base, n, batch * c,
                                                             BLOCK=block, **pdl_options(ring.device))
