"""The raw piano experiment (the paper's section 5.2) as one resumable run: WaveNet and the residual Seq-U-Net
trained on the same fast path, compared at equal iterations and at equal wall-clock time, then continuing real
piano for the stability study and the listening test.

    python -m sequnet.experiment.piano_run RUN_DIR --audio-dir DIR --budget-s 600 --limit-s 540

Each call does what is left, in this order, and stops (exit status 75, "call again") before a stage that would
not end within ``--limit-s``; every stage keeps its results on disk, so a GPU machine's 10-minute commands can
finish the run between them:

1. **WaveNet** trains for ``budget_s`` seconds of training steps (``sequnet.experiment.training.train``: batch 16,
   5000 targets, Adam 5e-4 as the paper; on a GPU bf16 autocast, channels-last, the fused gate and CUDA graphs),
   a checkpoint and its record after every ``report_every`` steps. It reaches N_w steps.
2. **Seq-U-Net** trains the same way for ``sequnet_budget_s`` (default: the same budget); its weights after exactly
   N_w steps are kept (``checkpoints/piano_audio_sequnet_at_N.pt``) for the equal-iteration comparison.
3. Seq-U-Net at N_w steps is evaluated like the final models: ``comparison.json`` then holds (a) equal iterations
   (both at N_w) and (b) equal time (each model at the end of its budget).
4. Generation (cached step-wise inference, CUDA graphs on a GPU): the primes of every ``generation`` set (8 primes of
   1.5 s continued for 30 s at paper scale) and of the listening test's ``items`` (20 primes, 5 s) as one batch
   per model, real primes from the test pieces continued at temperature 0.95; each set is stored as mu-law ids in
   ``generations/<set>.npz`` beside the real continuation as soon as both models have reached its length.

The records (``records/piano_audio_{wavenet,sequnet}.json``) carry ``extent``: the steps, their fraction of the
paper's 246,000 iterations and the hours of audio (with the renderer and SoundFont of the folder's
``manifest.json`` where it has one). ``curves.json`` holds both training curves against steps and seconds.

The listening items are written from ``generations/items.npz`` (``sequnet.analysis.piano.write_items``, on any
machine: no checkpoints needed), with their own primes, never the chapter's excerpts of the long set.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from sequnet.core.configs import build_model
from sequnet.experiment.checkpoints import load_checkpoint
from sequnet.experiment.piano_compare import comparison, curves, total_steps
from sequnet.experiment.piano_data import (GenerationSet, audio_extent, audio_folder, generate_sets,  # noqa: F401
                                           generation_path, load_generation, make_tasks, write_set)
from sequnet.experiment.records import ResultRecord, training_extent
from sequnet.experiment.scales import check_scale, resolve
from sequnet.experiment.training import build, record_path, train

ORDER = ("wavenet", "sequnet")        # WaveNet first: its step count is the equal-iteration point
EXIT_AGAIN = 75                       # EX_TEMPFAIL: the run is not finished, call again
ITEMS_SET = "items"                   # the generation set of the listening test's items


@dataclasses.dataclass(frozen=True)
class PianoRun:
    """What one run trains, evaluates and generates (stored as ``run.json``; a later call must ask the same)."""
    scale: str = "paper"                       # the models: Table 2's at "paper", tiny at "smoke"
    budget_s: float = 600.0                    # seconds of training steps for WaveNet
    sequnet_budget_s: float | None = None      # for Seq-U-Net; None: budget_s (equal wall-clock time)
    audio_dir: str | None = None               # recordings in train/ and test/ (+ manifest.json), relative to the
    #                                            run folder unless absolute (see relative_audio); None: six pieces
    report_every: tuple[tuple[str, int], ...] = (("wavenet", 100), ("sequnet", 400))   # steps per record point
    eval_windows: int | None = 2048            # evenly spaced test windows (and as many train windows); None: all
    bf16: bool = True                          # on a GPU (the CPU trains in float32)
    compile: bool = False                      # torch.compile both models for their training steps
    generation: tuple[tuple[str, GenerationSet], ...] = (("long", GenerationSet(8, 1.5, 30.0)),)
    items: GenerationSet = GenerationSet(20, 1.5, 5.0)      # the listening test's, generated with the others
    temperature: float = 0.95                  # the paper's
    seed: int = 0                              # primes and sampling noise

    def __post_init__(self):
        positive = {"budget_s": self.budget_s, "sequnet_budget_s": self.sequnet_budget_s,
                    "eval_windows": self.eval_windows, "temperature": self.temperature}
        for name, value in positive.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or
                                      not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name}={value!r}: expected a positive number"
                                 + ("" if name in ("budget_s", "temperature") else " or None"))
        for name, g in self.generation + ((ITEMS_SET, self.items),):
            if g.n < 1 or g.prime_s <= 0 or g.seconds <= 0:
                raise ValueError(f"generation set {name!r}: {g} needs at least one prime and positive lengths")
            if g.prime_s != self.items.prime_s:
                raise ValueError(f"generation set {name!r}: primes of {g.prime_s} s, the items' of "
                                 f"{self.items.prime_s} s; all sets are generated as one batch, so give them "
                                 f"one length")
        if ITEMS_SET in dict(self.generation):
            raise ValueError(f"generation: {ITEMS_SET!r} is the listening items' set; name the others differently")

    def budget(self, arch: str) -> float:
        return self.budget_s if arch == "wavenet" or self.sequnet_budget_s is None else self.sequnet_budget_s


# The smoke scale: tiny models, a few seconds of audio, seconds on a CPU (CI runs it).
# Seq-U-Net's epochs of 4 steps put the equal-iteration point (WaveNet's 6 steps) inside its second epoch; the
# listening notebook measures the items in 0.5 s windows, so primes are no shorter.
SMOKE = PianoRun(scale="smoke", budget_s=60.0, report_every=(("wavenet", 3), ("sequnet", 4)), eval_windows=4,
                 generation=(("long", GenerationSet(2, 0.5, 0.3)),), items=GenerationSet(2, 0.5, 0.1))


# The demo scale: the demo preset's models (about 0.56 M parameters each) for 40 s each on a CPU, and short
# generations (a demo WaveNet generates about 300 steps/s at batch 4 on one busy CPU core, the Seq-U-Net 2,200).
DEMO = PianoRun(scale="demo", budget_s=40.0, report_every=(("wavenet", 10), ("sequnet", 10)), eval_windows=32,
                generation=(("long", GenerationSet(4, 1.5, 2.5)),), items=GenerationSet(4, 1.5, 1.0))
PRESETS = {"smoke": SMOKE, "demo": DEMO, "paper": PianoRun()}


def preset(scale: str, **changes: Any) -> PianoRun:
    """The run of ``scale`` with ``changes`` on top (None keeps the preset)."""
    return dataclasses.replace(PRESETS[check_scale(scale)], **{k: v for k, v in changes.items() if v is not None})


def relative_audio(audio_dir: str | os.PathLike | None, run_dir: str | os.PathLike) -> str | None:
    """``audio_dir`` (from the working directory) as the run stores it: relative to the run folder, so that
    ``run.json`` names no machine path and the run can be continued from any working directory."""
    return None if audio_dir is None else os.path.relpath(Path(audio_dir).resolve(), Path(run_dir).resolve())


def open_run(run_dir: str | os.PathLike, scale: str, *, audio_dir: str | os.PathLike | None = None,
             **changes: Any) -> PianoRun:
    """The run a folder holds (its ``run.json``), else the preset of ``scale`` with ``audio_dir`` (from the
    working directory) and ``changes``."""
    if (Path(run_dir) / "run.json").is_file():
        return load_run(run_dir)
    return preset(scale, audio_dir=relative_audio(audio_dir, run_dir), **changes)


def run_configs(run: PianoRun, device: str = "auto") -> dict:
    """The trainer's configuration of each model: the scale's preset with the run's budget, reporting interval,
    evaluation windows and, on a GPU, bf16; both or neither compiled (fast kernels and CUDA graphs are the
    trainer's defaults on a GPU)."""
    every = dict(run.report_every)
    configs = {}
    for arch in ORDER:
        config = resolve("piano_audio", arch, run.scale, device=device, time_budget_s=run.budget(arch),
                         max_steps_per_epoch=every[arch], eval_limit=run.eval_windows)
        configs[arch] = config.replace(bf16=run.bf16 and config.resolved_device().type == "cuda",
                                       compile=run.compile)
    return configs


def _json_write(path: Path, data: Any) -> Path:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=1, default=float) + "\n")
    os.replace(partial, path)
    return path


