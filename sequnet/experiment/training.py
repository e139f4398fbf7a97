"""Training as the paper describes it (section 5.1) and the official scripts do it (spec section 6), in one loop.

Adam at the initial rate of the configuration; optional gradient-norm clipping; after every epoch the model is
evaluated on the validation split, the best weights so far are kept, and the LR rule may halve the rate. There
is no early stopping: every epoch runs, and the final metrics are those of the best-validation weights.

A task without a validation split (raw audio, as the official audio script) has no model selection and no LR
rule: the last weights are the result. A configuration's ``time_budget_s`` ends the run (status "ok") once its
training epochs (steps and batch preparation, not evaluation) have taken that long, in the middle of an epoch if
need be: the audio models are compared at equal wall-clock training time.

The loop is split into pieces a distributed (DDP) version can reuse: :func:`build` makes the model and the
optimizer, :func:`train_epoch` runs one epoch over any iterable of batches, ``Task.evaluate`` evaluates, and
:func:`train` ties them together with checkpoints, the LR rule and the result record.

Checkpoints are plain state dicts (loadable with ``torch.load(weights_only=True)``) written atomically after every
epoch. They hold the model, the optimizer, the best weights, the LR-rule history and every random state (torch,
CUDA, numpy, python and the data-order generator), so that a run resumed from one finishes bit-identical to an
uninterrupted run on the CPU.

Under torchrun (``--nproc N`` on the command line) the same loop trains data-parallel with DDP; what that means
for batches, metrics, randomness and checkpoints is in :mod:`sequnet.experiment.distributed`.

Time per step is wall-clock time around zero_grad, forward, loss, backward, clipping and the optimizer step, with
``torch.cuda.synchronize()`` on both sides on a GPU (the official code did not synchronise, spec section 6.5);
the first ``warmup_steps`` steps of each process are left out and the median is reported. Peak memory is
``torch.cuda.max_memory_allocated`` over the training steps of an epoch, as in the paper: reset at its start, and
again after the warm-up steps, whose cuDNN autotuning allocates large workspaces (with CUDA graphs, just before each
epoch's capture, which allocates the activations the replays reuse).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from sequnet.experiment import distributed
from sequnet.experiment.captured import CapturedStep, make_capturable
from sequnet.core.configs import ARCH_LABELS, baseline_arch, build_model, count_parameters
from sequnet.core.models import use_channels_last, use_fused_gate
from sequnet.core.models.layers import has_switch
from sequnet.experiment.records import PAPER_TABLE1, ResultRecord
from sequnet.experiment.scales import RunConfig, config_from_dict, deviations
from sequnet.experiment.tasks import SPLITS, Task, describe_unit, make_task

CHECKPOINT_FORMAT = 1
# Fields of a run's configuration that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = ("epochs", "device", "warmup_steps", "cpu_threads", "time_budget_s", "cuda_graphs",
                     "fast_kernels")


# --- the LR rule --------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LRRule:
    """Halve the rate after an epoch when ``epoch > after_epoch`` and the validation loss is worse than the max
    of the previous ``patience`` validation losses (``>`` when ``strict``, ``>=`` otherwise). It may fire on
    consecutive epochs; ``patience=None`` keeps the rate constant."""
    patience: int | None
    strict: bool = True
    after_epoch: int = 10

    def should_halve(self, epoch: int, valid_loss: float, previous: Sequence[float]) -> bool:
        if self.patience is None or epoch <= self.after_epoch or not previous:
            return False
        worst = max(previous[-self.patience:])
        return valid_loss > worst if self.strict else valid_loss >= worst


def lr_schedule(rule: LRRule, lr: float, valid_losses: Sequence[float]) -> list[float]:
    """The rate used in each epoch for a given sequence of validation losses (epoch 1 first)."""
    rates = []
    for epoch, loss in enumerate(valid_losses, start=1):
        rates.append(lr)
        if rule.should_halve(epoch, loss, valid_losses[:epoch - 1]):
            lr /= 2
    return rates


# --- state, random generators, checkpoints ------------------------------------------------------------------------

@dataclasses.dataclass
class TrainState:
    """Everything beyond model and optimizer weights that a resumed run needs."""
    lr: float
    epoch: int = 0                                    # completed epochs
    valid_losses: list[float] = dataclasses.field(default_factory=list)
    best_valid: float = math.inf
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    step_times: list[float] = dataclasses.field(default_factory=list)
    peak_memory_mib: float | None = None
    wall_time_s: float = 0.0                          # summed over every call that worked on this run
    train_time_s: float = 0.0                         # time in training epochs: what a time budget counts


class Diverged(RuntimeError):
    """The loss became non-finite or exceeded the task's limit; the message says where."""


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return the generator that orders the training data."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def rng_states(data_order: torch.Generator) -> dict[str, Any]:
    # numpy's state holds an ndarray, which torch.load(weights_only=True) refuses: store it as a tensor.
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
        "data_order": data_order.get_state(),
    }


