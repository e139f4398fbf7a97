"""What each scale means, in one table: ``SCALES[name]`` says what a run at that scale is for, how long the
batch runner lets its notebooks run, what each task trains (``PRESETS``) and how far the complexity sweep goes.
Everything else (the trainer's ``resolve``, the runner, the book's banners, the complexity chapter) reads it from
here; the piano run's generations and budgets per scale are ``sequnet.experiment.piano_run.PRESETS``.

* ``smoke`` – seconds on a CPU: tiny models, two epochs of a few steps. CI executes every notebook at this scale;
  the numbers mean nothing.
* ``demo`` – the default on a CPU machine: narrow models with the paper's depth, kernel and window lengths, a few
  short epochs. The loss falls visibly; it is not a reproduction.
* ``paper`` – Table 3 exactly, 100 epochs, the paper's batching, every window of every split, on a GPU. A run
  that is shorter or changed says so in its record (``scales.deviations``) and is never called paper scale.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sequnet.core.configs import MUSIC_TASKS

TRAINABLE_TASKS = ("char_ptb", "word_ptb") + MUSIC_TASKS + ("piano_audio",)


@dataclass(frozen=True)
class Preset:
    """One task at one scale: model changes per arch (applied to the paper setting) and the run's extent."""
    model: dict[str, dict[str, Any]]
    epochs: int
    batch_size: int
    max_steps_per_epoch: int | None
    eval_limit: int | None
    lr: float | None = None            # None: the setting's (Table 3) rate
    clip: float | None | str = "table" # "table": the setting's clipping
    warmup_steps: int = 10
    cpu_threads: int | None = 1
    time_budget_s: float | None = None


def _same(**changes) -> dict[str, dict[str, Any]]:
    return {"tcn": dict(changes), "sequnet": dict(changes)}


# Widths at demo scale keep the TCN and the Seq-U-Net within a few per cent of each other in parameters, as
# Table 3 does at full size (see tests). Depth, kernel and window lengths stay the paper's.
PRESETS: dict[tuple[str, str], Preset] = {
    ("char_ptb", "smoke"): Preset(_same(hidden=8, emsize=8), epochs=2, batch_size=4, max_steps_per_epoch=3,
                                  eval_limit=2, lr=2e-3, clip=None, warmup_steps=1),
    ("char_ptb", "demo"): Preset({"tcn": dict(hidden=64, emsize=32), "sequnet": dict(hidden=42, emsize=32)},
                                 epochs=6, batch_size=8, max_steps_per_epoch=50, eval_limit=32, lr=3e-3,
                                 clip=None),
    ("word_ptb", "smoke"): Preset(_same(hidden=8, emsize=8), epochs=2, batch_size=4, max_steps_per_epoch=3,
                                  eval_limit=2, lr=2e-3, clip=None, warmup_steps=1),
    ("word_ptb", "demo"): Preset({"tcn": dict(hidden=64, emsize=64), "sequnet": dict(hidden=40, emsize=64)},
                                 epochs=6, batch_size=8, max_steps_per_epoch=20, eval_limit=8, lr=3e-3,
                                 clip=None),
}
for _task in MUSIC_TASKS:
    PRESETS[_task, "smoke"] = Preset(_same(hidden=8), epochs=2, batch_size=1, max_steps_per_epoch=3,
                                     eval_limit=3, lr=2e-3, clip=None, warmup_steps=1)
# JSB's models are small enough to train at full size on a CPU (on 120 chorales an epoch, 40 per evaluated split,
# so that the demo book stays within ten minutes); the larger datasets use narrower models and
# a sample of the sequences per epoch.
PRESETS["jsb", "demo"] = Preset(_same(), epochs=8, batch_size=1, max_steps_per_epoch=120, eval_limit=40)
for _task in ("nottingham", "muse", "piano_midi"):
    PRESETS[_task, "demo"] = Preset({"tcn": dict(hidden=48), "sequnet": dict(hidden=34)}, epochs=10, batch_size=1,
                                    max_steps_per_epoch=60, eval_limit=20, lr=2e-3, clip=None)
