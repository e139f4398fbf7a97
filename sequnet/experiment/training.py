"""Training as the paper describes it (section 5.1) and the official scripts do it (spec section 6), in one loop.

Adam at the initial rate of the configuration; optional gradient-norm clipping; after every epoch the model is
evaluated on the validation split, the best weights so far are kept, and the LR rule may halve the rate. There
is no early stopping: every epoch runs, and the final metrics are those of the best-validation weights.

A task without a validation split (raw audio, as the official audio script) has no model selection and no LR
rule: the last weights are the result. A configuration's ``time_budget_s`` ends the run (status "ok") once its
training epochs (steps and batch preparation, not evaluation) have taken that long, in the middle of an epoch if
need be: the audio models are compared at equal wall-clock training time.

The pieces: :func:`build` makes the model and the optimizer, :func:`train_epoch` runs one epoch over any iterable
of batches, ``Task.evaluate`` evaluates, and :func:`train` ties them together with checkpoints (written after every
epoch, see :mod:`sequnet.experiment.checkpoints`), the LR rule and the result record. A run's files are locked
while it trains, and a run that exists already is resumed or replaced only when asked.

Under torchrun (``--nproc N`` on the command line) the same loop trains data-parallel with DDP. The distributed
points are few and marked: the setup at the start of :func:`train`, each process's share of the batches, the sums
over processes (training loss, evaluation), decisions every process takes alike (stopping), and rank 0 alone
writing files. What that means for batches, metrics, randomness and checkpoints is in
:mod:`sequnet.experiment.distributed`; with one process every one of those calls is a no-op.

Time per step, peak memory, the divergence checks and the count of loss spikes are those of
:mod:`sequnet.experiment.steps`.

What a run shows while it trains: with ``progress`` one tqdm bar (``tqdm.auto``: a widget in Jupyter, text in a
terminal) over all the run's training steps, its postfix the last epoch's summary; without it, each epoch's summary
is one line to ``log`` (the command line's log files). ``log`` defaults to nothing, so a notebook prints no line
per epoch (and no machine path); the record's ``history`` holds every epoch for a table or a curve.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn

from sequnet.core.configs import build_model, count_parameters
from sequnet.experiment import distributed
from sequnet.experiment.captured import StepPerRate, make_capturable
from sequnet.experiment.fast_path import describe as describe_fast_path, use_fast_kernels, uses_fast_kernels
from sequnet.experiment.checkpoints import (RunFolderError, RunLock, TrainState, check_resumable, cpu_copy,
                                            finished_record, load_checkpoint, refuse_existing, restore,
                                            resume_path, save_checkpoint, seed_everything)
from sequnet.experiment.records import ResultRecord
from sequnet.experiment.scales import RunConfig, deviations
from sequnet.experiment.steps import (SPIKES, Diverged, count_spikes, device_name, epoch_summary, run_bar,
                                      step_function, torch_settings, train_epoch, uses_cuda_graphs)
from sequnet.experiment.tasks import SPLITS, LanguageTask, Task, make_task


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


# --- the model ------------------------------------------------------------------------------------------------------

def build(config: RunConfig, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The model (initialised from ``config.seed``) on ``device`` and its Adam optimizer."""
    torch.manual_seed(config.seed)
    model = build_model(config.setting).to(device)
    if uses_fast_kernels(config, device, model):
        use_fast_kernels(model, config.compile)     # before the optimizer: they replace or move the weights
    # Adam's fused CUDA kernel: the same update in one launch per step instead of one per parameter group op
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=device.type == "cuda")
    return model, optimizer


# --- a whole run ----------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    record: ResultRecord
    model: nn.Module                     # with the best-validation weights loaded
    best_valid_loss: float               # nats per scored item (what the hyper-parameter search minimises)
    record_path: Path | None = None      # None: not written (no out_dir, not rank 0, or a finished run kept)
    checkpoint_path: Path | None = None  # None: none written (no checkpoint asked for, or no epoch trained yet)


