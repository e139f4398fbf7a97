"""WaveNet's dilated layers of one generation step in one launch: the "chain" kernel (``kernel="chain"``).

On the other paths a WaveNet step launches about four kernels per layer (two products and two activations), 208
for the paper's 52 layers, one after another. At the piano run's batch of 28 that step took 655 us on an H200
(1,522 steps/s, results/logs/2026-12-04-h200-piano-run.tar.xz): the chain of small dependent kernels, not
arithmetic, sets the time (a layer is 80k multiply-adds per sequence).

Here one Triton program per sequence walks the layers in order and keeps the layer input x_j in registers:
reads x_{t-d} from the ring, the gate tanh(f) * sigmoid(g) from both taps, the residual 1x1 into x_{j+1}; it
writes every x_j (the state's ``_x``, which the step then scatters into the ring) and every z_j (``_z``, which
the skip product reads). The skip, end and head products stay on the state's usual path: three products for
the whole step. Each program reads all the layers' weights (5 C x C blocks a layer: 17 MB in float32 for the
paper's piano WaveNet with C = 128), which stay in the GPU's L2 cache between steps, so sequences of a batch
run side by side on separate multiprocessors.

A whole C x C block sits in one program's registers, so C is at most ``CHAIN_MAX_CHANNELS``. The arithmetic is
float32 whatever the state's precision; the state's windows keep its precision.
"""
from __future__ import annotations

import torch

from sequnet.core.generation import kernels
from sequnet.core.triton_guard import tl, triton

CHAIN_MAX_CHANNELS = 128


def chain_problem(device: torch.device, dtype: torch.dtype, channels: int) -> str | None:
    """Why the chain kernel cannot run here (a sentence), or None when it can."""
    if not kernels.use_triton(device, dtype):
        return (f"it is a Triton kernel, which needs a CUDA device, Triton and a float32, bfloat16 or float16 state "
                f"(here: {device.type}, {dtype}, Triton {'off' if triton is not None else 'not installed'})")
    if channels > CHAIN_MAX_CHANNELS:
        return f"it holds a layer's {channels} x {channels} weights in registers, at most {CHAIN_MAX_CHANNELS}"
    return None


def pack_weights(dilated: list[tuple[torch.Tensor, torch.Tensor]], dil_bias: list[torch.Tensor],
                 residual: list[torch.Tensor], dtype: torch.dtype, device: torch.device):
    """The chain's three weight tensors from every layer's (k, n) matrices: the dilated taps (x_{t-d}, x_t) as
    (layers, 2, C, 2C), their biases (layers, 2C), and the residual 1x1 with its bias as the last row,
    (layers, C + 1, C); the last layer's residual output is never read (as officially), so its block is zero."""
    c = dilated[0][0].shape[0]
    wd = torch.stack([torch.stack([w_old, w_now]) for w_old, w_now in dilated])
    wr = torch.zeros(len(dilated), c + 1, c, dtype=torch.float64, device=wd.device)
    for j, w in enumerate(residual):
        wr[j] = w
    cast = lambda t: t.to(device, dtype).contiguous()       # noqa: E731
    return cast(wd), cast(torch.stack(dil_bias)), cast(wr)


def chain_triton(ring: torch.Tensor, rows: torch.Tensor, table: torch.Tensor, ids: torch.Tensor,
                 weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor], x: torch.Tensor,
                 z: torch.Tensor) -> None:   # pragma: no cover - GPU (or TRITON_INTERPRET=1)
    """Every dilated layer of one step for each sequence: ``ring`` (rows, B, C), ``rows`` the ring rows of
    x_{t-d} per layer (layers,), ``table`` the start 1x1 per id (classes, C), ``ids`` (B,); writes ``x``
    (layers, B, C) and the first C columns of ``z`` (B, layers, C + 1)."""
    wd, bd, wr = weights
    n, batch, c = x.shape
    block = triton.next_power_of_2(c)
    _chain_kernel[(batch,)](ring, ring.stride(0), ring.stride(1), rows, table, ids, wd, bd, wr,
                            x, x.stride(0), x.stride(1), z, z.stride(0), z.stride(1), n, c,
                            BC=block, num_warps=8 if block >= 64 else 4)


if triton is not None:   # pragma: no cover - GPU only (or Triton's interpreter)

    @triton.jit(do_not_specialize=["s_rr", "s_rb", "s_xl", "s_xb", "s_zb", "s_zl", "n", "c"])
    def _chain_kernel(ring, s_rr, s_rb, rows, table, ids, wd, bd, wr, x, s_xl, s_xb, z, s_zb, s_zl, n, c,
                      BC: tl.constexpr):
        b = tl.program_id(0)
        k = tl.arange(0, BC)
        km = k < c
        m2 = km[:, None] & km[None, :]
        two_c = 2 * c
        tap = k[:, None] * two_c + k[None, :]                 # (C, 2C) blocks: the filter columns; + c: the gate
        xv = tl.load(table + tl.load(ids + b) * c + k, mask=km, other=0.0).to(tl.float32)
        for j in range(n):
            tl.store(x + j * s_xl + b * s_xb + k, xv.to(x.dtype.element_ty), mask=km)
            old = tl.load(ring + tl.load(rows + j) * s_rr + b * s_rb + k, mask=km, other=0.0).to(tl.float32)
            w_old = wd + j * (2 * c * two_c)
            w_now = w_old + c * two_c
            f = tl.sum(old[:, None] * tl.load(w_old + tap, mask=m2, other=0.0).to(tl.float32), axis=0)
            f += tl.sum(xv[:, None] * tl.load(w_now + tap, mask=m2, other=0.0).to(tl.float32), axis=0)
            g = tl.sum(old[:, None] * tl.load(w_old + c + tap, mask=m2, other=0.0).to(tl.float32), axis=0)
            g += tl.sum(xv[:, None] * tl.load(w_now + c + tap, mask=m2, other=0.0).to(tl.float32), axis=0)
            f += tl.load(bd + j * two_c + k, mask=km, other=0.0).to(tl.float32)
            g += tl.load(bd + j * two_c + c + k, mask=km, other=0.0).to(tl.float32)
            zv = (2.0 * tl.sigmoid(2.0 * f) - 1.0) * tl.sigmoid(g)          # tanh(f) = 2 sigmoid(2f) - 1
            tl.store(z + b * s_zb + j * s_zl + k, zv.to(z.dtype.element_ty), mask=km)
            res = wr + j * (c + 1) * c
            xv += tl.sum(zv[:, None] * tl.load(res + k[:, None] * c + k[None, :], mask=m2, other=0.0).to(tl.float32),
                         axis=0)
            xv += tl.load(res + c * c + k, mask=km, other=0.0).to(tl.float32)
