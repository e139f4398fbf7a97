"""The paper's complexity analysis (section 4), analytic and measured.

What the paper counts. A *feature activation* in section 4 is one time position of one layer's output, counted per
feature channel: the paper's totals (``sum_i 4 I / k^i <= 8 I`` for the Seq-U-Net, ``I log_k N`` for WaveNet) are
per-layer output lengths summed over layers, and the channel width is left out because it multiplies every term
alike. Here every model is described by a list of :class:`Layer` (name, output length, output channels), so both
counts are available: :func:`activations` (time positions, the paper's) and :func:`activations` with
``channels=True`` (positions x channels, what memory scales with).

Three layers of evidence, from the closed form to the machine:

* closed forms of the paper's argument, without the valid-convolution shrink (``sizes.*_ideal_activations``), and the
  exact per-layer lengths of our models (``*_layers``, built on :mod:`sequnet.core.sizes`);
* measurements on a model: per-layer output shapes from forward hooks (:func:`layer_shapes`, which must equal the
  analytic lists) and the tensors autograd keeps for the backward pass (:func:`count_saved_activations`);
* the cost of a real training step on a device (:func:`time_training_step`); :mod:`sequnet.analysis.sweeps`
  measures it as the input length and the depth grow (the notebook at small scale on a CPU,
  ``benchmarks/complexity.py`` at paper scale on a GPU), :mod:`sequnet.analysis.benchmarks` reads the committed
  results.

Generation (section 4.2): level i of the Seq-U-Net computes a new sample only every 2^i steps (its clock), so on
average ``sum_{i=1}^{L} 2^-(i-1) < 2`` levels are updated per generated sample (:func:`mean_levels_per_step`), all
L of them in the worst case.

"Levels" L here is always the model's own: ``len(channels)`` for the base Seq-U-Net and ``--levels`` for the
residual one, i.e. L - 1 down/up blocks plus a bottleneck level. The paper's sum runs over i = 0..L with L the
number of blocks; :func:`sequnet.core.sizes.sequnet_ideal_activations` takes the code's L.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn as nn

from sequnet.core import sizes
from sequnet.core.losses import cross_entropy
from sequnet.experiment.captured import CapturedStep
from sequnet.core.models import ResSeqUNet, SeqUNet, TCN, WaveNet

# --------------------------------------------------------------------------------------------------------------
# Analytic: per-layer output lengths of each model

@dataclass(frozen=True)
class Layer:
    name: str           # the module's name inside the model body (what forward hooks see)
    length: int         # time positions of its output
    channels: int       # feature channels of its output


def activations(layers: Iterable[Layer], channels: bool = False) -> int:
    """Sum of output time positions over layers (the paper's count); with ``channels``, positions x channels."""
    return sum(l.length * (l.channels if channels else 1) for l in layers)


def sequnet_layers(input_length: int, channels: tuple[int, ...], k: int, padded: bool = False) -> list[Layer]:
    """Every conv block of a base Seq-U-Net (the 1x1 output conv is a head, not counted), in execution order."""
    L = len(channels)
    if padded:
        lengths = sizes.sequnet_padded_lengths(input_length, L)
    else:
        lengths = sizes.sequnet_valid_lengths(input_length, L, k)
        if lengths is None:
            raise ValueError(f"input length {input_length} is not a valid-mode length for L={L}, k={k}")
    names = [f"down.{i}.conv{j}" for i in range(L - 1) for j in (1, 2)] + ["bottleneck"]
    widths = [channels[i] for i in range(L - 1) for _ in (1, 2)] + [channels[L - 1]]
    for i in reversed(range(L - 1)):
        names += [f"up.{i}.upconv", f"up.{i}.conv"]
        widths += [channels[i + 1], channels[i]]         # the transposed conv keeps the coarser width
    return [Layer(n, l, c) for n, l, c in zip(names, lengths, widths)]


def res_sequnet_layers(input_length: int, levels: int, k: int, depth: int, features: int) -> list[Layer]:
    """The input conv and every gated layer of a residual Seq-U-Net, in execution order."""
    names = ["in_conv"]
    for i in range(levels - 1):
        names += [f"down.{i}.{j}" for j in range(depth + 1)]     # j = depth is the strided layer
    names += [f"bottleneck.{j}" for j in range(depth)]
    for i in reversed(range(levels - 1)):
        names += [f"upconv.{i}"] + [f"up.{i}.{j}" for j in range(depth)]
    lengths = sizes.res_sequnet_activation_counts(input_length, levels, k, depth)
    return [Layer(n, l, features) for n, l in zip(names, lengths)]


def wavenet_layers(input_length: int, blocks: int, layers: int, k: int = 2, channels: int = 128) -> list[Layer]:
    """Every dilated gated layer of a WaveNet; its output is the residual stream (``channels`` wide)."""
    lengths = sizes.wavenet_activation_counts(input_length, blocks, layers, k)
    return [Layer(f"layers.{j}", n, channels) for j, n in enumerate(lengths)]


def tcn_layers(input_length: int, channels: tuple[int, ...]) -> list[Layer]:
    """Both dilated convs of every temporal block; causal padding keeps every one at the input length."""
    return [Layer(f"blocks.{i}.conv{j}", input_length, c) for i, c in enumerate(channels) for j in (1, 2)]


def model_layers(body: nn.Module, input_length: int) -> list[Layer]:
    """The analytic layer list of a model body (unwrap ``TokenModel``/``OneHotModel`` with ``.body`` first)."""
    c = body.config
    if isinstance(body, SeqUNet):
        n = sizes.sequnet_padded_internal_length(input_length, c.levels) if c.padded else input_length
        return sequnet_layers(n, c.channels, c.kernel_size, c.padded)
    if isinstance(body, ResSeqUNet):
        return res_sequnet_layers(input_length, c.levels, c.kernel_size, c.depth, c.features)
    if isinstance(body, WaveNet):
        return wavenet_layers(input_length, c.blocks, c.layers, c.kernel_size, c.residual_channels)
    if isinstance(body, TCN):
        return tcn_layers(input_length, c.channels)
    raise TypeError(f"no layer list for {type(body).__name__}")


# The paper's closed forms of the activation counts (``*_ideal_activations``, ``*_activation_limit``) live in
# sequnet.core.sizes, their one home.


# --------------------------------------------------------------------------------------------------------------
# Analytic: generation (paper section 4.2)

def levels_updated(clock: int, levels: int, k: int = 2) -> int:
    """Levels (0 = finest) that compute a new sample when the generator's clock reads ``clock``: level i works
    when ``clock % k^i == 0`` (official ``forward(mode="step")``; spec section 3.1)."""
    return sum(1 for i in range(levels) if clock % k ** i == 0)


def clock_schedule(steps: int, levels: int, start: int = 1, k: int = 2) -> list[int]:
    """Levels updated at each of ``steps`` generated samples. After the priming forward pass the clock reads 1
    (the context ends on a cycle boundary) and advances modulo k^(L-1) after every step."""
    cycle = k ** (levels - 1)
    return [levels_updated((start + s) % cycle, levels, k) for s in range(steps)]


def mean_levels_per_step(levels: int, k: int = 2) -> float:
    """The paper's sum_{i=1}^{L} k^-(i-1) = (1 - k^-L)/(1 - 1/k) < k/(k-1) = 2: one full period of the clock."""
    return sum(k ** -(i - 1) for i in range(1, levels + 1))


def worst_levels_per_step(levels: int) -> int:
    """At clock 0 (once per period) every level computes."""
    return levels


def res_sequnet_layers_updated(clock: int, levels: int, depth: int, k: int = 2) -> int:
    """Gated layers (plus the input conv) that run a convolution at ``clock``: level i's D down and D up layers
    when level i works, the strided layer into level i+1 and the transposed layer out of it when level i+1 works,
    the D bottleneck layers when the deepest level works. The transposed layer's odd-phase output was computed
    one step earlier and costs nothing."""
    works = [clock % k ** i == 0 for i in range(levels)]
    convs = 1 + depth * works[levels - 1]
    for i in range(levels - 1):
        convs += 2 * depth * works[i] + 2 * works[i + 1]
    return convs


def res_sequnet_mean_layers_per_step(levels: int, depth: int, k: int = 2) -> float:
    """Average of :func:`res_sequnet_layers_updated` over one clock period, in closed form."""
    return 1 + sum(2 * depth / k ** i + 2 / k ** (i + 1) for i in range(levels - 1)) + depth / k ** (levels - 1)


def measured_generation_counts(model: nn.Module, steps: int, seed: int = 0) -> dict:
    """Generate ``steps`` samples with the step-wise generator (``sequnet.core.generation``) and read its counters:
    ``level_counts[i]`` = steps that updated level i, and the mean levels and layers updated per step."""
    from sequnet.core.generation import init_state      # imported here: the analysis above does not need it

    device = next(model.parameters()).device
    torch.manual_seed(seed)
    state = init_state(model.eval(), torch.randint(0, model.classes, (1, 1), device=device))
    state.generate(steps, progress=False)
    return {"steps": state.steps, "level_counts": list(state.level_counts),
            "mean_levels_per_step": state.mean_levels_per_step, "mean_layers_per_step": state.mean_layers_per_step}


# --------------------------------------------------------------------------------------------------------------
# Measured: shapes from forward hooks and the tensors saved for backward

def layer_shapes(body: nn.Module, x: torch.Tensor, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(length, channels) of the output of each named submodule of ``body`` in one forward pass on ``x``.

    A module returning a tuple (a WaveNet layer: residual, skip) is measured on its first element.
    """
    modules = dict(body.named_modules())
    shapes, handles = {}, []

    def hook(name):
        def record(module, args, out):
            out = out[0] if isinstance(out, tuple) else out
            shapes[name] = (out.shape[-1], out.shape[1])
        return record

    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(hook(name)))
        with torch.no_grad():
            body(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


@dataclass(frozen=True)
class SavedActivations:
    elements: int       # elements of the distinct storages autograd keeps for backward (parameters excluded)
    bytes: int
    tensors: int        # distinct storages


def count_saved_activations(module: nn.Module, x: torch.Tensor) -> SavedActivations:
    """What a forward pass of ``module`` on ``x`` keeps alive for the backward pass.

    Every tensor autograd saves passes through a ``saved_tensors_hooks`` pack hook. Several saved tensors are views
    of one buffer (a slice, a chunk, a tensor saved by two ops), so they are deduplicated by storage and each
    storage counts whole: that is the memory really held. Parameters and ``x`` itself are left out, so what
    remains are the activations (and small per-op extras such as dropout masks). Run in training mode.
    """
    skip = {p.untyped_storage().data_ptr() for p in module.parameters()} | {x.untyped_storage().data_ptr()}
    seen: dict[int, tuple[int, int]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr and ptr not in skip and ptr not in seen:
            seen[ptr] = (storage.nbytes(), t.element_size())
        # Detached: the same storage without the grad_fn. Returning ``t`` itself would make a saved output (tanh,
        # sigmoid) hold its own grad_fn, a reference cycle that keeps the whole graph alive until the next
        # garbage collection (gigabytes on a GPU).
        return t.detach()

    # The graph (held by ``out``) keeps every saved storage alive until we return, so pointers cannot be reused.
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(x)
    del out
    return SavedActivations(elements=sum(n // size for n, size in seen.values()),
                            bytes=sum(n for n, _ in seen.values()), tensors=len(seen))


# --------------------------------------------------------------------------------------------------------------
# Measured: time and peak memory of a training step

def training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], bf16: bool = False,
                  compile_: bool | str = False, cuda_graph: bool = False,
                  fused_adam: bool | None = None, compile_loss: bool = False) -> Callable[[], None]:
    """One full training step (forward, loss, backward, Adam step) on a fixed batch, as a closure. With
    ``cuda_graph`` (CUDA only) the step is replayed from one captured graph after three eager ones, as the trainer
    does for fixed-shape batches (:mod:`sequnet.experiment.captured`). ``fused_adam`` (default: on CUDA, as the
    trainer) runs Adam's fused kernel, one launch per step for the whole update. ``compile_``: torch.compile the
    model, a string being its ``mode``; with ``compile_loss`` the model and the loss as one function, so that
    Inductor fuses the logits' cast to float32, the softmax and the loss, forward and backward (uncompiled they
    are separate passes over the logits: 0.75 ms of the compiled piano Seq-U-Net's 25.6 ms step on an H100)."""
    if compile_loss and not compile_:
        raise ValueError("compile_loss compiles the loss with the model: it needs compile_")
    # static shapes: a second model of the same wrapper class would otherwise compile for every shape (slower)
    mode = compile_ if isinstance(compile_, str) else None
    step_model = torch.compile(model, dynamic=False, mode=mode) if compile_ and not compile_loss else model
    fused = x.device.type == "cuda" if fused_adam is None else fused_adam
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, capturable=cuda_graph, fused=fused)
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False)

    def objective(inputs, targets):
        with autocast:
            logits = step_model(inputs)
        return loss_fn(logits.float(), targets)

    if compile_loss:
        objective = torch.compile(objective, dynamic=False, mode=mode)

    def step(*batch):
        opt.zero_grad(set_to_none=True)
        loss = objective(batch[0], batch[1])
        loss.backward()
        opt.step()
        return (loss.detach(),)

    if cuda_graph:
        if x.device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs the batch on a CUDA device, not {x.device}")
        captured = CapturedStep(step)
        return lambda: captured(x, y)
    return lambda: step(x, y)