def _as_json(run: PianoRun) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(run)))


def claim(run: PianoRun, run_dir: Path) -> None:
    """Write ``run.json``, or check that the run folder holds this run (a changed run needs a new folder)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "run.json"
    if path.is_file():
        # a field newer than the folder's run.json (such as compile) has its default there
        saved, now = _as_json(PianoRun()) | json.loads(path.read_text()), _as_json(run)
        for data in (saved, now):       # the same recordings, however the path is spelt
            folder = audio_folder(data.get("audio_dir"), run_dir)
            data["audio_dir"] = folder and str(folder.resolve())
        differ = [f"{k}: folder {saved.get(k)!r}, now {v!r}" for k, v in now.items() if saved.get(k) != v]
        if differ:
            raise ValueError(f"{run_dir} holds another piano run ({'; '.join(differ)}); give a new run folder, or "
                             f"the settings in {path}")
    else:
        _json_write(path, _as_json(run))


class _Snapshot:
    """The task, whose training stream also saves the model's weights once exactly ``at`` steps are done (the
    equal-iteration point). The trainer asks for batch k (from 0) of an epoch once the epoch's first k steps are
    done, and asks for one batch more than it trains on, so the weights at that moment are those after
    ``done + k`` steps; ``loss`` shows the model being trained."""

    def __init__(self, task, at: int, done: int, path: Path):
        self._task, self._at, self._done, self._path = task, at, done, path
        self._model, self._asked = None, 0

    def __getattr__(self, name):
        return getattr(self._task, name)

    def to(self, device):
        self._task.to(device)
        return self

    def loss(self, model, batch):
        self._model = getattr(model, "_orig_mod", model)    # compiled: the model itself, whose keys are plain
        return self._task.loss(model, batch)

    def train_batches(self, generator):
        self._done += max(self._asked - 1, 0)        # the steps of the previous epoch
        self._asked = 0
        for batch in self._task.train_batches(generator):
            if self._done + self._asked == self._at and self._model is not None and not self._path.exists():
                save_weights(self._path, self._model.state_dict(), self._at)
            self._asked += 1
            yield batch


def save_weights(path: Path, state: dict, steps: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    torch.save({"model": {k: v.detach().cpu().clone() for k, v in state.items()}, "steps": steps}, partial)
    os.replace(partial, path)
    return path


def _train(config, task, run: PianoRun, run_dir: Path, limit_s: float | None, log, progress,
           snapshot_at: int | None = None, reserve_s: float = 0.0) -> ResultRecord:
    """Train (or continue) one model within ``limit_s`` seconds; with ``limit_s`` <= 0 one reporting interval.
    ``reserve_s`` is kept back for the final evaluation only when the budget would end in this call without
    leaving that much: a call that cannot finish the budget trains to its end, wasting nothing."""
    checkpoint = run_dir / "checkpoints" / f"{config.name}.pt"
    payload = load_checkpoint(checkpoint) if checkpoint.is_file() else None
    done = 0 if payload is None else sum(h["steps"] for h in payload["state"]["history"])
    if limit_s is not None and limit_s > 0 and config.time_budget_s is not None:
        remaining = config.time_budget_s - (0.0 if payload is None else payload["state"]["train_time_s"])
        if remaining < limit_s < remaining + reserve_s:
            limit_s -= reserve_s         # may leave none: one reporting interval, as a call always does
    if snapshot_at is not None:
        snap = snapshot_path(run_dir, snapshot_at)
        if done == snapshot_at and not snap.exists():
            save_weights(snap, payload["model"], done)
        elif done > snapshot_at and not snap.exists():
            raise ValueError(f"{checkpoint} is past step {snapshot_at} without the weights at that step "
                             f"({snap}); start the Seq-U-Net again (remove the checkpoint)")
        task = _Snapshot(task, snapshot_at, done, snap)
    one = limit_s is not None and limit_s <= 0
    epochs_done = 0 if payload is None else payload["state"]["epoch"]
    del payload
    trained = train(config, out_dir=run_dir, checkpoint=checkpoint, resume=True, task=task, log=log,
                    progress=progress, time_limit_s=None if one else limit_s,
                    stop_after_epoch=epochs_done + 1 if one else None, final_splits=("train", "test"))
    record = trained.record
    data = audio_extent(task, audio_folder(run.audio_dir, run_dir))
    record.extent = training_extent("piano_audio", total_steps(record), **data)
    if trained.record_path is not None:
        record.save(trained.record_path)
    return record


def snapshot_path(run_dir: Path, steps: int) -> Path:
    return run_dir / "checkpoints" / f"piano_audio_sequnet_at_{steps}.pt"


def _evaluate_snapshot(config, task, path: Path, device) -> dict[str, float]:
    model = build(config, device)[0]
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True)["model"])
    return {split: task.metric(task.evaluate(model, split, config.eval_limit)) for split in ("train", "test")}


def trained_models(run_dir: str | os.PathLike, device: str = "auto", *, plain: bool = True) -> dict:
    """The final model of each architecture from the run's checkpoints, in eval mode on ``device`` (``plain``:
    without the training's channels-last and fused-gate switches, as generation wants them)."""
    run = load_run(run_dir)
    models = {}
    for arch, config in run_configs(run, device).items():
        path = Path(run_dir) / "checkpoints" / f"{config.name}.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the run has not trained {arch} yet (run the piano run on)")
        dev = config.resolved_device()
        model = build_model(config.setting).to(dev) if plain else build(config, dev)[0]
        model.load_state_dict(load_checkpoint(path)["model"])
        models[arch] = model.eval()
    return models


