"""What a training run keeps on disk: its checkpoint, its random states, and the claim on its output files.

Checkpoints are plain state dicts (loadable with ``torch.load(weights_only=True)``) written atomically after every
epoch. They hold the model, the optimizer, the best weights, the LR-rule history and every random state (torch,
CUDA, numpy, python and the data-order generator), so that a run resumed from one finishes bit-identical to an
uninterrupted run on the CPU. Every load verifies the file first (:func:`load_checkpoint`); anything that cannot
be used raises :class:`CheckpointError` ("unreadable checkpoint PATH: reason").

A run's files (its record and its checkpoint) belong to one training at a time: :class:`RunLock` holds an
exclusive ``flock`` on a lock file beside each, and :func:`refuse_existing` stops a new run from replacing a
previous one unless the caller resumes it or asks to overwrite it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import math
import os
import pickle
import platform
import random
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from sequnet.experiment import distributed
from sequnet.experiment.records import ResultRecord
from sequnet.experiment.scales import RunConfig

CHECKPOINT_FORMAT = 1
# Fields of a run's configuration that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = ("epochs", "device", "warmup_steps", "cpu_threads", "time_budget_s", "cuda_graphs",
                     "fast_kernels", "compile")
PAYLOAD_KEYS = ("config", "model", "optimizer", "state", "rng")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing parts, corrupted, truncated, or not a sequnet checkpoint."""

    def __init__(self, path, reason: str):
        super().__init__(f"unreadable checkpoint {path}: {reason}")
        self.path, self.reason = Path(path), reason


class RunFolderError(ValueError):
    """A run's output files are in use by another training, or hold a run that would be replaced."""


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
    # Loss spikes so far (the record's ``loss_spikes``) and the last steps' losses that the next epoch's first
    # steps are compared with (``steps.SpikeRule``); a checkpoint written before they existed starts them afresh.
    loss_spikes: dict[str, Any] | None = None
    recent_losses: list[float] = dataclasses.field(default_factory=list)
    # Notes given by the calls that trained epochs of this run (``train(notes=...)``: that it shared its GPU, say),
    # so that the record a later call writes, after a resume, still says them.
    given_notes: list[str] = dataclasses.field(default_factory=list)


# --- random generators ----------------------------------------------------------------------------------------------

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


def cpu_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}


