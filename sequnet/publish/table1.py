"""Table 1's cells: which paper-scale records count as seeds of one task and model, what they say together (mean,
standard deviation, range, n) and a short verdict against the paper's number. The reproduction page
(:mod:`sequnet.publish.reproduction`) shows them."""
from __future__ import annotations

import dataclasses
import math
import statistics

from sequnet.core.configs import baseline_arch
from sequnet.experiment import seeds
from sequnet.experiment.records import PAPER_STEPS, ResultRecord, extent_text, percent

# Table 1's tasks in the paper's order, Piano-midi (not in the paper's Table 1) before the audio task; within a
# task the baseline comes first, then the Seq-U-Net.
TASK_ORDER = ("char_ptb", "word_ptb", "muse", "nottingham", "jsb", "piano_midi", "piano_audio")
# Tasks the paper trained for a number of iterations rather than epochs (section 5.2: 246,000 for raw audio). Our
# runs of them at the paper's models may train for less; their row says how much of that training they had.
PAPER_ITERATIONS = PAPER_STEPS
TRAINING_LENGTH = {"epochs", "max_steps_per_epoch", "time_budget_s"}
# How such a run was trained and scored, where one GPU run differs from the paper's (bf16 autocast; the test metric
# over a number of evenly spaced windows rather than the whole test set): still its cell, and its row says so.
RUN_SETTINGS = {"bf16": lambda on: "bf16" if on else "", "eval_limit": lambda n: f"test over {n:,} windows"}
# A run that differs from the paper's preset only in these is still one seed of its Table 1 cell.
SEED_ONLY = {"seed"}
# Within half a per cent of the paper's number counts as matching it: about the smallest difference the paper
# reports between its two models of a task where it calls them on par (JSB 0.2 %, word-PTB 0.5 %, MuseData 0.6 %).
MATCH_TOLERANCE = 0.005
# Decimals the paper prints a cell's test number with, where fewer than three (the others have three): "1.30"
# stands for anything from 1.295 to 1.305, so a seed range reaching into that interval holds the paper's number
# (char-PTB Seq-U-Net's seeds, 1.3005-1.309, would otherwise be "worse than the paper in all 3" against a 1.30
# that may be 1.3049).
PAPER_DECIMALS = {("char_ptb", "tcn"): 2, ("char_ptb", "sequnet"): 2, ("word_ptb", "tcn"): 2,
                  ("word_ptb", "sequnet"): 2, ("nottingham", "sequnet"): 2, ("piano_audio", "wavenet"): 2,
                  ("piano_audio", "sequnet"): 2}


def paper_half_step(task: str, model: str) -> float:
    """Half the last printed digit of the paper's test number: how far the true value may lie from it."""
    return 0.5 * 10.0 ** -paper_decimals(task, model)


def paper_decimals(task: str, model: str) -> int:
    return PAPER_DECIMALS.get((task, model), 3)


def task_order(key: tuple[str, str]) -> tuple:
    task, model = key
    rank = TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER)
    return rank, task, model != baseline_arch(task), model != "sequnet", model


def seed_of(r: ResultRecord):
    """The seed a record names (``ResultRecord.seed``, read from its config for older records); None if none."""
    return r.seed


def steps_trained(r: ResultRecord) -> int | None:
    """Training steps a run took: its ``extent`` (records since the piano run), ``config['steps']``, or the sum
    over its epochs (older records)."""
    for steps in ((r.extent or {}).get("steps"), r.config.get("steps")):
        if isinstance(steps, int) and not isinstance(steps, bool):
            return steps
    steps = [h.get("steps") for h in r.history]
    return sum(steps) if steps and all(isinstance(s, int) for s in steps) else None


def training_label(r: ResultRecord) -> str:
    """How long an iteration-counted run trained, against the paper's iterations (``779 steps, 0.3% of the
    paper's 246,000``, the record's own :func:`extent_text` where it has an extent); empty for tasks trained by
    epochs."""
    paper = PAPER_ITERATIONS.get(r.experiment)
    if paper is None:
        return ""
    changed = r.deviations or {}
    settings = [say(changed[k]) for k, say in RUN_SETTINGS.items() if changed.get(k) is not None]
    if extent_text(r):
        length = extent_text(r)
    elif (steps := steps_trained(r)) is None:
        budget = changed.get("time_budget_s")
        length = f"trained {budget:g} s, not the paper's {paper:,} steps" if budget else ""
    else:
        length = f"{steps:,} steps, {percent(steps / paper)} of the paper's {paper:,}"
    return "; ".join(filter(None, [length, *settings]))


def in_cell(r: ResultRecord) -> bool:
    """Whether a record is one seed of its Table 1 cell: a finished run with a test score of the cell's paper
    preset, the seed aside (:func:`sequnet.experiment.seeds.mismatch`, which the seed runs' planning uses too);
    for tasks trained by iterations, a run that changed only its training length and its run settings
    (``RUN_SETTINGS``) also counts (its row says how long it trained, and how)."""
    return r.status == "ok" and r.metrics.get("test") is not None and of_preset(r)


def of_preset(r: ResultRecord) -> bool:
    """Whether a paper-scale record ran its cell's paper preset, the seed aside (and, for tasks trained by
    iterations, its training length and run settings), whatever its outcome."""
    if r.scale != "paper":
        return False
    if r.experiment in PAPER_ITERATIONS:
        return set(r.deviations or {}) <= SEED_ONLY | TRAINING_LENGTH | set(RUN_SETTINGS)
    return seeds.mismatch(r, r.experiment, r.model) is None