def set_rng_states(states: dict[str, Any], data_order: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    data_order.set_state(states["data_order"])


def _cpu_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}


def save_checkpoint(path: str | os.PathLike, config: RunConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
                    state: TrainState, data_order: torch.Generator, *, world_size: int = 1,
                    rank_rng: list[dict[str, torch.Tensor]] | None = None) -> Path:
    """Write the checkpoint to a temporary file beside ``path`` and rename it: a crash never leaves half a file.
    ``world_size`` and ``rank_rng`` (every rank's torch random state) describe a data-parallel run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "state": dataclasses.asdict(state),
        "rng": rng_states(data_order),
        "world_size": world_size,
        "rank_rng": rank_rng or [],
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a sequnet training checkpoint of format {CHECKPOINT_FORMAT}")
    return payload


def _check_resumable(saved: dict[str, Any], config: RunConfig, path, saved_world: int = 1, world: int = 1) -> None:
    now = config.to_dict()
    differ = sorted(k for k in now if k not in RESUMABLE_CHANGES + ("batch_size",) and saved.get(k) != now[k])
    details = [f"{k}: checkpoint {saved.get(k)!r}, now {now[k]!r}" for k in differ]
    # The number of processes may change. Stacked batches (language) must keep the effective batch, on which the
    # windows and their order depend; dealt sequences (music, batch 1 per process) do not depend on it.
    rows = not distributed.deals_sequences(config.setting)
    if saved["batch_size"] * (saved_world if rows else 1) != config.batch_size * (world if rows else 1):
        differ.append("batch_size")
        details.append(f"batch_size x processes: checkpoint {saved['batch_size']} x {saved_world}, "
                       f"now {config.batch_size} x {world}")
    if differ:
        raise ValueError(f"cannot resume from {path}: the configuration differs ({'; '.join(details)}). Only "
                         f"{', '.join(RESUMABLE_CHANGES)} and the number of processes may change when resuming.")


# --- one epoch ----------------------------------------------------------------------------------------------------

def build(config: RunConfig, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The model (initialised from ``config.seed``) on ``device`` and its Adam optimizer."""
    torch.manual_seed(config.seed)
    model = build_model(config.setting).to(device)
    if uses_fast_kernels(config, device, model):
        # before the optimizer: the switch moves the convolution weights to the channels-last layout
        use_channels_last(model)
        if has_switch(model, "fused_gate"):
            use_fused_gate(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return model, optimizer


def uses_fast_kernels(config: RunConfig, device: torch.device, model: nn.Module) -> bool:
    """Whether the model runs with channels-last activations (and the fused gate where it has one): asked for, on
    a GPU, and a model with the switch (the audio models). On the CPU the switches buy nothing and the default
    layout keeps float64 checks exact."""
    return config.fast_kernels and device.type == "cuda" and has_switch(model, "channels_last")


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_function(model: nn.Module, optimizer: torch.optim.Optimizer, task: Task, config: RunConfig,
                  device: torch.device) -> Callable[..., tuple[torch.Tensor, int]]:
    """One training step on a batch (zero_grad, forward and loss under the configured autocast, backward,
    clipping, Adam): ``step(*batch) -> (summed loss in nats, scored items)``. Nothing in it waits for the GPU,
    so it can be captured in a CUDA graph (:mod:`sequnet.experiment.captured`)."""
    # autocast's weight cache cannot live across graph replays; the models cast each weight once per step anyway
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16, cache_enabled=False)

    def step(*batch):
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            objective, batch_total, batch_count = task.loss(model, batch)
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
                warmup_left: int, progress: bool = False, desc: str = "",
                deadline: float | None = None, cuda_graph: bool = False) -> tuple[float, int, int]:
    """Train on up to ``steps`` batches, starting none after ``deadline`` (a ``time.perf_counter()`` value);
    return (mean loss in nats per scored item, warm-up steps still to skip, steps done).

    Appends the synchronised duration of every step after the warm-up to ``step_times``. Raises ``Diverged``
    when the loss is not finite or exceeds the task's limit (the official scripts' checks). With ``cuda_graph``
    the steps after the first few replay one captured graph (the optimizer must be capturable, see
    :func:`sequnet.experiment.captured.make_capturable`); the learning rate must stay fixed within the epoch.
    """
    model.train()
    total, count, done = 0.0, 0, 0
    window = 0.0                          # the losses since the last check of task.train_loss_interval
    bar = tqdm(total=steps, desc=desc, leave=False, mininterval=1.0, disable=not progress)
    step_fn = step_function(model, optimizer, task, config, device)
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
            if not math.isfinite(loss) or (limit is not None and interval is None and loss > limit):
                bar.close()
                raise Diverged(f"training loss {loss:.4g} nats per item at step {step}"
                               + ("" if math.isfinite(loss) else " (not finite)"))
            if interval is not None and step > 1 and (step - 1) % interval == 0:
                # The official word script's log line: the sum since the last one (its first holds one step
                # more) over the interval, at 0-based batch indices interval, 2 interval, ...
                if limit is not None and window / interval > limit:
                    bar.close()
                    raise Diverged(f"training loss {window / interval:.4g} nats per item, the mean over the "
                                   f"log interval of {interval} steps ending at step {step}")
                window = 0.0
            total += batch_total.item()
            count += batch_count
            done += 1
            bar.update()
    finally:
        if cuda_graph:
            step_fn.release()
    bar.close()
    return total / max(count, 1), warmup_left, done