def record_path(out_dir: str | os.PathLike, config: RunConfig) -> Path:
    return Path(out_dir) / "records" / f"{config.name}.json"


def _claim(held: contextlib.ExitStack, ctx: distributed.Context, *paths: Path | None) -> None:
    """Lock the run's files for this training (rank 0 writes them, so rank 0 locks; every rank learns whether
    it could, so that all of them stop together)."""
    refused = None
    if ctx.is_main:
        try:
            held.enter_context(RunLock(*paths))
        except RunFolderError as e:
            refused = e
    if distributed.any_rank(refused is not None):
        raise refused or RunFolderError("rank 0 could not lock the run's files (its error says why)")


def _load_task(config: RunConfig, task: Task | None, ctx: distributed.Context, root, mirror) -> tuple[Task, int]:
    """The task (built, or the one given, checked) on the device, and the training steps of an epoch; refuses a
    batch that leaves no step (the data is shorter than one batch)."""
    batch = distributed.task_batch_size(config, ctx)
    if task is None:
        task = make_task(config.task, config.setting, batch, root=root, mirror=mirror)
    elif task.name != config.task or getattr(task, "batch_size", batch) != batch:
        raise ValueError(f"the task given ({task.name}, batch {getattr(task, 'batch_size', 1)}) does not match the "
                         f"configuration ({config.task}, batch {batch})")
    steps = distributed.steps_per_epoch(task, ctx)
    if steps == 0:
        what = f"batch_size={config.batch_size}" + (f" x {ctx.world} processes" if ctx.world > 1 else "")
        detail = "an epoch would have no training step"
        if isinstance(task, LanguageTask):
            tokens, window = task.corpus.train.numel(), task.input_length + 1
            detail = (f"{tokens:,} training tokens cut into {batch:,} streams leave {tokens // batch:,} tokens per "
                      f"stream, fewer than one window of {window} (its inputs and the next token), so {detail}; at "
                      f"most {tokens // window // ctx.world:,} streams" + (" per process" if ctx.world > 1 else "")
                      + " fit")
        raise ValueError(f"{what} is larger than {config.task}'s training data: {detail}")
    if config.max_steps_per_epoch is not None:
        steps = min(steps, config.max_steps_per_epoch)
    task.to(ctx.device)                 # in place (a wrapper's .to would return the task it wraps)
    return task, steps


def _stop_reason(config: RunConfig, state: TrainState, elapsed: float, last_epoch_s: float,
                 stop_after_epoch: int | None, time_limit_s: float | None) -> str | None:
    """Why the run stops (resumably) before its next epoch, or None. Every process decides alike."""
    if stop_after_epoch is not None and state.epoch >= stop_after_epoch:
        return f"stopped after epoch {state.epoch} of {config.epochs} (stop_after_epoch)"
    if time_limit_s is not None and distributed.any_rank(elapsed + last_epoch_s > time_limit_s):
        return (f"stopped after epoch {state.epoch} of {config.epochs}: the next epoch would end after the time "
                f"limit of {time_limit_s:g} s")
    return None


