"""One training step and one epoch of them: timing, peak memory, the divergence checks and CUDA graphs; the
torch settings they run under and the name of the device they ran on (for the record).

Time per step is wall-clock time around zero_grad, forward, loss, backward, clipping and the optimizer step, with
``torch.cuda.synchronize()`` on both sides on a GPU (the official code did not synchronise, spec section 6.5);
the first ``warmup_steps`` steps of each process are left out and the median is reported. Peak memory is
``torch.cuda.max_memory_allocated`` over the training steps of an epoch, as in the paper: reset at its start, and
again after the warm-up steps, whose cuDNN autotuning allocates large workspaces (with CUDA graphs, just before the
capture, which allocates the activations the replays reuse; an epoch replaying an earlier epoch's graph adds the
peak of that capture, see ``CapturedStep.capture_peak_bytes``).

With several processes (DDP) the only difference is one sum over the processes per step (the loss and the number
of scored items, :func:`sequnet.experiment.distributed.all_sum`), so that every process checks the same loss.

Loss spikes (:class:`SpikeRule`) are counted from the step losses that the divergence check reads anyway: the loop
already waits for every step (its timing and the official scripts' per-step check), so keeping the float costs
nothing on the GPU, and the rule runs once per epoch on the host.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import platform
import statistics
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from sequnet.experiment import distributed
from sequnet.experiment.captured import CapturedStep
from sequnet.experiment.fast_path import compiler_settings
from sequnet.experiment.scales import RunConfig
from sequnet.experiment.tasks import Task


class Diverged(RuntimeError):
    """The loss became non-finite or exceeded the task's limit; the message says where."""


@dataclasses.dataclass(frozen=True)
class SpikeRule:
    """A training step's loss is a spike when it exceeds ``factor`` times the median of the losses of the
    ``window`` steps before it (fewer at the start of a run, but at least ``min_history``; the window runs on
    across epochs). Losses are the step's mean in nats per scored item. The median is not moved by a few
    earlier spikes, and the factor of 3 is meant to lie well above a healthy run's step-to-step spread: in the
    word-PTB Seq-U-Net's epoch 49 the mean loss rose from 4.16 to 5.88 nats over 1,289 steps, about 2,200 nats
    more, most likely in one step (its record's note), hundreds of times the neighbouring steps' ~4 nats. On the
    CPU at demo scale (the first 1-3 epochs, 2026-12-02) the largest ratio of a step's loss to its window's median
    was 1.47 (JSB), 1.81 (Nottingham), 1.86 (MuseData), 1.43 (Piano-midi), 0.99 and 1.03 (char and word PTB).
    Consecutive spikes count one each; a record also keeps the largest ratio of the run (``count_spikes``)."""
    factor: float = 3.0
    window: int = 100
    min_history: int = 20

    def describe(self) -> str:
        return (f"a training step whose loss exceeds {self.factor:g} x the median of the previous {self.window} "
                f"steps' losses (at least {self.min_history} of them)")

    def judged(self, losses: Sequence[float], previous: Sequence[float] = ()):
        """(index into ``losses``, loss, median of the window before it) for every step of ``losses`` (one
        epoch's, in order, after the ``previous`` steps' losses) that has enough history to be judged."""
        recent = deque(previous[-self.window:], maxlen=self.window)
        for i, loss in enumerate(losses):
            if len(recent) >= self.min_history:
                yield i, loss, statistics.median(recent)
            recent.append(loss)

    def find(self, losses: Sequence[float], previous: Sequence[float] = ()) -> list[tuple[int, float, float]]:
        """The spikes among ``losses``, as :meth:`judged` gives them."""
        return [(i, loss, median) for i, loss, median in self.judged(losses, previous) if loss > self.factor * median]


SPIKES = SpikeRule()
MAX_EVENTS = 100            # spike events kept in a record (its count counts them all)


def count_spikes(summary: dict[str, Any] | None, losses: Sequence[float], previous: Sequence[float], epoch: int,
                 rule: SpikeRule = SPIKES) -> dict[str, Any]:
    """``summary`` (a record's ``loss_spikes``; None starts one) with the spikes of ``epoch``'s step
    ``losses`` added; ``previous`` are the losses of the steps before them (the last ``rule.window`` suffice)."""
    if summary is None:
        summary = {"rule": rule.describe(), **dataclasses.asdict(rule), "steps_checked": 0, "count": 0,
                   "events": [], "largest": None}
    found = []
    for i, loss, median in rule.judged(losses, previous):
        ratio = loss / median if median > 0 else math.inf
        if summary.get("largest") is None or ratio > summary["largest"]["ratio"]:
            summary["largest"] = {"epoch": epoch, "step": i + 1, "ratio": ratio}
        if loss > rule.factor * median:
            found.append((i, loss, median))
    summary["steps_checked"] += len(losses)
    summary["count"] += len(found)
    room = MAX_EVENTS - len(summary["events"])
    summary["events"] += [{"epoch": epoch, "step": i + 1, "loss": loss, "median": median}
                          for i, loss, median in found[:max(room, 0)]]
    return summary


