"""Which products make one model's cached steps fastest at one batch size, timed rather than guessed.

``kernels.use_rowdot`` picks one fused kernel per layer up to batch 4 and the split-K GEMV with a separate
activation above, a rule set from batch-1 and batch-64 timings. For another model or batch, ``fastest_kernel``
times each candidate on the caller's own model and prime with CUDA graphs, as the generation that follows runs,
and returns the fastest with every timing, so that the choice can be recorded beside the generated audio.

The candidates compute the same products in float32 with different summation orders, so their samples agree
to rounding, not bit for bit: a state made with the chosen ``kernel`` then behaves exactly like any other
state of that kernel (the GPU tests check every kernel against the model's full forward).
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn

from sequnet.core.generation import init_state, kernels, wavenet_chain
from sequnet.core.models.wavenet import WaveNet
from sequnet.core.triton_guard import triton

CANDIDATES = ("rowdot", "splitk")
# What Triton raises when a kernel's tiles do not fit a GPU's registers or shared memory (at its first launch),
# as a tuple for ``except``: empty without Triton
_ERRORS = getattr(getattr(triton, "runtime", None), "errors", None)
TOO_BIG = (_ERRORS.OutOfResources,) if hasattr(_ERRORS, "OutOfResources") else ()


def fastest_kernel(model: nn.Module, prime: torch.Tensor, steps: int = 512, dtype: torch.dtype | None = None,
                   candidates: tuple[str, ...] = CANDIDATES) -> tuple[str, dict[str, float]]:
    """The fastest of ``candidates`` for cached generation from ``prime`` (batch, T) with ``model``, and the
    steps per second each reached ({kernel: steps/s}; a candidate whose Triton kernel does not fit this GPU's
    registers or shared memory is left out, and so is "chain" (WaveNet's one-launch layers) for another model or
    where it cannot run).

    Each candidate gets a fresh state, ``steps`` sampled steps to compile and capture its graphs, then
    ``steps`` timed steps. Where the candidates cannot run (a CPU model, no Triton, a float64 state, a batch
    above ``kernels.GEMV_MAX_BATCH``), or only one is left, the answer is ("auto", {}) at no cost: the state's
    own rule decides.

    Measured on an H200: at batch 8 rowdot and split-K were within 1 % for WaveNet and split-K was 15 % faster for
    the Seq-U-Net, as the batch rule has it (results/logs/2026-12-02f-h200-kernels-and-suite.tar.xz); at the piano
    run's batch of 28, WaveNet's split-K made 1,543 steps/s and the chain 1,301 (the run timed both,
    results/logs/2026-12-04b-h200-piano-run.tar.xz). The piano run times WaveNet's candidates where its GPU tests
    of the chain pass (``--wavenet-kernels``) and gives the Seq-U-Net the rule."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer (timed steps per candidate), got {steps!r}")
    unknown = [c for c in candidates if c not in (*kernels.KERNELS, "chain")]
    if unknown or not candidates:
        raise ValueError(f"candidates={candidates!r}: expected some of {', '.join(map(repr, kernels.KERNELS))} "
                         f"(and 'chain' for WaveNet)")
    param = next(model.parameters())
    dt = dtype or param.dtype
    body = getattr(model, "body", None)
    if not isinstance(body, WaveNet) or wavenet_chain.chain_problem(param.device, dt, body.config.residual_channels):
        candidates = tuple(c for c in candidates if c != "chain")
    if (param.device.type != "cuda" or not kernels.use_triton(param.device, dt)
            or prime.shape[0] > kernels.GEMV_MAX_BATCH or len(candidates) < 2):
        return "auto", {}
    speed: dict[str, float] = {}
    for kernel in candidates:
        try:
            state = init_state(model, prime, dtype=dtype, kernel=kernel)
            generator = torch.Generator(param.device).manual_seed(0)
            state.generate(steps, temperature=1.0, generator=generator, progress=False, cuda_graphs=True)
            torch.cuda.synchronize(param.device)
            start = time.perf_counter()
            state.generate(steps, temperature=1.0, generator=generator, progress=False, cuda_graphs=True)
            torch.cuda.synchronize(param.device)
            speed[kernel] = steps / (time.perf_counter() - start)
        except TOO_BIG:
            continue
        del state                       # its windows and graph pool, before the next candidate's
    if not speed:
        return "auto", {}
    return max(speed, key=speed.get), speed