# --- a whole run ----------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    record: ResultRecord
    model: nn.Module                     # with the best-validation weights loaded
    best_valid_loss: float               # nats per scored item (what the hyper-parameter search minimises)
    record_path: Path | None = None
    checkpoint_path: Path | None = None


def record_path(out_dir: str | os.PathLike, config: RunConfig) -> Path:
    return Path(out_dir) / "records" / f"{config.name}.json"


def checkpoint_in(folder: str | os.PathLike | None, config: RunConfig) -> Path | None:
    """``<folder>/<task>_<arch>.pt``, where ``sequnet train --out DIR`` keeps its checkpoints (``DIR/checkpoints``),
    or None without a folder. A notebook given that folder resumes (or merely reports) those runs."""
    if folder is None:
        return None
    if not isinstance(folder, (str, os.PathLike)) or not str(folder):
        raise ValueError(f"checkpoints={folder!r}: expected a folder path or None")
    return Path(folder) / f"{config.name}.pt"


@contextlib.contextmanager
def _torch_settings(config: RunConfig, device: torch.device, task: Task):
    """cuDNN autotuning for fixed shapes and the CPU thread count, restored afterwards."""
    benchmark_before, threads_before = torch.backends.cudnn.benchmark, torch.get_num_threads()
    # Fixed shapes (the language windows) profit from cuDNN's autotuner, which the official scripts enabled;
    # music sequences change length every step, where it would re-run all the time. The audio models are left
    # out too: on an H100 autotuning cost them 10-20 s per shape and sped nothing up (benchmarks/training.py),
    # time that their training budget would pay for.
    torch.backends.cudnn.benchmark = device.type == "cuda" and task.setting.kind == "token"
    if device.type == "cpu" and config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = benchmark_before
        torch.set_num_threads(threads_before)


def _resume_path(checkpoint, resume) -> Path | None:
    if resume is True:
        if checkpoint is None:
            raise ValueError("resume=True needs checkpoint=PATH (the file to continue from)")
        return Path(checkpoint) if Path(checkpoint).is_file() else None
    if resume:
        if not Path(resume).is_file():
            raise FileNotFoundError(f"resume={str(resume)!r}: no such checkpoint")
        return Path(resume)
    return None