def _epoch(config: RunConfig, task: Task, net: nn.Module, model: nn.Module, optimizer, state: TrainState,
           rule: LRRule, data_order: torch.Generator, ctx: distributed.Context, *, steps: int, warmup_left: int,
           bar, graphs: StepPerRate | None) -> int:
    """Train and evaluate epoch ``state.epoch + 1``, record it in ``state``; return the warm-up steps still to
    skip. Raises ``Diverged``."""
    device, budget, epoch = ctx.device, config.time_budget_s, state.epoch + 1
    epoch_start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for group in optimizer.param_groups:
        group["lr"] = state.lr
    n_times = len(state.step_times)
    # Several processes would all have to agree at every step to stop inside an epoch: they check the budget
    # between epochs only.
    deadline = None if budget is None or ctx.world > 1 else epoch_start + budget - state.train_time_s
    batches = distributed.shard(task.train_batches(data_order), task, ctx)     # this process's share
    losses: list[float] = []
    captured = None if graphs is None else graphs.at(state.lr)
    train_loss, warmup_left, done = train_epoch(
        net, optimizer, task, batches, config, device, steps=steps, step_times=state.step_times,
        warmup_left=warmup_left, step_losses=losses, bar=bar, deadline=deadline, captured=captured)
    state.train_time_s += time.perf_counter() - epoch_start
    state.loss_spikes = count_spikes(state.loss_spikes, losses, state.recent_losses, epoch)
    state.recent_losses = (state.recent_losses + losses)[-SPIKES.window:]
    peak = None
    if device.type == "cuda":       # an epoch replaying an earlier epoch's graph counts that graph's activations
        peak = max(torch.cuda.max_memory_allocated(device), captured.capture_peak_bytes if captured else 0) / 2 ** 20
    has_valid = "valid" in task.splits
    valid_loss = distributed.evaluate(task, model, "valid", config.eval_limit, ctx) if has_valid else None
    if valid_loss is not None and (not math.isfinite(valid_loss) or valid_loss > task.valid_loss_limit):
        raise Diverged(f"validation loss {valid_loss:.4g} nats per item")
    if peak is not None:
        state.peak_memory_mib = max(state.peak_memory_mib or 0.0, peak)
    is_best = valid_loss is not None and valid_loss < state.best_valid
    if is_best:
        state.best_valid, state.best_epoch = valid_loss, epoch
        state.best_weights = cpu_copy(model.state_dict())
    halve = has_valid and rule.should_halve(epoch, valid_loss, state.valid_losses)
    epoch_times = state.step_times[n_times:]
    state.history.append({
        "epoch": epoch, "lr": state.lr, "train_loss": train_loss, "valid_loss": valid_loss,
        "train": task.metric(train_loss), "valid": None if valid_loss is None else task.metric(valid_loss),
        "steps": done, "step_time_median_s": statistics.median(epoch_times) if epoch_times else None,
        "peak_memory_mib": peak, "epoch_time_s": time.perf_counter() - epoch_start, "best": is_best,
        "lr_halved": halve, "world_size": ctx.world, "effective_batch": config.batch_size * ctx.world,
    })
    if budget is not None:                 # a budgeted run's progress is its training time (for the curves)
        state.history[-1]["train_time_s"] = state.train_time_s
    if has_valid:
        state.valid_losses.append(valid_loss)
    if halve:
        state.lr /= 2
    state.epoch = epoch
    return warmup_left


def _save(path: Path, config: RunConfig, model, optimizer, state: TrainState, data_order, ctx) -> None:
    rank_rng = distributed.rank_rng_states(ctx)      # every process takes part; rank 0 writes
    if ctx.is_main:
        save_checkpoint(path, config, model, optimizer, state, data_order, world_size=ctx.world, rank_rng=rank_rng)


def _final_metrics(config: RunConfig, task: Task, model: nn.Module, state: TrainState, splits: Sequence[str],
                   ctx: distributed.Context) -> dict[str, float | None] | None:
    """Load the best weights (the last ones without a validation split) and evaluate ``splits`` with them; None
    when no epoch has given a result."""
    metrics: dict[str, float | None] = {split: None for split in SPLITS}
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
        # The validation loss of the best weights is known; train and test are evaluated with them now.
        metrics["valid"] = task.metric(state.best_valid)
    elif "valid" in task.splits or state.epoch == 0:
        return None
    for split in splits:
        if split != "valid" and split in task.splits:
            metrics[split] = task.metric(distributed.evaluate(task, model, split, config.eval_limit, ctx))
    return metrics