# --- checkpoints ----------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _zip_crcs_on():
    """torch writes a CRC-32 for every member of its zip archive unless a global setting turns it off; the
    checks in :func:`load_checkpoint` need them."""
    config = getattr(getattr(getattr(torch.utils, "serialization", None), "config", None), "save", None)
    before = getattr(config, "compute_crc32", None)
    if before is False:
        config.compute_crc32 = True
    try:
        yield
    finally:
        if before is False:
            config.compute_crc32 = before


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
        with _zip_crcs_on():
            torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's payload, after checking that the file is whole; raises :class:`CheckpointError`.

    Integrity: a torch checkpoint is a zip archive that stores a CRC-32 of every member (the pickled structure and
    each tensor's bytes), which ``torch.load`` does not check. Checking them all (``ZipFile.testzip``) covers the
    whole file at the cost of one read, needs no change of format (checkpoints written before stay loadable), and
    notices truncation (the central directory is at the end) as well as flipped bytes: CRC-32 catches every
    error burst up to 32 bits and other corruption bar one in four billion. The risk is corruption (disk, copy,
    an interrupted transfer), not tampering, which a checksum stored in the same file would not stop either.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(path, "it is a directory, not a file")
    try:
        if path.stat().st_size == 0:
            raise CheckpointError(path, "the file is empty")
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as e:
        raise CheckpointError(path, f"not a complete torch checkpoint (truncated, or another kind of file: {e})")
    except (OSError, EOFError, ValueError, RuntimeError) as e:
        raise CheckpointError(path, f"cannot be read ({_first_line(e)})") from None
    if bad is not None:
        raise CheckpointError(path, f"corrupted: the bytes of {bad} do not match their stored CRC-32 checksum")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(path, "not a sequnet training checkpoint (it stores objects other than tensors and "
                                    "plain values)") from None
    except (OSError, EOFError, RuntimeError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise CheckpointError(path, f"torch cannot load it ({_first_line(e)})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(path, f"not a sequnet training checkpoint of format {CHECKPOINT_FORMAT}")
    missing = [k for k in PAYLOAD_KEYS if k not in payload]
    if missing:
        raise CheckpointError(path, f"it lacks {', '.join(missing)}")
    return payload


def restore(payload: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
            data_order: torch.Generator) -> TrainState:
    """Load a checkpoint's weights, optimizer state and random states; return its training state."""
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    set_rng_states(payload["rng"], data_order)
    return TrainState(**payload["state"])


def check_resumable(payload: dict[str, Any], config: RunConfig, path, world: int = 1) -> None:
    """Refuse to resume ``config`` from a checkpoint of another configuration, or of more epochs than it asks."""
    saved, saved_world = payload["config"], payload.get("world_size", 1)
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
    done = payload["state"].get("epoch", 0)
    if config.epochs < done:
        raise ValueError(f"epochs={config.epochs}: the checkpoint {path} has trained {done} epochs already; "
                         f"resume with epochs {done} or more")


def resume_path(checkpoint, resume) -> Path | None:
    """The checkpoint to resume from: ``resume=True`` means ``checkpoint`` if it exists (else none), a path means
    that file."""
    if resume is True:
        if checkpoint is None:
            raise ValueError("resume=True needs checkpoint=PATH (the file to continue from)")
        return Path(checkpoint) if Path(checkpoint).exists() else None
    if resume:
        if not Path(resume).exists():
            raise FileNotFoundError(f"resume={str(resume)!r}: no such checkpoint")
        return Path(resume)
    return None


def checkpoint_in(folder: str | os.PathLike | None, config: RunConfig) -> Path | None:
    """``<folder>/<task>_<arch>.pt``, where ``sequnet train --out DIR`` keeps its checkpoints (``DIR/checkpoints``),
    or None without a folder. A notebook given that folder resumes (or merely reports) those runs."""
    if folder is None:
        return None
    if not isinstance(folder, (str, os.PathLike)) or not str(folder):
        raise ValueError(f"checkpoints={folder!r}: expected a folder path or None")
    return Path(folder) / f"{config.name}.pt"


# --- a run's files --------------------------------------------------------------------------------------------------

def lock_file(path: str | os.PathLike) -> Path:
    """The lock file of a run's output file: ``.<name>.lock`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


class RunLock:
    """Exclusive locks (``fcntl.flock``) on the lock files of a run's output files, held while it trains.

    The kernel releases a flock when its holder exits, however it ends (kill -9 included), so a stale lock file
    never blocks a later run; the file itself stays (deleting it would let two processes lock different files).
    A second training of the same files fails at once with :class:`RunFolderError` naming the holder."""

    def __init__(self, *paths: str | os.PathLike | None):
        self.paths = [Path(p) for p in dict.fromkeys(paths) if p is not None]
        self._files: list = []

    def __enter__(self) -> "RunLock":
        try:
            for path in self.paths:
                lock = lock_file(path)
                lock.parent.mkdir(parents=True, exist_ok=True)
                f = open(lock, "a+")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.seek(0)
                    holder = f.read().strip() or "another process"
                    f.close()
                    raise RunFolderError(f"{path.parent} is in use: {path.name} is being written by another "
                                         f"training ({holder}; lock {lock}). Wait for it to end, or choose "
                                         "another --out / --checkpoint") from None
                f.seek(0)
                f.truncate()
                f.write(f"pid {os.getpid()} on {platform.node()} since "
                        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
                f.flush()
                self._files.append(f)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for f in self._files:
            f.close()                                   # closing the file releases its flock
        self._files = []


def refuse_existing(config: RunConfig, record: Path | None, checkpoint: Path | None, resume, overwrite: bool) -> None:
    """Refuse to start a run whose record or checkpoint exists already, unless it resumes or overwrites it."""
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: resume continues the run, overwrite replaces it")
    if record is not None and record.is_dir():
        raise RunFolderError(f"{record} is a directory; the run {config.name} writes its record there")
    if checkpoint is not None and checkpoint.is_dir():
        raise CheckpointError(checkpoint, "it is a directory, not a file")
    if resume or overwrite:
        return
    existing = [str(p) for p in (record, checkpoint) if p is not None and p.exists()]
    if existing:
        raise RunFolderError(f"a run of {config.name} exists already ({', '.join(existing)}): resume it "
                             "(--resume, resume=True) or replace it (--overwrite, overwrite=True)")


def finished_record(path: Path | None) -> bool:
    """Whether ``path`` holds the record of a run that ended "ok" (an early stop must not replace it)."""
    if path is None or not path.is_file():
        return False
    try:
        return ResultRecord.load(path).status == "ok"
    except (OSError, ValueError, TypeError):
        return False