def time_training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], steps: int = 20,
                       warmup: int = 5, bf16: bool = False, compile_: bool | str = False,
                       cuda_graph: bool = False, fused_adam: bool | None = None, compile_loss: bool = False) -> dict:
    """Median time of a full training step (forward, loss, backward, Adam step) and the allocator's peak.

    The model must already be on ``x``'s device and in training mode. On CUDA the timed region is bracketed by
    ``torch.cuda.synchronize`` (the paper's code did not synchronise), warm-up steps (cudnn autotuning, Adam state
    allocation) are left out, and the peak is ``max_memory_allocated`` over the timed steps: parameters,
    gradients, Adam state, activations and batch, as Table 1 reports it. On a CPU there is no peak (None).
    """
    device = x.device
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()        # the previous measurement's cached blocks, so large shapes still fit
    step = training_step(model, x, y, loss_fn, bf16, compile_, cuda_graph, fused_adam, compile_loss)
    if cuda and cuda_graph:
        # A graph's activations are allocated once, while it is captured (a warm-up step), and then live in its
        # private pool as freed-but-reserved blocks: the peak must include the capture.
        torch.cuda.reset_peak_memory_stats(device)
    # with a graph, the eager steps and the capture are all warm-up
    for _ in range(max(warmup, CapturedStep.DEFAULT_WARMUP + 1) if cuda_graph else warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        if not cuda_graph:
            torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if cuda else None
    return {"time_median_s": statistics.median(times), "time_min_s": min(times), "steps": steps,
            "peak_memory_mib": peak}


@contextlib.contextmanager
def single_cpu_thread(device: torch.device):
    """Time CPU work on one thread. With several threads on a shared CPU every parallel region waits at a barrier
    for whichever thread another process has descheduled: on 2 busy cores, steps of a few ms took 0.2-1 s at
    random. One thread measures the work itself, reproducibly. Does nothing for a GPU."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------------------------
# GPU layout profiling, and the labels of a measurement

def layout_conversions(model: nn.Module, ids: torch.Tensor, target: torch.Tensor) -> list[str]:
    """Names of cuDNN's layout conversion kernels (``nchwToNhwc``, ``nhwcToNchw``) run by one forward and backward
    pass of a next-step model on a GPU, after one pass that lets cuDNN settle its plans. Their number shows whether
    the convolutions get the layout their kernels want (``sequnet.core.models.use_channels_last``)."""
    from torch.profiler import ProfilerActivity, profile

    def step():
        # the trainer's loss, in the logits' own layout and without a slice, whose backward would hand the output
        # convolution a channels-first gradient (benchmarks/training.py's loss_fn)
        cross_entropy(model(ids), target).backward()

    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return [e.name for e in prof.events() if "nchwToNhwc" in e.name or "nhwcToNchw" in e.name]


def run_metadata(device: torch.device) -> dict:
    """Where and when a measurement ran, for labelling it."""
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