def load_run(run_dir: str | os.PathLike) -> PianoRun:
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a piano run folder (run sequnet.experiment.piano_run first)")
    data = json.loads(path.read_text())
    data["report_every"] = tuple(tuple(x) for x in data["report_every"])
    data["generation"] = tuple((name, GenerationSet(**g)) for name, g in data["generation"])
    data["items"] = GenerationSet(**data["items"])
    return PianoRun(**data)


def run_piano(run: PianoRun, run_dir: str | os.PathLike, *, device: str = "auto", limit_s: float | None = None,
              reserve_s: float = 0.0, log: Callable[[str], None] | None = print, progress: bool = False,
              cut_at_limit: bool = False, wavenet_kernels: tuple[str, ...] = ("auto",)) -> bool:
    """Do what is left of ``run`` in ``run_dir`` within ``limit_s`` seconds (None: all of it); True when finished.

    A call always gets something done (at least one reporting interval of training, or one stage), then starts
    nothing that would not end within ``limit_s``; ``reserve_s``: seconds kept back from training for a model's
    final evaluation. ``cut_at_limit`` (the last call a session can make): generated sets that would not be
    finished within ``limit_s`` are written as long as they got, and say so (``generate_sets``'s ``cut``).
    ``wavenet_kernels``: WaveNet's generation kernel, or candidates timed first (e.g. ("splitk", "chain"))."""
    start, run_dir = time.monotonic(), Path(run_dir)
    deadline = None if limit_s is None else start + limit_s
    say = log or (lambda _: None)
    claim(run, run_dir)
    configs = run_configs(run, device)
    loaded: dict = {}
    did = False                     # whether this call has got anything done

    def left(reserve: float = 0.0) -> float | None:
        return None if deadline is None else deadline - time.monotonic() - reserve

    def out_of_time() -> bool:
        return did and deadline is not None and time.monotonic() >= deadline

    def tasks():                    # loaded once, and only by a stage that needs the audio
        loaded.setdefault("tasks", make_tasks(run, configs, run_dir))
        return loaded["tasks"]

    records = {}
    for arch in ORDER:
        path = record_path(run_dir, configs[arch])
        record = ResultRecord.load(path) if path.is_file() else None
        if record is None or record.status != "ok":
            if did and deadline is not None and left(reserve_s) <= 0:
                return False
            task = tasks()[arch]                   # loading the audio counts against the limit
            at = total_steps(records["wavenet"]) if arch == "sequnet" else None
            record = _train(configs[arch], task, run, run_dir, left(), log, progress, at, reserve_s)
            did = True
            _json_write(run_dir / "curves.json", curves(records | {arch: record}))    # the curves so far
            if record.status == "diverged":
                raise RuntimeError(f"{arch} diverged ({record.notes}); its record is in {run_dir / 'records'}")
            if record.status != "ok":
                say(f"{arch}: {record.status} after {total_steps(record)} steps; call again to continue")
                return False
        records[arch] = record
    steps_at = total_steps(records["wavenet"])
    if not (run_dir / "comparison.json").is_file():
        if out_of_time():
            return False
        snap = snapshot_path(run_dir, steps_at)
        if not snap.is_file():
            raise ValueError(f"{snap} is missing: Seq-U-Net trained {total_steps(records['sequnet'])} steps, fewer than "
                             f"WaveNet's {steps_at}; give it a larger sequnet_budget_s in a new run folder")
        at = _evaluate_snapshot(configs["sequnet"], tasks()["sequnet"], snap, configs["sequnet"].resolved_device())
        _json_write(run_dir / "comparison.json", comparison(records, at, steps_at))
        did = True
    missing = [(name, gset, run.seed + k) for k, (name, gset) in enumerate(generation_sets(run))
               if not generation_path(run_dir, name).is_file()]
    if missing:
        if out_of_time():
            return False
        def write(name: str, ids: dict, meta: dict) -> None:
            write_set(run_dir, name, ids, meta)
            say(f"generation {name!r}: " + ", ".join(f"{a} {s['steps_per_s']:,.0f} steps/s at batch {s['batch']}"
                                                      for a, s in meta["speed"].items()))

        written = _generate(trained_models(run_dir, device), tasks()["sequnet"], missing, run, configs["sequnet"],
                            deadline if did else None, progress, write, cut_at_limit, {"wavenet": wavenet_kernels})
        if len(written) < len(missing):
            say(f"generation {', '.join(repr(n) for n, _, _ in missing if n not in written)} would not end within "
                f"the time limit; call again")
            return False
    return True


