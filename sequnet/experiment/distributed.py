"""Data-parallel training over several processes with PyTorch's DistributedDataParallel (DDP).

How to run it: ``python -m sequnet train TASK ARCH --scale paper --nproc N`` starts N processes through torchrun's
module (``torch.distributed.run``) on this machine, one per GPU (NCCL) or N on the CPU (gloo). Equivalently::

    torchrun --nproc-per-node N -m sequnet.experiment.cli train TASK ARCH --scale paper

``sequnet.experiment.training.train`` notices torchrun's environment (``WORLD_SIZE > 1``), or a process group that is already
initialised, and trains data-parallel; otherwise every function here is a no-op and the trainer is the plain
single-process one, bit for bit. The notebooks train in their own kernel, so they stay single-process: a user
with several GPUs trains a paper-scale model with the CLI (``--nproc``) and runs independent notebooks side by
side with ``sequnet run --gpus N``.

What N ranks mean (``batch_size`` is per rank; the learning rate is used as configured, never scaled):

* Tasks with stacked batches (language: ``batch_size`` streams per window). The task is built with the effective
  batch ``N * batch_size`` streams, every rank walks the same shuffled window order (the data-order generator is
  seeded alike on every rank), and rank r trains on rows ``[r*B, (r+1)*B)`` of each window. Each rank's objective
  is the mean cross-entropy over its rows and DDP averages the gradients, which is the gradient of the mean over
  all ``N * B`` rows: N ranks x batch B is numerically the single-process run at batch ``N * B`` (up to the order
  of float sums; with dropout only in distribution, since every rank draws its own masks).
* Music (one whole sequence per step). The shuffled sequence order is dealt round-robin: at step k rank r trains on
  sequence ``order[k*N + r]``, so an epoch has ``floor(S / N)`` steps and leaves out the ``S mod N`` sequences at
  the end of its order (others each epoch). The effective batch is N sequences. Each rank's objective stays the
  official summed BCE of its sequence, and DDP averages: a step follows the gradient of the *mean over the N
  sequences of the per-sequence sums*. Its scale is that of one sequence (not N times it), so the learning rate
  and the clipping norm keep the meaning they have at N = 1, while longer sequences still weigh more, as in the
  official code. Only the gradient noise drops; the results are not the single-process ones.

Metrics: every training step all-reduces the summed loss and the number of scored items, so the divergence check
and the epoch's training loss cover the whole effective batch and agree on every rank. Evaluation is sharded: the
evaluation batches are dealt round-robin, each rank sums its losses and item counts, and one all-reduce makes the
mean (a task that overrides ``Task.evaluate`` is evaluated whole on every rank instead).

Randomness and checkpoints: rank 0 keeps the single-process random streams; rank r > 0 re-seeds torch from
``(seed, rank)`` after the model is built (the initial weights are the same everywhere, and DDP broadcasts rank 0's
anyway), so that dropout masks differ between ranks. Rank 0 writes the checkpoint: the un-wrapped model's state dict,
the optimizer, rank 0's random states and the data-order generator (which depends on the effective batch, never on
N), the number of ranks and every rank's torch random state. A resume with the same N continues exactly; with
another N the data order and the rank-0 streams continue exactly, and a rank the checkpoint has no state for
starts a dropout stream seeded from ``(seed, rank, epoch)``. A language run may change N on resume if the
effective batch stays (``--batch-size`` times N); a music run may change N freely (each epoch's ``world_size``
and ``effective_batch`` are in the record's history).

Files: rank 0 alone locks the run's files and writes them; a refusal before training (a busy or existing run,
an unreadable checkpoint) is reached by every rank alike, so that all of them stop together.

Time per step and peak memory in the record are rank 0's (one GPU); a step includes the gradient all-reduce.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import socket
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from sequnet.experiment.scales import resolve_device

# Variables the launcher sets for the processes it starts, unless the caller's environment sets them already.
# NVLink multicast (NVLS) stays off: on shared multi-GPU hosts a program that uses it can take the GPUs out of
# service; DDP's gradient all-reduce works without it.
LAUNCH_DEFAULTS = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


@dataclasses.dataclass(frozen=True)
class Context:
    """Where this process trains: its rank among ``world`` processes and its device."""
    device: torch.device
    rank: int = 0
    world: int = 1
    backend: str | None = None           # None: not distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def launched() -> bool:
    """True in a process that torchrun started as one of several (its ``WORLD_SIZE`` is above 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _rank_device(device: str, local_rank: int) -> torch.device:
    """One GPU per process: rank ``local_rank`` of this machine takes ``cuda:local_rank``."""
    if device not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device={device!r} with several processes: each process uses the GPU of its local rank; "
                         "pass device 'auto', 'cuda' or 'cpu'")
    dev = resolve_device(device)
    if dev.type == "cpu":
        return dev
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"local rank {local_rank} has no GPU: only {torch.cuda.device_count()} visible; "
                         "start at most one process per GPU")
    return torch.device("cuda", local_rank)


