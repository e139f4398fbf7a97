"""Run configurations at three scales, plus the overrides a user or the batch runner applies on top.

* ``smoke`` – seconds on a CPU: tiny models, two epochs of a few steps, evaluation on a few windows/sequences.
  CI executes every notebook at this scale; the numbers mean nothing.
* ``demo`` – the default on a CPU machine: narrow models with the paper's depth, kernel and window lengths, a
  few short epochs, evaluation on a prefix of each split. The loss falls visibly; it is not a reproduction.
* ``paper`` – Table 3 exactly (``paper_setting``), 100 epochs, the paper's batching, every window of every split.

``resolve(task, arch, scale, **overrides)`` returns a :class:`RunConfig`; an override of ``None`` keeps the preset
(notebook parameters default to ``None``). Bad values raise ``ValueError`` naming the parameter and what it accepts.

Why smoke and demo train with one CPU thread: their models are small, so each operation is short and gains
little from a second thread (about 1.4x for the language demos on an idle 2-core machine), while on a busy
machine two OpenMP threads wait for each other at every operation and a step can take 10-100 times longer
(measured here). ``cpu_threads`` overrides it; paper scale leaves torch's default.

Why raw piano audio can train for a wall-clock budget: the paper trained both audio models for 246k iterations of
batch 16 (about a GPU-week each), out of reach here. Its claim is about cost (Seq-U-Net 4x faster per step), so the
piano run (``sequnet.experiment.piano_run``) gives each model a ``time_budget_s`` of training steps and the run ends
there (status "ok"); an "epoch" of the endless stream of random excerpts is only a reporting interval of
``max_steps_per_epoch`` steps. Paper scale's preset has no budget: 4920 epochs of 50 steps, the paper's 246k
iterations, so that a budgeted run's record lists the budget among its deviations.

Why the demo scale uses one learning rate for both models: Table 3's rates were tuned by 20 full 100-epoch runs
of the full-size models; for a few hundred steps of a narrow model they are far too small (char TCN: 1.4e-4) or
not comparable. The music demos keep Table 3's rates and clipping, because JSB's models are the paper's own.

Seeds: ``seed`` (default 1111, the official scripts' default) seeds the model's initialisation, the data order,
dropout and every other random draw (:func:`sequnet.experiment.checkpoints.seed_everything`). It is the run's
identity, not a setting of the paper's procedure: a run with another seed is still at its scale's preset (it is
not in :func:`deviations`), its record names it (``ResultRecord.seed``), and its files get their own names
(``RunConfig.name``: ``jsb_tcn`` for the default seed, ``jsb_tcn_seed2`` for seed 2), so that several seeds of one
cell can be trained into one folder side by side.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from sequnet.core.configs import ARCHS, MUSIC_TASKS, PaperSetting, UnknownConfigError, paper_setting
from sequnet.experiment.tasks import check_batch_size
from sequnet.experiment.presets import PAPER_EXTENT, PRESETS, SCALE_NAMES, Preset, TRAINABLE_TASKS

# The official scripts' default seed: runs with it keep the plain names (``jsb_tcn``) they had before seeds were
# part of the names.
DEFAULT_SEED = 1111
# The official LR rule compares with `>` in the char and music scripts and with `>=` in the word script.
STRICT_LR_RULE = {task: task != "word_ptb" for task in TRAINABLE_TASKS}


@dataclass(frozen=True)
class RunConfig:
    task: str
    arch: str
    scale: str
    setting: PaperSetting              # the model (Table 3 at paper scale, narrower below it)
    epochs: int
    batch_size: int                    # training streams (language); 1 whole sequence (music)
    lr: float
    clip: float | None                 # gradient-norm clipping; None = off
    patience: int | None               # the LR rule's P; None = constant learning rate
    strict_lr_rule: bool               # halve when valid > max(last P) (True) or >= (False, word PTB)
    max_steps_per_epoch: int | None    # None = every window/sequence of the training split
    eval_limit: int | None             # windows (language) or sequences (music) per evaluated split; None = all
    device: str = "auto"               # "auto" = cuda when available, else cpu
    seed: int = DEFAULT_SEED           # every random draw of the run (not a preset setting: see the module doc)
    bf16: bool = False                 # bfloat16 autocast for forward and loss
    warmup_steps: int = 10             # training steps left out of the time-per-step median
    cpu_threads: int | None = None     # torch threads while training on the CPU; None = torch's default
    time_budget_s: float | None = None # stop (status "ok") once training steps took this long; None = no budget
    cuda_graphs: bool = True           # on a GPU, replay fixed-shape training steps from a CUDA graph (same maths)
    fast_kernels: bool = True          # on a GPU, audio models run channels-last with the fused gate (same maths)
    compile: bool = False              # torch.compile the model and loss for training (same maths, other rounding)

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def name(self) -> str:
        """The run's file name: ``<task>_<arch>``, plus ``_seed<N>`` for a seed other than the default."""
        return run_name(self.task, self.arch, self.seed)

    def resolved_device(self) -> torch.device:
        return resolve_device(self.device)