def same_run(a: ResultRecord, b: ResultRecord) -> bool:
    """Two records of one run: the training record of a seed and the record its chapter wrote when it reported the
    finished run from its checkpoint (benchmarks/table1_seeds.sh report) have the same epochs and metrics. The
    report evaluates the checkpoint again, and the GPU's reductions need not add in the same order twice: char-PTB's
    seed 1 (2026-12-03) scored 1.3073228302 in training and 1.3073228931 in its report. So the metrics match to a
    millionth, far below any difference between two trainings (the fourth decimal, even for one seed)."""
    return a.history == b.history and a.metrics.keys() == b.metrics.keys() and all(
        math.isclose(a.metrics[k], b.metrics[k], rel_tol=1e-6) if isinstance(a.metrics[k], float)
        and isinstance(b.metrics[k], float) else a.metrics[k] == b.metrics[k] for k in a.metrics)


def table1_cells(records: list[ResultRecord]) -> tuple[dict[tuple[str, str], list[ResultRecord]], list[ResultRecord]]:
    """The records of each Table 1 cell (task, model), one per seed (the newest, records being sorted by date), in
    Table 1's order; and the older runs of a seed that a newer run replaced."""
    newest, replaced = {}, []
    for r in records:
        if in_cell(r):
            key = (r.experiment, r.model, seed_of(r))
            if key in newest and not same_run(newest[key], r):
                replaced.append(newest[key])
            newest[key] = r
    return by_cell(newest), replaced


def by_cell(newest: dict[tuple[str, str, int | None], ResultRecord]) -> dict[tuple[str, str], list[ResultRecord]]:
    """Records keyed by (task, model, seed), grouped by cell in Table 1's order."""
    cells = {}
    for (task, model, _), r in newest.items():
        cells.setdefault((task, model), []).append(r)
    return {k: cells[k] for k in sorted(cells, key=task_order)}


def diverged_seeds(records: list[ResultRecord]) -> dict[tuple[str, str], list[ResultRecord]]:
    """The seeds of each Table 1 cell that diverged with the paper's settings (the newest record of each seed,
    unless a finished run of that seed exists): results of the cell without a test score, which its mean leaves out
    and the page names (the word-PTB Seq-U-Net's seed 2 diverged in epoch 38 on 2026-12-03)."""
    finished = {(r.experiment, r.model, seed_of(r)) for r in records if in_cell(r)}
    newest = {}
    for r in records:
        key = (r.experiment, r.model, seed_of(r))
        if r.status == "diverged" and of_preset(r) and key not in finished:
            newest[key] = r
    return by_cell(newest)


@dataclasses.dataclass
class SeedSummary:
    """The test metric of one cell over its seeds: mean, sample standard deviation (None for one seed), range."""
    n: int
    mean: float
    sd: float | None
    low: float
    high: float

    @classmethod
    def of(cls, runs: list[ResultRecord]) -> "SeedSummary":
        values = [r.metrics["test"] for r in runs]
        sd = statistics.stdev(values) if len(values) > 1 else None
        return cls(len(values), statistics.fmean(values), sd, min(values), max(values))

    def contains(self, value: float, half_step: float = 0.0) -> bool:
        """Whether ``value``, known to within ``half_step`` either way, may lie inside our range."""
        return self.low - half_step <= value <= self.high + half_step


def verdict(task: str, model: str, paper: float | None, s: SeedSummary, runs: list[ResultRecord]) -> str:
    """One short judgement of a cell. Several seeds: whether the paper's number, at the precision it is printed
    with, lies inside our range. One seed: matching within ``MATCH_TOLERANCE``, or better / worse by how much (one
    seed cannot tell noise apart). Lower is better in every task's unit."""
    if paper is None:
        return "no paper number"
    length = PAPER_ITERATIONS.get(task)
    if length and any((steps_trained(r) or 0) < length for r in runs):
        return "not comparable"
    if s.n > 1:
        if s.contains(paper):
            return f"paper inside our {s.n} seeds"
        if s.contains(paper, paper_half_step(task, model)):
            return f"paper inside our {s.n} seeds at its {paper_decimals(task, model)} decimals"
        every = "both" if s.n == 2 else f"all {s.n}"
        return f"{'better' if s.high < paper else 'worse'} than the paper in {every} seeds"
    rel = (s.mean - paper) / paper
    if abs(rel) <= MATCH_TOLERANCE:
        return "matches (1 seed)"
    return f"{'better' if rel < 0 else 'worse'} by {100 * abs(rel):.1f} % (1 seed)"


@dataclasses.dataclass
class SpikeSummary:
    """A cell's loss spikes over its seeds (issue 20): how many runs counted them (records since 2026-12-02 do),
    the spikes in all, the runs with at least one, and the largest ratio of a step's loss to the median before it."""
    runs: int
    counted: int
    spikes: int
    with_spikes: int
    largest: float | None
    rule: str | None

    @classmethod
    def of(cls, runs: list[ResultRecord]) -> "SpikeSummary":
        counted = [r.loss_spikes for r in runs if r.loss_spikes is not None]
        ratios = [s["largest"]["ratio"] for s in counted if s.get("largest")]
        return cls(len(runs), len(counted), sum(s["count"] for s in counted),
                   sum(s["count"] > 0 for s in counted), max(ratios) if ratios else None,
                   counted[0].get("rule") if counted else None)