def run_bar(config: RunConfig, done: int, steps: int, show: bool):
    """A run's one progress bar (``tqdm.auto``: a widget in Jupyter, text in a terminal): every training step of
    every epoch, ``done`` of them trained already (a resumed run)."""
    return tqdm(total=config.epochs * steps, initial=done, desc=config.name, unit="step", mininterval=1.0,
                disable=not show, dynamic_ncols=True)


def epoch_summary(config: RunConfig, task: Task, h: dict[str, Any]) -> str:
    """One epoch of a run's history in a line (the bar's postfix, or a log line)."""
    valid = "" if h["valid"] is None else f" valid {h['valid']:.4f}"
    return (f"epoch {h['epoch']:3d}/{config.epochs}: train {h['train']:.4f}{valid} "
            f"{task.unit}  lr {h['lr']:.3g}  {h['epoch_time_s']:.1f} s"
            + ("  *best*" if h["best"] else "") + ("  (lr halved)" if h["lr_halved"] else ""))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"cpu ({model}, {torch.get_num_threads()} threads)"


@contextlib.contextmanager
def torch_settings(config: RunConfig, device: torch.device, task: Task):
    """cuDNN autotuning for fixed shapes, the CPU thread count and, for compiled steps, Inductor's settings
    (:func:`sequnet.experiment.fast_path.compiler_settings`), restored afterwards."""
    benchmark_before, threads_before = torch.backends.cudnn.benchmark, torch.get_num_threads()
    # Fixed shapes profit from cuDNN's autotuner, which the official scripts enabled: the language windows, and the
    # audio models' windows, compiled or not. Each variant timed in a process of its own (H100, 932025f,
    # results/bench/piano-step-autotuner-h100.json), it took the piano steps in bf16 uncompiled from 45.64 to
    # 42.06 ms (Seq-U-Net) and from 200.46 to 169.63 ms (WaveNet), compiled to 26.83 and 94.73 ms (124.54 without
    # it, results/logs/2026-12-06c-*), and the Seq-U-Net's TF32 step uncompiled from 67.46 to 66.06 ms. It costs
    # 10-40 s once a shape (the training window, and the evaluation's last, shorter batch). Music sequences change
    # length every step, where it would re-run all the time.
    torch.backends.cudnn.benchmark = device.type == "cuda" and task.setting.kind in ("token", "audio")
    if device.type == "cpu" and config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    try:
        with compiler_settings(device) if config.compile else contextlib.nullcontext():
            yield
    finally:
        torch.backends.cudnn.benchmark = benchmark_before
        torch.set_num_threads(threads_before)


def step_function(model: nn.Module, optimizer: torch.optim.Optimizer, task: Task, config: RunConfig,
                  device: torch.device) -> Callable[..., tuple[torch.Tensor, int]]:
    """One training step on a batch (zero_grad, forward and loss under the configured autocast, backward,
    clipping, Adam): ``step(*batch) -> (summed loss in nats, scored items)``. Nothing in it waits for the GPU,
    so it can be captured in a CUDA graph (:mod:`sequnet.experiment.captured`)."""
    # autocast's weight cache cannot live across graph replays; the models cast each weight once per step anyway
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16, cache_enabled=False)
    # Compiled for the batches' one shape where they have one: dynamo would otherwise compile a second model of the
    # same wrapper class in one process for every shape (2026-12-03, benchmarks/piano_step.py on an H200: the
    # Seq-U-Net compiled after WaveNet took 397 s instead of 68 s, and its step 34.0 ms instead of 31.4). The
    # weights stay the model's: checkpoints and evaluation use the model itself.
    dynamic = False if task.fixed_shapes else None
    ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    forward = torch.compile(model, dynamic=dynamic) if config.compile and ddp else model

    def loss(*batch):
        with autocast:
            return task.loss(forward, batch)

    if config.compile and not ddp:
        # The model and the loss as one function: Inductor then fuses the logits' cast to float32, the softmax and
        # the loss, forward and backward, which were separate passes over the logits. Each variant alone, the
        # compiled bf16 piano Seq-U-Net's step took 25.04 and 25.07 ms against 25.76 and 25.82 ms with the model
        # alone (H100, 6d3a360, results/bench/piano-step-taps-loss-h100.json). Under DDP the model alone, as DDP's
        # own compiled path (its buckets split the graph) expects the DDP module to be what is compiled.
        loss = torch.compile(loss, dynamic=dynamic)

    def step(*batch):
        optimizer.zero_grad(set_to_none=True)
        objective, batch_total, batch_count = loss(*batch)
        objective.backward()
        if config.clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        return batch_total, batch_count

    return step


