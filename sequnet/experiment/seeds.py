"""Several seeds of one cell (task, model) at a scale: which runs exist already, and which are still to train.

A record counts as seed N of a cell when it is a finished run of that cell's preset with seed N:

* its experiment, model and scale are the cell's, and its status is "ok" (or "diverged": a finished outcome of
  that seed, reported as such, never trained again);
* its configuration equals the preset on every field that :func:`sequnet.experiment.scales.deviations` compares
  (the seed, the device, CUDA graphs, the fast kernels, the warm-up and the CPU threads aside), it has no recorded
  preset change (``deviations``), it trained in one process (the paper's batching), and its history holds every
  epoch of the preset.

So the paper-scale runs committed before seeds had names (seed 1111, the official default) count as seed 1111 of
their cells wherever their settings match, and so does an earlier run with another seed (the MuseData Seq-U-Net
with seed 2 in ``results/paper/music_seeds``). Records are matched by content, not by file name.

``python -m sequnet.experiment.seeds todo --cells jsb:tcn ... --have DIR ...`` prints "TASK ARCH SEED" for every
seed still to train (what ``benchmarks/table1_seeds.sh`` starts); ``status`` prints what each cell has. A cell
``TASK:ARCH:SEED`` stands for that one seed of the cell (a GPU session may take part of a cell).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Iterable, Sequence

from sequnet.core.configs import PaperSetting
from sequnet.experiment.records import RecordError, ResultRecord
from sequnet.experiment.scales import DEFAULT_SEED, RunConfig, check_scale, deviations, resolve

# The official scripts' seed first (the runs committed already), then two more.
SEEDS = (DEFAULT_SEED, 1, 2)
FINISHED = ("ok", "diverged")


def record_config(record: ResultRecord) -> RunConfig:
    """The run configuration a record was trained with (its ``config`` less what the trainer adds to it)."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    data = {k: v for k, v in record.config.items() if k in names}
    data["setting"] = PaperSetting(**data["setting"])
    return RunConfig(**data)


def mismatch(record: ResultRecord, task: str, arch: str, scale: str = "paper") -> str | None:
    """Why ``record`` is not a finished run of the preset of (task, arch) at ``scale``; None when it is."""
    if (record.experiment, record.model, record.scale) != (task, arch, scale):
        return f"another cell ({record.experiment}/{record.model} at {record.scale} scale)"
    if record.status not in FINISHED:
        return f"status {record.status}"
    # Records written before seeds had names list their seed as a change of the preset (from their notes).
    changes = {k: v for k, v in (record.deviations or {}).items() if k != "seed"}
    if changes:
        return "preset changed: " + ", ".join(f"{k}={v}" for k, v in changes.items())
    try:
        config = record_config(record)
        changed = deviations(config)
    except (KeyError, TypeError, ValueError) as e:
        return f"its configuration is not one of this version's ({type(e).__name__}: {e})"
    if changed:
        return "configuration differs from the preset: " + ", ".join(f"{k}={v}" for k, v in changed.items())
    if record.config.get("world_size", 1) != 1:
        return f"trained in {record.config['world_size']} processes"
    if record.status == "ok" and len(record.history) < config.epochs and config.time_budget_s is None:
        return f"{len(record.history)} of {config.epochs} epochs"
    return None


def records_in(roots: Iterable[str | Path]) -> list[tuple[Path, ResultRecord]]:
    """Every result record under ``roots`` (folders searched recursively, files taken as they are), in order;
    JSON files that are not records are skipped."""
    found = []
    for root in roots:
        root = Path(root)
        paths = [root] if root.is_file() else sorted(root.rglob("*.json")) if root.is_dir() else []
        for path in paths:
            try:
                found.append((path, ResultRecord.load(path)))
            except RecordError:
                continue                     # a benchmark's JSON, a listening item set, ...
    return found


def finished_seeds(records: Sequence[tuple[Path, ResultRecord]], task: str, arch: str,
                   scale: str = "paper") -> dict[int, tuple[Path, ResultRecord]]:
    """The cell's finished runs by seed (the first record found of each seed)."""
    seeds: dict[int, tuple[Path, ResultRecord]] = {}
    for path, record in records:
        if record.seed is not None and record.seed not in seeds and mismatch(record, task, arch, scale) is None:
            seeds[record.seed] = (path, record)
    return seeds


Cell = tuple[str, str, "int | None"]       # task, arch, and one seed or None (every seed asked for)


def parse_cells(cells: Sequence[str], scale: str) -> list[Cell]:
    """``TASK:ARCH`` or ``TASK:ARCH:SEED`` strings, checked (each must resolve at ``scale``)."""
    parsed = []
    for cell in cells:
        parts = cell.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and not parts[2].isdigit()):
            raise ValueError(f"cell {cell!r}: expected TASK:ARCH or TASK:ARCH:SEED, e.g. jsb:sequnet or jsb:tcn:2")
        resolve(parts[0], parts[1], scale)           # raises ValueError naming the task or the model
        parsed.append((parts[0], parts[1], int(parts[2]) if len(parts) == 3 else None))
    return parsed


def _pairs(cells: Sequence[Cell], seeds: Sequence[int]) -> list[tuple[str, str, int]]:
    return [(task, arch, seed) for task, arch, one in cells for seed in ((one,) if one is not None else seeds)]


def todo(cells: Sequence[Cell], seeds: Sequence[int], roots: Iterable[str | Path],
         scale: str = "paper") -> list[tuple[str, str, int]]:
    """The (task, arch, seed) of ``cells`` (each with ``seeds``, or its own one) that no finished record under
    ``roots`` holds."""
    records = records_in(roots)
    return [(task, arch, seed) for task, arch, seed in _pairs(cells, seeds)
            if seed not in finished_seeds(records, task, arch, scale)]


def _shown(path: Path) -> str:
    """A record's path relative to the working directory where it lies inside it: the status goes back from the GPU
    machine into logs, which should not carry that machine's folders."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sequnet.experiment.seeds", description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("todo", "status"))
    parser.add_argument("--cells", nargs="+", required=True, metavar="TASK:ARCH")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), metavar="N")
    parser.add_argument("--have", nargs="*", default=[], metavar="DIR", help="folders of finished records")
    parser.add_argument("--scale", default="paper")
    args = parser.parse_args(argv)
    try:
        scale = check_scale(args.scale)
        cells = parse_cells(args.cells, scale)
    except ValueError as e:
        print(f"seeds: error: {e}", file=sys.stderr)
        return 2
    if args.mode == "todo":
        for task, arch, seed in todo(cells, args.seeds, args.have, scale):
            print(task, arch, seed)
        return 0
    records = records_in(args.have)
    for task, arch, seed in _pairs(cells, args.seeds):
        path, record = finished_seeds(records, task, arch, scale).get(seed, (None, None))
        what = "to train" if record is None else f"{record.status}: {_shown(path)}"
        print(f"{task}/{arch} seed {seed}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
