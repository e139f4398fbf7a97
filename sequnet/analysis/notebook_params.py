"""The one check of a notebook's parameters, run in each notebook's first cell after the ``parameters`` cell.

Papermill injects parameters as plain Python values, so a typo (``scale="papr"``, ``seed=-1``,
``device="gpu"``) would otherwise surface deep inside training, minutes later. :func:`check_parameters` checks
every parameter the notebooks share in one place, raises a ``ValueError`` that names the parameter, the value and
what is allowed, creates ``out_dir`` and resolves ``device``. A notebook passes only the parameters it has.
Overrides of a scale's preset (epochs, lr, ...) are checked by ``sequnet.experiment.scales.resolve``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sequnet.experiment.scales import check_scale, resolve_device


@dataclass(frozen=True)
class NotebookParameters:
    scale: str
    out: Path                        # out_dir, created
    device: torch.device | None      # resolved ("auto" -> cuda or cpu); None when the notebook has no device
    task: str | None                 # the chosen task of a notebook run once per task


def _folder(name: str, value: Any) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{name}={value!r}: expected a folder path (a non-empty string)")
    return Path(value)


def check_parameters(scale: Any, out_dir: Any, device: Any = None, *, task: Any = None,
                     tasks: tuple[str, ...] = (), progress: Any = False, seed: Any = None, audio_dir: Any = None,
                     checkpoints: Any = None, paper_needs_gpu: str = "",
                     optional_folders: dict[str, Any] | None = None) -> NotebookParameters:
    """Check a notebook's parameters before any work; see the module docstring.

    ``tasks``: the values ``task`` may take (a notebook run once per task); ``paper_needs_gpu``: why this notebook
    cannot run at paper scale without CUDA (empty: it can); ``optional_folders``: other parameters, by name, that
    are a folder path or None.
    """
    scale = check_scale(scale)
    out = _folder("out_dir", out_dir)
    if tasks and task not in tasks:
        raise ValueError(f"task={task!r}: choose one of {', '.join(map(repr, tasks))}")
    if not isinstance(progress, bool):
        raise ValueError(f"progress={progress!r}: expected True or False")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed={seed!r}: expected a non-negative integer (or None for the preset's)")
    if audio_dir is not None and not Path(_folder("audio_dir", audio_dir)).is_dir():
        raise ValueError(f"audio_dir={audio_dir!r}: no such folder; give a folder of FLAC/WAV recordings or None")
    if checkpoints is not None:
        _folder("checkpoints", checkpoints)
    for name, value in (optional_folders or {}).items():
        if value is not None:
            _folder(name, value)
    dev = None if device is None else resolve_device(device)      # raises naming the allowed values
    # SEQUNET_RENDER_COMMITTED=1: sequnet.publish.rerender runs only the cells showing committed files, no GPU
    rendering = os.environ.get("SEQUNET_RENDER_COMMITTED") == "1"
    if paper_needs_gpu and scale == "paper" and (dev is None or dev.type != "cuda") and not rendering:
        raise ValueError(f"scale='paper' needs a GPU here (device={device!r} resolved to {dev}): {paper_needs_gpu}")
    out.mkdir(parents=True, exist_ok=True)
    return NotebookParameters(scale=scale, out=out, device=dev, task=task if tasks else None)