def setup(device: str) -> Context:
    """The context of this process, initialising the process group from torchrun's variables when launched.

    ``device`` is the configuration's (``auto``, ``cpu``, ``cuda``). A process group that exists already (a test,
    a user's own launcher) is used as it is.
    """
    if not launched() and not (dist.is_available() and dist.is_initialized()):
        return Context(resolve_device(device))
    if not dist.is_available():
        raise RuntimeError("started as one of several processes, but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    dev = _rank_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)       # NCCL and all_gather_object use the current device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method="env://")
        atexit.register(_destroy)
    if dist.get_world_size() == 1:
        return Context(dev)
    return Context(dev, dist.get_rank(), dist.get_world_size(), dist.get_backend())


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: Context) -> nn.Module:
    """The module that training steps call: DDP around ``model`` when distributed, else ``model`` itself.

    Every parameter of our models takes part in each forward pass (tests check all four architectures; WaveNet's
    fused last-layer residual rows get a zero gradient but stay in the graph), so DDP runs without the per-step
    graph search of ``find_unused_parameters``.
    """
    if ctx.world == 1:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda"
                                               else None)


# --- data ----------------------------------------------------------------------------------------------------------

def deals_sequences(setting) -> bool:
    """True when a step is one whole sequence (music): sequences are dealt to the ranks. Otherwise each batch is
    stacked along dim 0 and its rows are split between the ranks."""
    return setting.kind == "music"


def task_batch_size(config, ctx: Context) -> int:
    """The batch the task is built with: the effective batch for stacked batches (every rank cuts its own rows out
    of it), the configuration's for dealt sequences."""
    return config.batch_size if deals_sequences(config.setting) else config.batch_size * ctx.world


def steps_per_epoch(task, ctx: Context) -> int:
    steps = task.steps_per_epoch()
    if not deals_sequences(task.setting):
        return steps
    if steps < ctx.world:
        raise ValueError(f"{task.name}: {steps} training sequences cannot be dealt to {ctx.world} processes")
    return steps // ctx.world


def _rows(batch: Any, rank: int, world: int) -> Any:
    if isinstance(batch, (tuple, list)):
        return type(batch)(_rows(part, rank, world) for part in batch)
    if batch.shape[0] % world:
        raise ValueError(f"a batch of {batch.shape[0]} rows cannot be split between {world} processes")
    per = batch.shape[0] // world
    return batch[rank * per:(rank + 1) * per]


def _dealt(items: Iterable, rank: int, world: int) -> Iterator:
    group = []
    for item in items:
        group.append(item)
        if len(group) == world:
            yield group[rank]
            group = []


def shard(batches: Iterable, task, ctx: Context) -> Iterable:
    """This rank's share of one epoch of training batches (every rank passes the same iterable)."""
    if ctx.world == 1:
        return batches
    if deals_sequences(task.setting):
        return _dealt(batches, ctx.rank, ctx.world)
    return (_rows(batch, ctx.rank, ctx.world) for batch in batches)


# --- reductions ----------------------------------------------------------------------------------------------------

def _reduce(values: list[float], op) -> torch.Tensor:
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    buf = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(buf, op=op)
    return buf