def _restore(path: Path, config: RunConfig, model, optimizer, data_order, ctx) -> TrainState:
    payload = load_checkpoint(path)
    _check_resumable(payload["config"], config, path, payload.get("world_size", 1), ctx.world)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    set_rng_states(payload["rng"], data_order)
    state = TrainState(**payload["state"])
    distributed.start_rank_rng(ctx, config.seed, payload.get("rank_rng"), state.epoch)
    return state


def _epoch_line(config: RunConfig, task: Task, h: dict[str, Any]) -> str:
    valid = "" if h["valid"] is None else f" valid {h['valid']:.4f}"
    return (f"{config.name} epoch {h['epoch']:3d}/{config.epochs}: train {h['train']:.4f}{valid} "
            f"{task.unit}  lr {h['lr']:.3g}  {h['epoch_time_s']:.1f} s"
            + ("  *best*" if h["best"] else "") + ("  (lr halved)" if h["lr_halved"] else ""))


def train(config: RunConfig, *, out_dir: str | os.PathLike | None = None,
          checkpoint: str | os.PathLike | None = None, resume: bool | str | os.PathLike = False,
          task: Task | None = None, progress: bool = False, log: Callable[[str], None] | None = print,
          stop_after_epoch: int | None = None, time_limit_s: float | None = None,
          final_splits: Sequence[str] = SPLITS, data_root=None, data_mirror=None) -> Run:
    """Train ``config`` and return the run (its record and the best-validation model).

    out_dir: where ``records/<task>_<arch>.json`` is written (nothing is written without it).
    checkpoint: a path written after every epoch (none without it).
    resume: ``True`` continues from ``checkpoint`` if it exists (else starts afresh); a path resumes from it.
    task: an already loaded task (a search reuses one for every trial).
    stop_after_epoch / time_limit_s: stop early, leaving status "interrupted" (the checkpoint lets a later call
        finish the run); the time limit stops before an epoch that would not end within it.
    final_splits: the splits evaluated with the best weights at the end (empty for a search's trials).
    progress: a tqdm bar per epoch; log: where the one-line epoch summaries go (None: nowhere).
    """
    call_start = wall_mark = time.perf_counter()   # wall_mark: wall time not yet added to state.wall_time_s
    ctx = distributed.setup(config.device)         # one process, or this rank of a torchrun job
    device = ctx.device
    if not ctx.is_main:
        log, progress = None, False                # rank 0 speaks for all
    batch = distributed.task_batch_size(config, ctx)
    if task is None:
        task = make_task(config.task, config.setting, batch, root=data_root, mirror=data_mirror)
    elif task.name != config.task or getattr(task, "batch_size", batch) != batch:
        raise ValueError(f"the task given ({task.name}, batch {getattr(task, 'batch_size', 1)}) does not match the "
                         f"configuration ({config.task}, batch {batch})")
    task.to(device)
    data_order = seed_everything(config.seed)
    model, optimizer = build(config, device)
    state = TrainState(lr=config.lr)
    resume_from = _resume_path(checkpoint, resume)
    if resume_from is not None:
        state = _restore(resume_from, config, model, optimizer, data_order, ctx)
        if log:
            log(f"{config.name}: resumed from {resume_from} after epoch {state.epoch}")
    else:
        distributed.start_rank_rng(ctx, config.seed)
    net = distributed.wrap(model, ctx)             # what training steps call; `model` stays the bare module
    cuda_graph = uses_cuda_graphs(config, device, task, ctx.world)
    if cuda_graph:
        make_capturable(optimizer)

    rule = LRRule(config.patience, strict=config.strict_lr_rule)
    steps = distributed.steps_per_epoch(task, ctx)
    if config.max_steps_per_epoch is not None:
        steps = min(steps, config.max_steps_per_epoch)
    warmup_left = config.warmup_steps
    has_valid = "valid" in task.splits
    budget = config.time_budget_s
    status, notes = "ok", []
    last_epoch_s = 0.0
    metrics: dict[str, float | None] = {split: None for split in SPLITS}
    with _torch_settings(config, device, task):
        where = device_name(device)                  # inside: the thread count is the one training uses
        while state.epoch < config.epochs:
            epoch = state.epoch + 1
            if stop_after_epoch is not None and state.epoch >= stop_after_epoch:
                status = "interrupted"
                notes.append(f"stopped after epoch {state.epoch} of {config.epochs} (stop_after_epoch)")
                break
            if time_limit_s is not None and distributed.any_rank(
                    time.perf_counter() - call_start + last_epoch_s > time_limit_s):
                status = "interrupted"
                notes.append(f"stopped after epoch {state.epoch} of {config.epochs}: the next epoch would end "
                             f"after the time limit of {time_limit_s:.0f} s")
                break
            if budget is not None and distributed.any_rank(state.train_time_s >= budget):
                break
            epoch_start = time.perf_counter()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            for group in optimizer.param_groups:
                group["lr"] = state.lr
            n_times = len(state.step_times)
            # Several processes would all have to agree at every step to stop inside an epoch: they check the
            # budget between epochs only.
            deadline = None if budget is None or ctx.world > 1 else epoch_start + budget - state.train_time_s
            try:
                train_loss, warmup_left, done = train_epoch(
                    net, optimizer, task, distributed.shard(task.train_batches(data_order), task, ctx), config,
                    device, steps=steps, step_times=state.step_times, warmup_left=warmup_left, progress=progress,
                    desc=f"{config.name} epoch {epoch}", deadline=deadline, cuda_graph=cuda_graph)
                state.train_time_s += time.perf_counter() - epoch_start
                peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
                valid_loss = (distributed.evaluate(task, model, "valid", config.eval_limit, ctx) if has_valid
                              else None)
                if valid_loss is not None and (not math.isfinite(valid_loss) or valid_loss > task.valid_loss_limit):
                    raise Diverged(f"validation loss {valid_loss:.4g} nats per item")
            except Diverged as e:
                status = "diverged"
                notes.append(f"diverged in epoch {epoch}: {e}")
                if log:
                    log(f"{config.name}: diverged in epoch {epoch}: {e}")
                break
            if peak is not None:
                state.peak_memory_mib = max(state.peak_memory_mib or 0.0, peak)
            is_best = valid_loss is not None and valid_loss < state.best_valid
            if is_best:
                state.best_valid, state.best_epoch = valid_loss, epoch
                state.best_weights = _cpu_copy(model.state_dict())
            halve = has_valid and rule.should_halve(epoch, valid_loss, state.valid_losses)
            epoch_times = state.step_times[n_times:]
            last_epoch_s = time.perf_counter() - epoch_start
            state.history.append({
                "epoch": epoch, "lr": state.lr, "train_loss": train_loss, "valid_loss": valid_loss,
                "train": task.metric(train_loss), "valid": None if valid_loss is None else task.metric(valid_loss),
                "steps": done,
                "step_time_median_s": statistics.median(epoch_times) if epoch_times else None,
                "peak_memory_mib": peak, "epoch_time_s": last_epoch_s, "best": is_best, "lr_halved": halve,
                "world_size": ctx.world, "effective_batch": config.batch_size * ctx.world,
            })
            if budget is not None:         # a budgeted run's progress is its training time (for the curves)
                state.history[-1]["train_time_s"] = state.train_time_s
            if has_valid:
                state.valid_losses.append(valid_loss)
            if halve:
                state.lr /= 2
            state.epoch = epoch
            if checkpoint is not None:
                state.wall_time_s += time.perf_counter() - wall_mark
                wall_mark = time.perf_counter()
                rank_rng = distributed.rank_rng_states(ctx)      # every rank takes part; rank 0 writes
                if ctx.is_main:
                    save_checkpoint(checkpoint, config, model, optimizer, state, data_order, world_size=ctx.world,
                                    rank_rng=rank_rng)
            if log:
                log(_epoch_line(config, task, state.history[-1]))

        if state.best_weights is not None:
            model.load_state_dict(state.best_weights)
            # The validation loss of the best weights is known; train and test are evaluated with them now.
            metrics["valid"] = task.metric(state.best_valid)
        # Without a validation split the weights after the last epoch are the result.
        finished = state.best_weights is not None or (not has_valid and state.epoch > 0)
        if finished and status == "ok":
            for split in final_splits:
                if split != "valid" and split in task.splits:
                    metrics[split] = task.metric(distributed.evaluate(task, model, split, config.eval_limit,
                                                                      ctx))
        elif status == "ok":
            status = "diverged"
            notes.append("no epoch completed")
    state.wall_time_s += time.perf_counter() - wall_mark
    changed = deviations(config)
    if changed:
        notes.append(f"{config.scale} preset changed: "
                     + ", ".join(f"{k}={'(model changed)' if k == 'setting' else v}" for k, v in changed.items()))
    if budget is not None and status == "ok":
        total_steps = sum(h["steps"] for h in state.history)
        notes.append(f"trained for its time budget of {budget:g} s: {total_steps} steps"
                     if state.train_time_s >= budget else
                     f"all {config.epochs} epochs ({total_steps} steps) ended within the time budget of {budget:g} s")
    if task.data_note:
        notes.append(task.data_note)
    if config.eval_limit is not None:
        notes.append(task.describe_eval(config.eval_limit))
    if distributed.note(config, ctx):
        notes.append(distributed.note(config, ctx))
        where = f"{ctx.world} x {where}"
    if state.best_epoch:
        notes.append(f"best validation loss in epoch {state.best_epoch}")

    record = ResultRecord(
        experiment=config.task, model=config.arch, scale=config.scale, metric=task.unit, metrics=metrics,
        params=count_parameters(model), receptive_field=config.setting.receptive_field,
        time_per_step_s=statistics.median(state.step_times) if state.step_times else None,
        peak_memory_mib=state.peak_memory_mib, device=where, wall_time_s=state.wall_time_s,
        config=config.to_dict() | distributed.describe(config, ctx), history=copy.deepcopy(state.history),
        status=status, notes="; ".join(notes))
    path = record.save(record_path(out_dir, config)) if out_dir is not None and ctx.is_main else None
    distributed.barrier()            # when train() returns, rank 0's checkpoint and record exist for every process
    return Run(record, model, state.best_valid, path, Path(checkpoint) if checkpoint is not None else None)