def run_name(task: str, arch: str, seed: int = DEFAULT_SEED) -> str:
    """``jsb_tcn`` for the default seed, ``jsb_tcn_seed2`` for seed 2: each seed of a cell has its own files."""
    return f"{task}_{arch}" if seed == DEFAULT_SEED else f"{task}_{arch}_seed{seed}"


# --- validation -------------------------------------------------------------------------------------------------

def _choices(values) -> str:
    return ", ".join(repr(v) for v in values)


def _positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name}={value!r}: expected a positive integer{extra}")
    return value


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r}: expected a non-negative integer")
    return value


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r}: expected a positive finite number")
    return float(value)


def _clip(value: Any) -> float | None:
    """None (or a number <= 0, the official scripts' -1) turns clipping off."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"clip={value!r}: expected a positive number (the maximal gradient norm), "
                         "or 0 / a negative number / None for no clipping")
    return float(value) if value > 0 else None


def resolve_device(device: Any) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as given (checked)."""
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device={device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"device={device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N' ({e})") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available here; use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


def check_scale(scale: Any) -> str:
    if scale not in SCALE_NAMES:
        raise ValueError(f"scale={scale!r}: choose one of {_choices(SCALE_NAMES)}")
    return scale


def check_task(task: Any, dataset: Any = None) -> str:
    """The trainable task; ``task="music"`` picks the music dataset from ``dataset`` (default jsb)."""
    if dataset is not None:
        if task in ("music",) + MUSIC_TASKS:
            if dataset not in MUSIC_TASKS:
                raise ValueError(f"dataset={dataset!r}: choose one of {_choices(MUSIC_TASKS)}")
            if task != "music" and task != dataset:
                raise ValueError(f"dataset={dataset!r} contradicts task={task!r}")
            return dataset
        if not (task in ("char_ptb", "word_ptb") and dataset == "ptb"):
            raise ValueError(f"dataset={dataset!r}: task {task!r} only has the dataset 'ptb'")
    if task == "music":
        return "jsb"
    if task not in TRAINABLE_TASKS:
        raise ValueError(f"task={task!r}: choose one of {_choices(TRAINABLE_TASKS + ('music',))}")
    return task


OVERRIDES = ("epochs", "batch_size", "lr", "clip", "device", "seed", "dataset", "max_steps_per_epoch", "eval_limit",
             "patience", "bf16", "warmup_steps", "cpu_threads", "time_budget_s", "cuda_graphs",
             "fast_kernels", "compile")