def all_sum(total: torch.Tensor, count: int) -> tuple[torch.Tensor, int]:
    """(summed loss, number of scored items) over every rank; unchanged when not distributed."""
    if not active():
        return total, count
    buf = torch.stack([total.detach().double().reshape(()),
                       torch.tensor(float(count), dtype=torch.float64, device=total.device)])
    dist.all_reduce(buf)
    return buf[0], int(buf[1].item())


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on any (decisions taken from per-rank clocks must agree)."""
    if not active():
        return flag
    return bool(_reduce([float(flag)], dist.ReduceOp.MAX).item())


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if active():
        dist.barrier()


@torch.no_grad()
def evaluate(task, model: nn.Module, split: str, limit: int | None, ctx: Context) -> float:
    """``task.evaluate`` with its batches dealt round-robin to the ranks and the sums all-reduced."""
    from sequnet.experiment.tasks import SPLITS, Task

    if ctx.world == 1 or type(task).evaluate is not Task.evaluate:
        return task.evaluate(model, split, limit)
    splits = getattr(task, "splits", SPLITS)
    if split not in splits:
        raise ValueError(f"split={split!r}: {task.name} has the splits {', '.join(splits)}")
    was_training = model.training
    model.eval()
    total, count = torch.zeros((), dtype=torch.float64, device=ctx.device), 0
    try:
        for k, batch in enumerate(task.eval_batches(split, limit)):
            if k % ctx.world == ctx.rank:
                _, batch_total, batch_count = task.loss(model, batch)
                total += batch_total.double()
                count += batch_count
    finally:
        model.train(was_training)
    total, count = all_sum(total, count)
    if count == 0:
        raise ValueError(f"{task.name}: the {split} split yields no scored item (limit={limit})")
    return total.item() / count


# --- random streams per rank ---------------------------------------------------------------------------------------

def rank_seed(seed: int, rank: int, epoch: int = 0) -> int:
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1)[0])


def _own_rng(ctx: Context) -> dict[str, torch.Tensor]:
    cuda = torch.cuda.get_rng_state(ctx.device) if ctx.device.type == "cuda" else torch.empty(0, dtype=torch.uint8)
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def rank_rng_states(ctx: Context) -> list[dict[str, torch.Tensor]]:
    """Every rank's torch random state, index = rank (a collective: every rank must call it)."""
    if ctx.world == 1:
        return []
    states: list[Any] = [None] * ctx.world
    dist.all_gather_object(states, _own_rng(ctx))
    return states


def start_rank_rng(ctx: Context, seed: int, saved: list[dict[str, torch.Tensor]] | None = None,
                   epoch: int = 0) -> None:
    """Give rank r > 0 its own torch stream: its saved state when the checkpoint has one, else a fresh seed."""
    if ctx.rank == 0:
        return
    if saved and ctx.rank < len(saved):
        torch.set_rng_state(saved[ctx.rank]["torch"])
        if ctx.device.type == "cuda" and saved[ctx.rank]["cuda"].numel():
            torch.cuda.set_rng_state(saved[ctx.rank]["cuda"], ctx.device)
        return
    torch.manual_seed(rank_seed(seed, ctx.rank, epoch))


# --- what the record says ------------------------------------------------------------------------------------------

def describe(config, ctx: Context) -> dict[str, int]:
    """The keys added to a record's ``config``: how many processes, and the batch per rank and in all."""
    return {"world_size": ctx.world, "batch_per_rank": config.batch_size,
            "effective_batch": config.batch_size * ctx.world}


def note(config, ctx: Context) -> str | None:
    if ctx.world == 1:
        return None
    what = "sequences (one per process)" if deals_sequences(config.setting) else "streams"
    return (f"data-parallel over {ctx.world} processes ({ctx.backend}): batch {config.batch_size} per process, "
            f"effective batch {config.batch_size * ctx.world} {what}; lr {config.lr:.4g} as configured (not scaled)")


# --- launching -----------------------------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the launcher's rendezvous; single machine only)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_env(nproc: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a single-machine launch of ``nproc`` processes."""
    env = dict(os.environ if base is None else base)
    for key, value in LAUNCH_DEFAULTS.items():
        env.setdefault(key, value)
    # gloo picks the interface the host name resolves to; one machine needs nothing but loopback.
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    # N processes on the CPU would each start one thread per core; torchrun itself defaults to 1.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return env


def torchrun_command(nproc: int, target: list[str], port: int | None = None) -> list[str]:
    """``python -m torch.distributed.run`` for ``nproc`` processes on this machine; ``target`` is what torchrun
    runs (a script and its arguments, or ``-m module ...``)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
            "--master-addr", "127.0.0.1", "--master-port", str(port or free_port()), *target]