def uses_cuda_graphs(config: RunConfig, device: torch.device, task: Task, world: int = 1) -> bool:
    """Whether training steps are replayed from a CUDA graph: asked for, on a GPU, batches of one shape (not the
    music tasks' whole sequences) and one process (DDP's gradient hooks are not captured here)."""
    return config.cuda_graphs and device.type == "cuda" and task.fixed_shapes and world == 1


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, task: Task, batches: Iterable,
                config: RunConfig, device: torch.device, *, steps: int, step_times: list[float],
                warmup_left: int, step_losses: list[float] | None = None, bar=None,
                deadline: float | None = None, cuda_graph: bool = False,
                captured: CapturedStep | None = None) -> tuple[float, int, int]:
    """Train on up to ``steps`` batches, starting none after ``deadline`` (a ``time.perf_counter()`` value);
    return (mean loss in nats per scored item, warm-up steps still to skip, steps done).

    Appends the synchronised duration of every step after the warm-up to ``step_times``, and every step's loss
    (nats per scored item, over all processes) to ``step_losses`` if given; ``bar`` (a tqdm bar, the run's) is
    advanced by one per step. Raises ``Diverged``
    when the loss is not finite or exceeds the task's limit (the official scripts' checks). With ``cuda_graph``
    the steps after the first few replay one captured graph (the optimizer must be capturable, see
    :func:`sequnet.experiment.captured.make_capturable`), freed at the epoch's end; the learning rate must stay
    fixed within the epoch. ``captured`` instead is a caller's captured step of this model at this learning rate,
    kept after the epoch (the trainer's :class:`~sequnet.experiment.captured.StepPerRate`).
    """
    model.train()
    total, count, done = 0.0, 0, 0
    window = 0.0                          # the losses since the last check of task.train_loss_interval
    if captured is not None:
        step_fn, cuda_graph, own = captured, True, False
    else:
        step_fn = step_function(model, optimizer, task, config, device)
        own = cuda_graph
        if cuda_graph:
            step_fn = CapturedStep(step_fn)
    try:
        for step, batch in enumerate(batches, start=1):
            if step > steps or (deadline is not None and time.perf_counter() >= deadline):
                break
            if cuda_graph and not step_fn.captured and step_fn.warmup_left == 0:
                # This step captures the graph, whose pool holds the activations from then on: the peak that
                # matters starts here (the eager steps before it include cuDNN's autotuning in the first epoch).
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            start = time.perf_counter()
            batch_total, batch_count = step_fn(*batch)
            _sync(device)
            elapsed = time.perf_counter() - start
            if warmup_left > 0:
                warmup_left -= 1
                if warmup_left == 0 and device.type == "cuda" and not cuda_graph:
                    # cuDNN's autotuning (benchmark mode) tries algorithms with workspaces of tens of GB in the
                    # first steps; the peak that matters is that of training, as for the time per step.
                    torch.cuda.reset_peak_memory_stats(device)
            else:
                step_times.append(elapsed)
            # Over every process: the divergence check and the epoch's loss then agree on all of them.
            batch_total, batch_count = distributed.all_sum(batch_total, batch_count)
            loss = batch_total.item() / batch_count
            window += loss
            limit, interval = task.train_loss_limit, task.train_loss_interval
            if step_losses is not None:
                step_losses.append(loss)
            if not math.isfinite(loss) or (limit is not None and interval is None and loss > limit):
                raise Diverged(f"training loss {loss:.4g} nats per item at step {step}"
                               + ("" if math.isfinite(loss) else " (not finite)"))
            if interval is not None and step > 1 and (step - 1) % interval == 0:
                # The official word script's log line: the sum since the last one (its first holds one step
                # more) over the interval, at 0-based batch indices interval, 2 interval, ...
                if limit is not None and window / interval > limit:
                    raise Diverged(f"training loss {window / interval:.4g} nats per item, the mean over the "
                                   f"log interval of {interval} steps ending at step {step}")
                window = 0.0
            total += batch_total.item()
            count += batch_count
            done += 1
            if bar is not None:
                bar.update()
    finally:
        if own:
            step_fn.release()
    return total / max(count, 1), warmup_left, done