def resume_config(path: str | os.PathLike) -> RunConfig:
    """The configuration stored in a checkpoint (to resume a run without restating it)."""
    return config_from_dict(load_checkpoint(path)["config"])


# --- comparing runs with the paper (used by the notebooks) ----------------------------------------------------------

def scale_label(record: ResultRecord) -> str:
    """How a number must be labelled: only paper-scale runs are (attempted) reproductions."""
    if record.scale == "paper":
        return f"paper scale (Table 3 settings) on {record.device}"
    return f"{record.scale} scale on {record.device}: not a reproduction"


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def comparison_markdown(records: Sequence[ResultRecord]) -> str:
    """A Markdown table of our records next to the paper's Table 1 row for the same task and model."""
    digits = 2 if records and records[0].metric == "perplexity" else 3
    lines = [f"**{describe_unit(records[0].metric)}, {scale_label(records[0])}**", "",
             "| model | params | train | valid | test | ms/step | peak MiB | status "
             "| paper train | paper test | paper ms/step | paper MB |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in records:
        paper = PAPER_TABLE1.get((r.experiment, r.model), {})
        ms = None if r.time_per_step_s is None else 1000 * r.time_per_step_s
        pms = paper.get("time_s") and 1000 * paper["time_s"]
        lines.append(f"| {ARCH_LABELS.get(r.model, r.model)} | {r.params:,} | {_fmt(r.metrics.get('train'), digits)} "
                     f"| {_fmt(r.metrics.get('valid'), digits)} | {_fmt(r.metrics.get('test'), digits)} "
                     f"| {_fmt(ms, 1)} | {_fmt(r.peak_memory_mib, 1)} | {r.status} "
                     f"| {_fmt(paper.get('train'), digits)} | {_fmt(paper.get('test'), digits)} | {_fmt(pms, 1)} "
                     f"| {_fmt(paper.get('mem_mb'), 1)} |")
    by_model = {r.model: r for r in records}
    base_arch = baseline_arch(records[0].experiment)
    if base_arch in by_model and "sequnet" in by_model:
        ours, base = by_model["sequnet"], by_model[base_arch]
        paper_s = PAPER_TABLE1.get((ours.experiment, "sequnet"))
        paper_t = PAPER_TABLE1.get((ours.experiment, base_arch))
        ratios = []
        if ours.time_per_step_s and base.time_per_step_s:
            ratios.append(f"time per step {ours.time_per_step_s / base.time_per_step_s:.2f}")
        if ours.peak_memory_mib and base.peak_memory_mib:
            ratios.append(f"peak memory {ours.peak_memory_mib / base.peak_memory_mib:.2f}")
        paper_ratios = (f"paper: time {paper_s['time_s'] / paper_t['time_s']:.2f}, "
                        f"memory {paper_s['mem_mb'] / paper_t['mem_mb']:.2f}") if paper_s and paper_t else \
            "not in the paper's Table 1"
        lines += ["", f"Seq-U-Net / {ARCH_LABELS[base_arch]}: {', '.join(ratios) or 'no timing'} ({paper_ratios})."]
    lines += ["", "Paper: GTX 1080, torch 1.2, unsynchronised timing; memory = peak allocated tensors in MB."
              + (" Its piano time and memory were measured at batch 2, ours at the training batch."
                 if records[0].experiment == "piano_audio" else "")]
    if records[0].scale != "paper":
        lines += [f"Our numbers come from a {records[0].scale}-scale run (smaller models and/or far fewer steps than "
                  "the paper's training): they show the pipeline, not the paper's result."]
    return "\n".join(lines)


CURVE_AXES = {"epoch": "epoch", "time": "training time (s)"}


def plot_learning_curves(records: Sequence[ResultRecord], ax=None, x: str = "epoch"):
    """Train (solid) and validation (dashed, where the task has one) metric per epoch for each record, against
    the epoch or (``x="time"``, runs with a time budget) the training time at its end; returns the figure."""
    import matplotlib.pyplot as plt

    if x not in CURVE_AXES:
        raise ValueError(f"x={x!r}: choose one of {', '.join(CURVE_AXES)}")
    if x == "time" and any("train_time_s" not in h for r in records for h in r.history):
        raise ValueError("x='time' needs records of runs with a time budget (their history has train_time_s)")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, r in enumerate(records):
        xs = [h["epoch"] if x == "epoch" else h["train_time_s"] for h in r.history]
        color = f"C{i}"
        label = ARCH_LABELS.get(r.model, r.model)
        ax.plot(xs, [h["train"] for h in r.history], "-o", color=color, ms=3, label=f"{label} train")
        if any(h["valid"] is not None for h in r.history):
            ax.plot(xs, [h["valid"] for h in r.history], "--s", color=color, ms=3, label=f"{label} valid")
    if records and records[0].metric == "perplexity":
        ax.set_yscale("log")
    ax.set_xlabel(CURVE_AXES[x])
    if x == "epoch":
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(describe_unit(records[0].metric) if records else "")
    ax.set_title(f"{records[0].experiment}: learning curves ({records[0].scale} scale)" if records else "")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def plot_costs(records: Sequence[ResultRecord]):
    """Time per training step and peak memory per model, ours beside the paper's, and the ratios of the Seq-U-Net
    to its baseline (TCN, or WaveNet for audio).
    The hardware differs (the paper used a GTX 1080), so the ratios are what can be compared. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m, ax_r) = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1, 0.8]})
    labels = [ARCH_LABELS.get(r.model, r.model) for r in records]
    x, width = np.arange(len(records)), 0.38
    paper = [PAPER_TABLE1.get((r.experiment, r.model), {}) for r in records]
    ours_label = f"ours ({records[0].device.split(' (')[0]}, {records[0].scale} scale)"
    ax_t.bar(x - width / 2, [1000 * (r.time_per_step_s or 0) for r in records], width, label=ours_label)
    ax_t.bar(x + width / 2, [1000 * p.get("time_s", 0) for p in paper], width, label="paper (GTX 1080)")
    ax_t.set_ylabel("ms per training step")
    mem = [r.peak_memory_mib for r in records]
    ax_m.bar(x - width / 2, [m or 0 for m in mem], width, label="ours")
    ax_m.bar(x + width / 2, [p.get("mem_mb", 0) for p in paper], width, label="paper")
    if all(m is None for m in mem):
        ax_m.text(0.5, 0.5, "peak memory is\nmeasured on a GPU only", ha="center", va="center",
                  transform=ax_m.transAxes, fontsize=8, bbox={"facecolor": "white", "alpha": 0.8})
    ax_m.set_ylabel("peak memory (ours MiB, paper MB)")
    for ax in (ax_t, ax_m):
        ax.set_xticks(x, labels)
    by_model = {r.model: r for r in records}
    base_arch = baseline_arch(records[0].experiment)
    ours_r, paper_r = [math.nan, math.nan], [math.nan, math.nan]
    if "sequnet" in by_model and base_arch in by_model:
        s, t = by_model["sequnet"], by_model[base_arch]
        if s.time_per_step_s and t.time_per_step_s:
            ours_r[0] = s.time_per_step_s / t.time_per_step_s
        if s.peak_memory_mib and t.peak_memory_mib:
            ours_r[1] = s.peak_memory_mib / t.peak_memory_mib
        ps, pt = PAPER_TABLE1.get((s.experiment, "sequnet")), PAPER_TABLE1.get((s.experiment, base_arch))
        if ps and pt:
            paper_r = [ps["time_s"] / pt["time_s"], ps["mem_mb"] / pt["mem_mb"]]
    xr = np.arange(2)
    ax_r.bar(xr - width / 2, ours_r, width, label="ours")
    ax_r.bar(xr + width / 2, paper_r, width, label="paper")
    ax_r.axhline(1.0, color="0.3", lw=0.8)
    ax_r.set_xticks(xr, ["time", "memory"])
    ax_r.set_ylabel(f"Seq-U-Net / {ARCH_LABELS[base_arch]}")
    for ax in (ax_t, ax_m, ax_r):
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{records[0].experiment}: cost of a training step" if records else "")
    fig.tight_layout()
    return fig


# Columns of the configuration tables: (title, left-aligned?). Audio runs describe their two architectures in
# words and are bounded by a time budget rather than by epochs.
CONFIG_COLUMNS = {
    "audio": [("model", True), ("params", False), ("structure", True), ("past samples seen", False),
              ("window (inputs → scored)", True), ("batch", False), ("lr", False), ("time budget", False),
              ("steps/epoch", False), ("eval. windows/split", False)],
    "other": [("model", True), ("params", False), ("levels × kernel", True), ("H", False), ("emb.", False),
              ("dropout", False), ("window (inputs → scored)", True), ("epochs", False), ("steps/epoch", False),
              ("eval. items/split", False), ("lr", False), ("clip", False)],
}


def _structure(s) -> str:
    if s.arch == "wavenet":
        return f"{s.blocks} × {s.levels} layers, {s.hidden} residual / {s.skip} skip channels, k = {s.kernel_size}"
    return f"residual, L = {s.levels}, F = {s.hidden}, D = {s.depth}, k = {s.kernel_size}"


def _config_row(arch: str, c: RunConfig) -> list[Any]:
    s = c.setting
    inputs, scored = s.input_output
    model, params = ARCH_LABELS.get(arch, arch), f"{count_parameters(build_model(s)):,}"
    extent = [c.max_steps_per_epoch or "all", c.eval_limit or "all"]
    if s.kind == "audio":
        budget = "none" if c.time_budget_s is None else f"{c.time_budget_s:g} s"
        return [model, params, _structure(s), f"{s.receptive_field:,}", f"{inputs:,} → {scored:,}", c.batch_size,
                f"{c.lr:.3g}", budget] + extent
    window = "whole sequences" if inputs is None else f"{inputs} → {scored}"
    return [model, params, f"{s.levels} × {s.kernel_size}", s.hidden, s.emsize or "–", s.dropout, window,
            c.epochs] + extent + [f"{c.lr:.3g}", "off" if c.clip is None else f"{c.clip:.3g}"]


def config_markdown(configs: dict[str, RunConfig]) -> str:
    """A Markdown table of what each run will train: model size, window, extent and optimiser settings."""
    kind = "audio" if any(c.setting.kind == "audio" for c in configs.values()) else "other"
    columns = CONFIG_COLUMNS[kind]
    lines = ["| " + " | ".join(title for title, _ in columns) + " |",
             "|" + "|".join("---" if left else "---:" for _, left in columns) + "|"]
    lines += ["| " + " | ".join(str(v) for v in _config_row(arch, c)) + " |" for arch, c in configs.items()]
    return "\n".join(lines)