def _notes(config: RunConfig, task: Task, state: TrainState, status: str, ctx: distributed.Context) -> list[str]:
    """What the record must say besides its numbers."""
    notes = []
    changed = deviations(config)
    if changed:
        notes.append(f"{config.scale} preset changed: "
                     + ", ".join(f"{k}={'(model changed)' if k == 'setting' else v}" for k, v in changed.items()))
    budget = config.time_budget_s
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
    if state.best_epoch:
        notes.append(f"best validation loss in epoch {state.best_epoch}")
    return notes


def train(config: RunConfig, *, out_dir: str | os.PathLike | None = None,
          checkpoint: str | os.PathLike | None = None, resume: bool | str | os.PathLike = False,
          overwrite: bool = False, task: Task | None = None, progress: bool = False,
          log: Callable[[str], None] | None = None, stop_after_epoch: int | None = None,
          time_limit_s: float | None = None, final_splits: Sequence[str] = SPLITS, data_root=None,
          data_mirror=None, notes: Sequence[str] = ()) -> Run:
    """Train ``config`` and return the run (its record and the best-validation model).

    out_dir: where ``records/<task>_<arch>.json`` is written (nothing is written without it).
    checkpoint: a path written after every epoch (none without it).
    resume: ``True`` continues from ``checkpoint`` if it exists (else starts afresh); a path resumes from it.
    overwrite: replace a previous run's record and checkpoint. Without it (or ``resume``) a run whose files exist
        is refused (:class:`RunFolderError`); either way an early stop never replaces a finished run's record.
    task: an already loaded task (a search reuses one for every trial).
    stop_after_epoch / time_limit_s: stop early, leaving status "interrupted" (the checkpoint lets a later call
        finish the run); the time limit stops before an epoch that would not end within it.
    final_splits: the splits evaluated with the best weights at the end (empty for a search's trials).
    progress: one tqdm bar over the run's training steps, the last epoch's summary as its postfix.
    log: where messages go (resumed, diverged), and each epoch's one-line summary when there is no bar; None (the
        default): nowhere.
    notes: added to the record's notes, e.g. that the run shared its GPU with others (its time per step is then
        contended; ``sequnet.publish.reproduction`` marks records whose notes say "side by side").

    Everything that can refuse the run does so before any data is loaded: files locked by another training
    (:class:`RunFolderError`), an existing run, an unreadable checkpoint (:class:`CheckpointError`), a checkpoint
    of another configuration or of more epochs; and, before any step, a batch larger than the data (ValueError).
    """
    call_start = wall_mark = time.perf_counter()   # wall_mark: wall time not yet added to state.wall_time_s
    ctx = distributed.setup(config.device)         # data-parallel under torchrun: a process group, this rank's GPU
    if not ctx.is_main:
        log, progress = None, False                # rank 0 speaks for all
    device = ctx.device
    record_file = None if out_dir is None else record_path(out_dir, config)
    checkpoint = None if checkpoint is None else Path(checkpoint)
    with contextlib.ExitStack() as held:
        _claim(held, ctx, record_file, checkpoint)
        refuse_existing(config, record_file, checkpoint, resume, overwrite)
        resume_from = resume_path(checkpoint, resume)
        saved = None if resume_from is None else load_checkpoint(resume_from)
        if saved is not None:
            check_resumable(saved, config, resume_from, ctx.world)
        task, steps = _load_task(config, task, ctx, data_root, data_mirror)

        data_order = seed_everything(config.seed)
        model, optimizer = build(config, device)
        state = TrainState(lr=config.lr) if saved is None else restore(saved, model, optimizer, data_order)
        if saved is not None and log:
            log(f"{config.name}: resumed from {resume_from} after epoch {state.epoch}")
        distributed.start_rank_rng(ctx, config.seed, saved and saved.get("rank_rng"), state.epoch)
        net = distributed.wrap(model, ctx)             # what training steps call; `model` stays the bare module
        graphs = None
        if uses_cuda_graphs(config, device, task, ctx.world):
            make_capturable(optimizer)
            graphs = StepPerRate(lambda: step_function(net, optimizer, task, config, device))

        rule = LRRule(config.patience, strict=config.strict_lr_rule)
        warmup_left, last_epoch_s = config.warmup_steps, 0.0
        given_notes, notes = list(notes), []
        status, trained = "ok", False
        bar = run_bar(config, state.epoch * steps, steps, progress)
        with torch_settings(config, device, task), contextlib.closing(bar):
            where = device_name(device)                  # inside: the thread count is the one training uses
            while state.epoch < config.epochs:
                stop = _stop_reason(config, state, time.perf_counter() - call_start, last_epoch_s,
                                    stop_after_epoch, time_limit_s)
                if stop is not None:
                    status = "interrupted"
                    notes.append(stop)
                    break
                if config.time_budget_s is not None and distributed.any_rank(
                        state.train_time_s >= config.time_budget_s):
                    break
                try:
                    warmup_left = _epoch(config, task, net, model, optimizer, state, rule, data_order, ctx,
                                         steps=steps, warmup_left=warmup_left, bar=bar, graphs=graphs)
                except Diverged as e:
                    status = "diverged"
                    notes.append(f"diverged in epoch {state.epoch + 1}: {e}")
                    if log:
                        log(f"{config.name}: diverged in epoch {state.epoch + 1}: {e}")
                    break
                last_epoch_s, trained = state.history[-1]["epoch_time_s"], True
                state.given_notes += [n for n in given_notes if n not in state.given_notes]
                if checkpoint is not None:
                    state.wall_time_s += time.perf_counter() - wall_mark
                    wall_mark = time.perf_counter()
                    _save(checkpoint, config, model, optimizer, state, data_order, ctx)
                summary = epoch_summary(config, task, state.history[-1])
                if progress:
                    bar.set_postfix_str(summary, refresh=True)
                elif log:
                    log(f"{config.name} {summary}")
            if graphs is not None:
                graphs.release()                         # its memory pool, before the final evaluation

            metrics = _final_metrics(config, task, model, state, final_splits if status == "ok" else (), ctx)
            if status == "ok" and metrics is None:
                status = "diverged"
                notes.append("no epoch completed")
        state.wall_time_s += time.perf_counter() - wall_mark
        record = ResultRecord(
            experiment=config.task, model=config.arch, scale=config.scale, metric=task.unit,
            metrics=metrics or {split: None for split in SPLITS},
            params=count_parameters(model), receptive_field=config.setting.receptive_field,
            time_per_step_s=statistics.median(state.step_times) if state.step_times else None,
            peak_memory_mib=state.peak_memory_mib, wall_time_s=state.wall_time_s,
            device=f"{ctx.world} x {where}" if ctx.world > 1 else where,
            config=config.to_dict() | distributed.describe(config, ctx), history=copy.deepcopy(state.history),
            status=status, notes="; ".join(notes + [n for n in [describe_fast_path(model)] if n]
                                           + _notes(config, task, state, status, ctx)
                                           + list(dict.fromkeys(state.given_notes + given_notes))),
            deviations={k: "model changed" if k == "setting" else v for k, v in deviations(config).items()},
            seed=config.seed, loss_spikes=copy.deepcopy(state.loss_spikes))
        # An early stop writes no record before its first epoch (there is nothing to report, and a later call must
        # not find a "run") and never replaces the record of a finished run (one that overwrite is replacing).
        keep = status == "interrupted" and (state.epoch == 0 or finished_record(record_file))
        path = record.save(record_file) if record_file is not None and ctx.is_main and not keep else None
        distributed.barrier()        # when train() returns, rank 0's checkpoint and record exist for every process
    # The checkpoint of this run: one it wrote, or the one it resumed (a file there from a run that overwrite is
    # replacing is not this run's).
    ours = checkpoint is not None and checkpoint.is_file() and (trained or resume_from == checkpoint)
    return Run(record, model, state.best_valid, path, checkpoint if ours else None)