# Raw audio: models of matched receptive field and parameters (as Table 2), trained for equal wall-clock budgets
# that end the run; `epochs` only bounds it. Demo: residual Seq-U-Net F=32, L=7, D=2 (564k parameters, 2028
# past samples) against WaveNet 2 x 10 layers, 58 residual / 128 skip channels (555k, 2046), 1024 targets.
PRESETS["piano_audio", "smoke"] = Preset(
    {"sequnet": dict(hidden=8, levels=3, depth=1, target_output=64),
     "wavenet": dict(hidden=8, levels=6, blocks=1, skip=16, target_output=64)},
    epochs=2, batch_size=4, max_steps_per_epoch=3, eval_limit=4, warmup_steps=1, time_budget_s=60.0)
PRESETS["piano_audio", "demo"] = Preset(
    {"sequnet": dict(hidden=32, levels=7, target_output=1024),
     "wavenet": dict(hidden=58, levels=10, blocks=2, skip=128, target_output=1024)},
    epochs=1000, batch_size=8, max_steps_per_epoch=10, eval_limit=32, lr=2e-3, time_budget_s=50.0)
# Paper scale is Table 2's models, batch 16, the learning rate and the paper's 246k iterations (4920 reporting
# intervals of 50 steps). No time budget: a run given one trains for less than the paper, and its record says so
# (``deviations`` and ``extent``), so that it is never called paper scale.
PAPER_EXTENT = {"piano_audio": dict(epochs=4920, max_steps_per_epoch=50)}




@dataclass(frozen=True)
class Sweep:
    """The complexity chapter's sweep of Seq-U-Net against WaveNet over input length and depth: the audio models'
    widths (``None``: Table 2's), the batch, and the lengths and depths measured."""
    batch: int
    length_levels: int                  # Seq-U-Net levels in the length sweep (WaveNet: matched layers)
    outputs: tuple[int, ...]            # scored outputs per window in the length sweep
    depth_levels: tuple[int, ...]       # Seq-U-Net levels in the depth sweep (WaveNet: matched layers)
    depth_input: int                    # input length (at most) in the depth sweep
    steps: int
    warmup: int
    widths: dict[str, int] = field(default_factory=dict)   # AudioModels fields; empty = Table 2's models


@dataclass(frozen=True)
class Scale:
    name: str
    summary: str                        # what its numbers are (the book's banner and the command-line help)
    reproduces_paper: bool              # only paper scale's runs may be compared with the paper's numbers
    cell_s: int                         # papermill --execution-timeout: the longest one cell may run
    notebook_s: int                     # wall clock for one notebook, kernel start-up included
    sweep: Sweep


# A cell that runs past its limit is almost always the nbclient hang (upstream nbclient#312), not real work, so
# the limits sit well above what each scale needs. Paper-scale cells train for hours on a GPU.
SCALES: dict[str, Scale] = {
    "smoke": Scale(
        "smoke", "tiny models and data, a check that the pipeline runs", False, cell_s=300, notebook_s=900,
        # seconds on a CPU; the numbers only show that the pipeline works
        sweep=Sweep(batch=1, length_levels=3, outputs=(64, 256, 1024), depth_levels=(2, 3, 4), depth_input=1024,
                    steps=1, warmup=1,
                    widths=dict(features=8, wavenet_channels=8, skip_channels=32, end_channels=32))),
    "demo": Scale(
        "demo", "models and data small enough for a CPU", False, cell_s=1800, notebook_s=3600,
        # half a minute on one CPU core: the paper's architectures, narrower, lengths up to 16k outputs and up to
        # 7 levels (the demo book's ten minutes on two cores leave no more)
        sweep=Sweep(batch=1, length_levels=6, outputs=(256, 1024, 4096, 16384),
                    depth_levels=tuple(range(2, 8)), depth_input=8192, steps=3, warmup=1,
                    widths=dict(features=24, wavenet_channels=16, skip_channels=64, end_channels=64))),
    "paper": Scale(
        "paper", "the paper's settings (Tables 2 and 3) and length of training", True, cell_s=12 * 3600,
        notebook_s=48 * 3600,
        # Table 2's models at Table 1's batch of 2 on a GPU; 5000 outputs is the paper's training window
        sweep=Sweep(batch=2, length_levels=11, outputs=(1024, 5000, 16384, 49152, 131072, 196608),
                    depth_levels=tuple(range(2, 12)), depth_input=131072, steps=20, warmup=3)),
}
SCALE_NAMES = tuple(SCALES)


def help_text() -> str:
    """The scales for a command's help: ``smoke (tiny models ...), demo (...), paper (...)``."""
    return ", ".join(f"{s.name} ({s.summary})" for s in SCALES.values())