def generation_sets(run: PianoRun) -> tuple[tuple[str, GenerationSet], ...]:
    """What the run generates, in one batch: its ``generation`` sets and the listening test's ``items``."""
    return run.generation + ((ITEMS_SET, run.items),)


def _generate(models, task, sets, run: PianoRun, config, deadline, progress, write, cut, kernels) -> list[str]:
    """``generate_sets`` (each set's excerpts from its seed: the run's plus its index; the sampling noise from the
    run's seed) with the training's CPU threads on a CPU (a step is a few hundred tiny operations: one thread
    beats two waiting for each other)."""
    threads = torch.get_num_threads()
    if config.resolved_device().type == "cpu" and config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    try:
        return generate_sets(models, task, sets, run.temperature, run.seed, write, deadline, progress, cut=cut,
                             kernels=kernels)
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sequnet.experiment.piano_run", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="the run's folder (created; a later call continues it)")
    p.add_argument("--scale", default="paper", help="paper (Table 2's models), demo or smoke (CPU)")
    p.add_argument("--audio-dir", help="recordings in train/ and test/ (+ manifest.json); default: the six "
                   "registered pieces")
    p.add_argument("--budget-s", type=float, help="seconds of WaveNet's training steps (paper preset: 600)")
    p.add_argument("--sequnet-budget-s", type=float, help="Seq-U-Net's (default: the same as WaveNet's)")
    p.add_argument("--eval-windows", type=int, help="evenly spaced test windows evaluated (paper preset: 2048)")
    p.add_argument("--device", default="auto")
    p.add_argument("--limit-s", type=float, help="stop before a stage that would not end within this many s")
    p.add_argument("--reserve-s", type=float, default=90.0, help="seconds kept back for a final evaluation")
    p.add_argument("--cut-at-limit", action="store_true", help="the session's last call: write the generated sets "
                   "that would not be finished within --limit-s as long as they got (their metadata says so)")
    p.add_argument("--compile", action="store_true", help="torch.compile both models for their training steps")
    p.add_argument("--wavenet-kernels", nargs="+", default=["auto"], metavar="KERNEL",
                   help="WaveNet's generation kernel (default auto), or candidates timed first, e.g. splitk chain")
    p.add_argument("--progress", action="store_true")
    a = p.parse_args(argv)
    run = preset(a.scale, audio_dir=relative_audio(a.audio_dir, a.run_dir), budget_s=a.budget_s,
                 sequnet_budget_s=a.sequnet_budget_s, eval_windows=a.eval_windows, compile=a.compile or None)
    done = run_piano(run, a.run_dir, device=a.device, limit_s=a.limit_s, reserve_s=a.reserve_s,
                     log=lambda line: print(line, flush=True), progress=a.progress, cut_at_limit=a.cut_at_limit,
                     wavenet_kernels=tuple(a.wavenet_kernels))
    print("piano run finished" if done else "piano run not finished: call again", flush=True)
    return 0 if done else EXIT_AGAIN


if __name__ == "__main__":
    sys.exit(main())
