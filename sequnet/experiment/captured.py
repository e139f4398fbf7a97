"""A whole training step (zero_grad, forward, loss, backward, clipping, Adam) captured once in a CUDA graph.

The language and audio models train on batches of one fixed shape, and at the paper's sizes a step is a few
hundred small kernels: eagerly, the host's launches take longer than the GPU's work (~6 ms per step on an H200
for char-PTB whatever the model, see ``results/bench/training-h200.json``). Replaying one captured graph leaves
only the GPU's work, which is also what makes the Seq-U-Net's smaller cost visible in the time per step.

This follows PyTorch's "whole network capture" recipe: the first ``warmup`` calls run eagerly on a side stream
(real steps on real batches: they initialise the optimizer state and the autograd buffers), the next call
captures the step on static input tensors, and every call from then on copies its batch into those tensors and
replays. What the graph needs:

* Adam with ``capturable=True`` (its step counter lives on the GPU; :func:`make_capturable` converts an existing
  optimizer and its state without changing its numbers);
* a fixed learning rate: it is baked into the graph, so a new :class:`CapturedStep` is made when the rate
  changes (:class:`StepPerRate` keeps the trainer's one across epochs until then);
* gradient clipping without host synchronisation (``clip_grad_norm_`` has none) and autocast without its weight
  cache (``cache_enabled=False``), which graphs do not allow;
* dropout draws from the default CUDA generator, which advances its Philox offset on every replay: each step gets
  fresh masks, though not the masks an eager run would draw.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import torch


def make_capturable(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Switch an Adam-type optimizer to ``capturable=True`` in place: every group's flag, and each parameter's
    ``step`` counter moved to the parameter's device (as float32, what capturable Adam keeps)."""
    for group in optimizer.param_groups:
        if "capturable" not in group:
            raise TypeError(f"{type(optimizer).__name__} has no capturable mode; CUDA-graph training needs Adam(W)")
        group["capturable"] = True
        for p in group["params"]:
            state = optimizer.state.get(p)
            if state and "step" in state:
                state["step"] = state["step"].to(device=p.device, dtype=torch.float32)
    return optimizer


@functools.lru_cache(maxsize=None)
def _side_stream(device: int) -> torch.cuda.Stream:
    """One warm-up stream per GPU for every captured step. cuBLAS keeps a workspace for each stream it has run on
    for the life of the process: a new stream for each warm-up call (three per capture, then one per epoch) added
    192 MiB of live workspaces an epoch, and the 100-epoch char/word runs recorded peaks of ~2.4 GiB instead of
    ~0.5 GiB."""
    return torch.cuda.Stream(device)


class CapturedStep:
    """Calls ``step_fn(*batch)`` (which returns a tuple of tensors), eagerly for the first ``warmup`` calls, then
    through one captured CUDA graph. Every call trains on its own batch; the returned tensors of a replayed step
    are the graph's static outputs, overwritten by the next call (copy what must outlive it)."""

    DEFAULT_WARMUP = 3

    def __init__(self, step_fn: Callable[..., Sequence[torch.Tensor]], warmup: int = DEFAULT_WARMUP):
        if warmup < 1:
            raise ValueError(f"warmup={warmup!r}: the capture needs at least one eager step before it")
        self.step_fn, self.warmup_left = step_fn, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_inputs: list[torch.Tensor] = []
        self.static_outputs: Sequence[torch.Tensor] = ()
        # The allocator's peak just after the capture: the graph's activations are allocated then, once, and a
        # later epoch that replays the same graph allocates nothing, so its own peak would leave them out.
        self.capture_peak_bytes = 0

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, *batch: torch.Tensor) -> Sequence[torch.Tensor]:
        if self.graph is not None:
            if len(batch) != len(self.static_inputs) or any(
                    b.shape != s.shape for b, s in zip(batch, self.static_inputs)):
                raise ValueError(f"a captured training step takes batches of the captured shapes "
                                 f"{[tuple(s.shape) for s in self.static_inputs]}, got "
                                 f"{[tuple(b.shape) for b in batch]}")
            for static, new in zip(self.static_inputs, batch):
                static.copy_(new, non_blocking=True)
            self.graph.replay()
            return self.static_outputs
        if self.warmup_left > 0:
            # Eager warm-up on a side stream, as the recipe asks (lazily made buffers must not land in the graph's
            # stream's history).
            self.warmup_left -= 1
            side, current = _side_stream(torch.cuda.current_device()), torch.cuda.current_stream()
            side.wait_stream(current)
            with torch.cuda.stream(side):
                out = self.step_fn(*batch)
            current.wait_stream(side)
            return out
        self.static_inputs = [b.clone() for b in batch]
        graph = torch.cuda.CUDAGraph()
        # "thread_local": the batches of the next steps are cut and pinned meanwhile in a background thread
        # (sequnet.data.prefetch), and pinning host memory is an API call the default "global" mode forbids to
        # every thread during a capture (the H200 piano run failed so, 2026-12-02: cudaErrorStreamCaptureInvalidated).
        # This thread's own calls are still checked.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.static_outputs = self.step_fn(*self.static_inputs)
        self.graph = graph
        graph.replay()                  # capturing runs nothing: this call's step is the first replay
        self.capture_peak_bytes = torch.cuda.max_memory_allocated()
        return self.static_outputs

    def release(self) -> None:
        """Free the graph and its memory pool now rather than whenever the garbage collector gets to it. Later
        calls capture afresh after the warm-up."""
        if self.graph is not None:
            self.graph.reset()
        self.graph, self.static_inputs, self.static_outputs = None, [], ()


class StepPerRate:
    """The trainer's captured step, kept from one epoch to the next while the learning rate stays the same.

    Made anew each epoch, every epoch paid three eager warm-up steps and a capture: ~1.4 s per 100-step epoch of
    WaveNet on the raw piano audio on an H200 (2026-12-02; 28.5 s epochs of 271 ms steps), the time of some 30
    Seq-U-Net steps. The rate is baked into the graph, so a new rate gets a new capture (after its warm-up)."""

    def __init__(self, make_step: Callable[[], Callable[..., Sequence[torch.Tensor]]]):
        self.make_step = make_step
        self.lr: float | None = None
        self.step: CapturedStep | None = None

    def at(self, lr: float) -> CapturedStep:
        if self.step is None or lr != self.lr:
            self.release()
            self.step, self.lr = CapturedStep(self.make_step()), lr
        return self.step

    def release(self) -> None:
        if self.step is not None:
            self.step.release()
        self.step, self.lr = None, None