def resolve(task: str, arch: str, scale: str = "demo", **overrides: Any) -> RunConfig:
    """The run configuration of ``task`` and ``arch`` at ``scale``, with ``overrides`` (None = keep) on top.

    Overrides: epochs, batch_size, lr, clip (<= 0 or None turns clipping off), device, seed, dataset (music),
    max_steps_per_epoch, eval_limit, patience, bf16, warmup_steps, cpu_threads, time_budget_s (seconds of
    training steps; 0 removes the budget), cuda_graphs, fast_kernels, compile.
    """
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ValueError(f"unknown override(s) {', '.join(unknown)}; allowed: {', '.join(OVERRIDES)}")
    task = check_task(task, overrides.pop("dataset", None))
    scale = check_scale(scale)
    try:
        setting = paper_setting(task, arch)
    except UnknownConfigError:
        raise ValueError(f"arch={arch!r}: choose one of {_choices(ARCHS[task])}") from None
    given = {k: v for k, v in overrides.items() if v is not None}

    if scale == "paper":
        config = RunConfig(task, arch, scale, setting, epochs=setting.epochs,
                           batch_size=1 if setting.kind == "music" else setting.batch_size, lr=setting.lr,
                           clip=setting.clip, patience=setting.patience, strict_lr_rule=STRICT_LR_RULE[task],
                           max_steps_per_epoch=None, eval_limit=None).replace(**PAPER_EXTENT.get(task, {}))
    else:
        p = PRESETS[task, scale]
        config = RunConfig(task, arch, scale, setting.replace(**p.model[arch]), epochs=p.epochs,
                           batch_size=p.batch_size, lr=setting.lr if p.lr is None else p.lr,
                           clip=setting.clip if p.clip == "table" else p.clip, patience=setting.patience,
                           strict_lr_rule=STRICT_LR_RULE[task], max_steps_per_epoch=p.max_steps_per_epoch,
                           eval_limit=p.eval_limit, warmup_steps=p.warmup_steps, cpu_threads=p.cpu_threads,
                           time_budget_s=p.time_budget_s)

    checked: dict[str, Any] = {}
    for name in ("epochs", "batch_size", "patience", "max_steps_per_epoch", "eval_limit", "cpu_threads"):
        if name in given:
            checked[name] = _positive_int(name, given[name])
    if "warmup_steps" in given:
        checked["warmup_steps"] = _count("warmup_steps", given["warmup_steps"])
    if "lr" in given:
        checked["lr"] = _positive_float("lr", given["lr"])
    if "clip" in given:                          # None keeps the preset; 0 or -1 turns clipping off
        checked["clip"] = _clip(given["clip"])
    if "device" in given:
        resolve_device(given["device"])
        checked["device"] = str(given["device"])
    if "seed" in given:
        checked["seed"] = _count("seed", given["seed"])
    if "time_budget_s" in given:                 # None keeps the preset; 0 removes the budget
        budget = given["time_budget_s"]
        off = budget == 0 and not isinstance(budget, bool)
        checked["time_budget_s"] = None if off else _positive_float("time_budget_s", budget)
    for name in ("bf16", "cuda_graphs", "fast_kernels", "compile"):
        if name in given:
            if not isinstance(given[name], bool):
                raise ValueError(f"{name}={given[name]!r}: expected True or False")
            checked[name] = given[name]
    check_batch_size(setting.kind, checked.get("batch_size", 1))
    return config.replace(**checked)


def deviations(config: RunConfig) -> dict[str, Any]:
    """The fields of ``config`` that differ from its scale's preset (where it runs, how it is timed and its seed
    aside): a record at paper scale with, say, ``epochs=5`` must say so; one with ``seed=2`` is another sample
    of the same procedure."""
    preset = resolve(config.task, config.arch, config.scale)
    ignore = ("device", "cpu_threads", "warmup_steps", "cuda_graphs", "fast_kernels", "compile", "seed")
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if f.name not in ignore and getattr(config, f.name) != getattr(preset, f.name)}


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Inverse of ``RunConfig.to_dict`` (a checkpoint or a result record stores the dict)."""
    data = dict(data)
    data["setting"] = PaperSetting(**data["setting"])
    return RunConfig(**data)
