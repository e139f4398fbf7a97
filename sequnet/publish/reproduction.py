"""The book's reproduction page (``book/reproduction.md``): the paper's Table 1 beside this companion's result
records, the changed paper-scale runs, the reduced-cost searches, cost ratios, the training-step benchmark, and
the small-scale runs.

Every string taken from a record or a benchmark file is made literal text before it reaches the page
(:func:`sequnet.publish.names.text`)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from sequnet.core.configs import baseline_arch
from sequnet.experiment.records import METRIC_UNITS, PAPER_TABLE1, RecordError, ResultRecord
from sequnet.publish.bench_table import bench_section, ratio
from sequnet.publish.names import TASK_NAMES, model_name, task_name, text
from sequnet.publish.searches import Search, SearchRow, clip_text, search_rows
from sequnet.publish.table1 import (MATCH_TOLERANCE, SeedSummary, SpikeSummary, diverged_seeds, same_run, seed_of,
                                    table1_cells, task_order, training_label, verdict)

# Keys that make a JSON file a result record; other JSON files (widget state, listening pairs, benchmarks) have
# neither.
RECORD_KEYS = {"experiment", "metrics"}


def find_records(roots: list[Path]) -> list[ResultRecord]:
    """Result records below ``roots``, each once; other JSON files (widget state, listening pairs) are skipped.

    A JSON file that cannot be read (truncated, empty, not UTF-8) might have been a record, and a record with a
    field of the wrong type would be shown wrong: either stops the build (SystemExit naming the file), so that no
    page silently leaves a run out."""
    records = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*.json")) if Path(root).is_dir() else []:
            if "node_modules" in path.parts or "_vendor" in path.parts:
                continue
            try:
                data = json.loads(path.read_bytes().decode("utf-8"))
            except (OSError, ValueError):      # UnicodeDecodeError and JSONDecodeError are ValueErrors
                data = None                    # unreadable: ResultRecord.load says why
            if isinstance(data, dict) and not RECORD_KEYS & data.keys():
                continue
            try:
                record = ResultRecord.load(path)
            except RecordError as e:
                raise SystemExit(f"sequnet book: {e}\n(every JSON file under {', '.join(map(str, roots))} must "
                                 f"be readable, and a result record must load; fix or remove it)") from e
            records[(record.experiment, record.model, record.scale, record.date, record.host)] = record
    return sorted(records.values(), key=lambda r: (r.experiment, r.model, r.scale, r.date))


def fmt(value) -> str:
    """Our numbers: enough digits to compare with the paper's two or three decimals, whatever the magnitude."""
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.2f}" if abs(value) >= 100 else f"{value:.3f}" if abs(value) >= 1 else f"{value:.3g}"


def short_device(device: str) -> str:
    """A record's device for a table cell: a CPU's model name left out ("cpu (Intel(R) Xeon(R) Processor,
    2 threads)" is "cpu, 2 threads"), since a long one wrapped the Run cell to four lines on such a machine; the
    record and the chapter keep the whole name."""
    return re.sub(r"^cpu \(.*, (\d+ threads?)\)$", r"cpu, \1", device)


def run_label(r: ResultRecord) -> str:
    """Where a number of ours comes from: scale, device, date and commit, and the status unless it is ok."""
    commit = ""
    if r.git_commit not in ("", "unknown"):
        # A code span shows its text as it is, so only a plain commit id goes into one.
        commit = f" @ `{r.git_commit}`" if re.fullmatch(r"[0-9a-f]{4,40}", r.git_commit) else f" @ {text(r.git_commit)}"
    status = "" if r.status == "ok" else f", **{text(r.status)}**"
    return f"ours: **{text(r.scale)}** scale, {text(short_device(r.device))}, {text(r.date[:10])}{commit}{status}"


def is_reproduction(r: ResultRecord) -> bool:
    """A paper-scale run with the paper's preset unchanged (a changed run, e.g. fewer epochs, is not one)."""
    return r.scale == "paper" and not r.deviations


def contended(r: ResultRecord) -> bool:
    """Whether the run shared its GPU with other training processes (its record's notes say so): its time per
    step then includes that contention and is no cost comparison."""
    return "side by side" in r.notes


def params_label(n: int | None) -> str:
    """A parameter count in the paper's style (5.9M, 522k), one digit more so that near-equal pairs differ."""
    if not n:
        return "–"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def step_time(r: ResultRecord) -> str:
    return fmt(r.time_per_step_s) + (" †" if contended(r) and r.time_per_step_s is not None else "")


CONTENDED_NOTE = ("† Trained side by side with other runs on one GPU (CUDA MPS): the time per step includes that "
                  "contention and is not a cost comparison; the training-step benchmark below gives uncontended "
                  "costs, both models of a pair in one process.")


def glance_section(records: list[ResultRecord]) -> list[str]:
    """Table 1 at a glance: one row per task and model, the paper's test metric beside ours (mean ± sd over seeds),
    the difference, the seeds' range and a verdict."""
    cells, _ = table1_cells(records)
    diverged = diverged_seeds(records)
    keys = sorted(set(PAPER_TABLE1) | set(cells), key=task_order)
    lines = ["| Task | Model | Paper | Ours | Difference | Seeds (n: range) | Verdict |",
             "|---|---|---:|---:|---:|---|---|"]
    for task, model in keys:
        paper = PAPER_TABLE1.get((task, model), {}).get("test")
        runs = cells.get((task, model), [])
        head = f"| {task_name(task)} | {model_name(task, model)} | {paper_number(paper)} "
        if not runs:
            lines.append(head + "| no run yet | – | – | – |")
            continue
        s = SeedSummary.of(runs)
        places = 2 if abs(s.mean) >= 100 else 3     # as fmt() gives the mean
        ours = fmt(s.mean) + ("" if s.sd is None else f" ± {s.sd:.{places}f}")
        diff = "–" if paper is None else f"{s.mean - paper:+.{places}f}"
        spread = f"1: seed {seed_text(runs[0])}" if s.n == 1 else f"{s.n}: {fmt(s.low)}–{fmt(s.high)}"
        if lost := diverged.get((task, model)):   # a result of the cell too, without a test score
            spread += f"; seed {', '.join(seed_text(r) for r in lost)} diverged"
        label = "; ".join(filter(None, {training_label(r) for r in runs}))
        note = f": {text(label)}" if label else ""
        lines.append(head + f"| {ours} | {diff} | {spread} | {verdict(task, model, paper, s, runs)}{note} |")
    return lines


def spikes_section(records: list[ResultRecord]) -> list[str]:
    """Loss spikes across the seeds of each Table 1 cell whose runs counted them (the word-PTB Seq-U-Net's epoch-49
    jump was one)."""
    cells, _ = table1_cells(records)
    diverged = diverged_seeds(records)
    summaries = {key: SpikeSummary.of(runs + diverged.get(key, [])) for key, runs in cells.items()}
    counted = {key: s for key, s in summaries.items() if s.counted}
    lines = ["### Loss spikes across seeds", ""]
    if not counted:
        return lines + ["No Table 1 run has counted its loss spikes yet (the trainer counts them since 2026-12-02; "
                        "the runs before it have none in their records).", ""]
    rule = next(s.rule for s in counted.values() if s.rule)
    lines += [f"A loss spike is {text(rule)}. *Runs* counts the seeds whose records counted them, diverged "
              "seeds included.", "",
              "| Task | Model | Runs | Spikes | Runs with a spike | Largest step loss / median |",
              "|---|---|---:|---:|---:|---:|"]
    for (task, model), s in counted.items():
        largest = "–" if s.largest is None else f"{s.largest:.2f}"
        lines.append(f"| {task_name(task)} | {model_name(task, model)} | {s.counted} of {s.runs} | {s.spikes} "
                     f"| {s.with_spikes} | {largest} |")
    return lines + [""]


def paper_number(value: float | None) -> str:
    """A number of the paper's Table 1 as printed there: at least two decimals (1.30, not 1.3)."""
    if value is None:
        return "–"
    shown = f"{value:g}"
    decimals = len(shown.partition(".")[2])
    return f"{value:.2f}" if decimals < 2 else shown


def seed_text(r: ResultRecord) -> str:
    return "?" if seed_of(r) is None else text(seed_of(r))


def source_label(r: ResultRecord) -> str:
    """A run's source in a few words: device, date and commit (and the status unless ok), short enough for one
    table cell."""
    commit = ""
    if r.git_commit not in ("", "unknown"):
        commit = f", `{r.git_commit}`" if re.fullmatch(r"[0-9a-f]{4,40}", r.git_commit) else f", {text(r.git_commit)}"
    status = "" if r.status == "ok" else f", **{text(r.status)}**"
    return f"{text(r.device.removeprefix('NVIDIA '))}, {text(r.date[:10])}{commit}{status}"


def table1_section(records: list[ResultRecord]) -> list[str]:
    """Each cell's details: the paper's row (its GTX 1080 costs), then every seed of ours at paper scale."""
    cells, _ = table1_cells(records)
    diverged = diverged_seeds(records)
    lines = ["| Task | Model | Run | Params | Train | Test | Time/step (s) | Peak memory |",
             "|---|---|---|---|---|---|---|---|"]
    for task, model in sorted(set(PAPER_TABLE1) | set(cells), key=task_order):
        head = f"| {task_name(task)} | {model_name(task, model)} "
        if (task, model) in PAPER_TABLE1:
            p = PAPER_TABLE1[task, model]
            star = "\\*" if task == "piano_audio" else ""   # measured at batch 2
            lines.append(head + f"| **paper**, GTX 1080 | {p.get('params', '–')} | {p['train']:g} | {p['test']:g} | "
                                f"{p['time_s']:g}{star} | {p['mem_mb']:g} MB{star} |")
        for r in cells.get((task, model), []) + diverged.get((task, model), []):
            mem = f"{r.peak_memory_mib:.1f} MiB" if r.peak_memory_mib is not None else "–"
            valid = f" (valid {fmt(r.metrics.get('valid'))})" if r.metrics.get("test") is None else ""
            lines.append(head + f"| ours, seed {seed_text(r)}: {source_label(r)} | {params_label(r.params)} | "
                                f"{fmt(r.metrics.get('train'))} | {fmt(r.metrics.get('test'))}{valid} | "
                                f"{step_time(r)} | {mem} |")
    return lines


def preset_change(r: ResultRecord) -> str:
    """What a record changed of its scale's preset (e.g. ``epochs=84, lr=0.01``)."""
    return text(", ".join(f"{k}={v}" for k, v in (r.deviations or {}).items()))


def changed_section(records: list[ResultRecord]) -> list[str]:
    """Paper-scale runs that changed the preset (fewer epochs, a time budget, another learning rate or seed): the
    paper's models and data, not its exact training, so they sit beside Table 1 rather than in it, with the change
    named."""
    cells, replaced = table1_cells(records)
    shown = [r for group in (cells, diverged_seeds(records)) for runs in group.values() for r in runs]
    # (a run recorded twice, by its training and by the chapter that reported it, is in Table 1 once and not here)
    runs = [r for r in records if r.scale == "paper" and not any(same_run(r, s) for s in shown)]
    if not runs:
        return []
    lines = ["### Paper settings, changed training", "",
             "These runs use the paper's models and data but changed its training preset: fewer epochs, another "
             "learning rate or another seed (the column *changed* says what; a record's notes say why). Some were "
             "tried where a row misses its goal; all are published rather than left out. An earlier run with "
             "the paper's settings and the same seed as a newer one is listed here too (*changed*: none).", "",
             "| Task | Model | Run | Changed | Params | Train | Test | Time/step (s) | Peak memory |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        mem = f"{r.peak_memory_mib:.1f} MiB" if r.peak_memory_mib is not None else "–"
        valid = f" (valid {fmt(r.metrics.get('valid'))})" if r.metrics.get("test") is None else ""
        lines.append(f"| {task_name(r.experiment)} | {model_name(r.experiment, r.model)} | "
                     f"seed {seed_text(r)}: {source_label(r)} | "
                     f"{'none (replaced by a newer run)' if any(r is q for q in replaced) else preset_change(r)} | "
                     f"{params_label(r.params)} | {fmt(r.metrics.get('train'))} | "
                     f"{fmt(r.metrics.get('test'))}{valid} | {step_time(r)} | {mem} |")
    return lines


def ratios_section(records: list[ResultRecord]) -> list[str]:
    """Seq-U-Net's time per step and memory over the baseline's: the paper's, and ours per device (newest runs)."""
    newest = {(r.experiment, r.model, r.device): r for r in records if is_reproduction(r)}   # sorted by date
    lines = ["| Task | Source | Time ratio | Memory ratio |", "|---|---|---|---|"]
    for task in dict.fromkeys(t for t, _ in PAPER_TABLE1):
        base = baseline_arch(task)
        p, q = PAPER_TABLE1[task, "sequnet"], PAPER_TABLE1[task, base]
        lines.append(f"| {TASK_NAMES[task]} | **paper** (GTX 1080) | {ratio(p['time_s'], q['time_s'])} | "
                     f"{ratio(p['mem_mb'], q['mem_mb'])} |")
        for (t, model, device), r in newest.items():
            other = newest.get((t, base, device))
            if t == task and model == "sequnet" and other:
                mark = " †" if contended(r) or contended(other) else ""
                lines.append(f"| {TASK_NAMES[task]} | ours: **paper** scale, {text(device)} | "
                             f"{ratio(r.time_per_step_s, other.time_per_step_s)}{mark} | "
                             f"{ratio(r.peak_memory_mib, other.peak_memory_mib)} |")
    return lines


def small_scale_section(records: list[ResultRecord]) -> list[str]:
    small = [r for r in records if r.scale != "paper"]
    if not small:
        return ["No smoke or demo records were found."]
    lines = ["| Task (unit) | Model | Source | Train | Valid | Test | Time/step (s) | Wall (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in small:
        lines.append(f"| {task_name(r.experiment)} ({text(r.metric)}) | "
                     f"{model_name(r.experiment, r.model)} | {run_label(r)} | {fmt(r.metrics.get('train'))} | "
                     f"{fmt(r.metrics.get('valid'))} | {fmt(r.metrics.get('test'))} | {fmt(r.time_per_step_s)} | "
                     f"{fmt(r.wall_time_s)} |")
    return lines


def searches_section(rows: list[SearchRow]) -> list[str]:
    """One row per reduced-cost search: its best trial beside Table 3's setting over the same first epochs."""
    if not rows:
        return []
    lines = ["### The paper's search at reduced cost", "",
             "The paper chose each cell's learning rate and clipping (Table 3) by a search (20 trials for these "
             "datasets) over lr ~ exp(U(-12, -2)) and clipping off or U(0.01, 1.0), with the best validation loss "
             "as the objective; its trials trained 100 epochs. Where our seeds leave a Seq-U-Net cell worse than the "
             "paper, we ran the same search (`benchmarks/table1_hpo.sh`: hyperopt's TPE, whose first 20 draws are "
             "random) with shorter trials. These are changed-preset runs, not reproductions. The table sets the "
             "best trial beside Table 3's own setting over the same first epochs of the cell's seeds (best "
             "validation loss, nats per item). A better setting there is only a candidate: "
             "`benchmarks/table1_retrain.sh` trains it for the preset's epochs with the cell's seeds, and *Best "
             "retrained* is their test metric (mean ± sd), beside the paper's.", "",
             "| Task | Model | Trials | Diverged | Best lr | Best clip | Best valid | Table 3's lr, clip "
             "| Table 3's setting, same epochs | Best retrained: test | Paper |",
             "|---|---|---|---:|---:|---:|---:|---|---|---|---:|"]
    for row in rows:
        s, best = row.search, row.search.best
        found = (f"{best['lr']:.3g} | {clip_text(best['clip'])} | {best['valid_loss']:.3f}" if best else
                 "– | – | –")
        lines.append(f"| {task_name(s.task)} | {model_name(s.task, s.arch)} | {row.progress} | {row.diverged} | "
                     f"{found} | {row.preset_lr:.3g}, {clip_text(row.preset_clip)} | {row.preset_text} | "
                     f"{row.retrained_text} | {paper_number(PAPER_TABLE1.get((s.task, s.arch), {}).get('test'))} |")
    return lines + [""]


def reproduction_markdown(records: list[ResultRecord], sources: list[str], searches: list[Search] = ()) -> str:
    n_paper = sum(is_reproduction(r) for r in records)
    units = ", ".join(f"{task_name(t)}: {text(u)}" for t, u in METRIC_UNITS.items())
    parts = [
        "(reproduction)=",
        "# Reproduction: the paper's Table 1 and our runs", "",
        "Every number of ours is labelled with the **scale** it was produced at, the **device** and the **date** "
        "(and git commit). Only `paper`-scale runs — the paper's settings, on a GPU — are reproductions; "
        "`smoke` and `demo` runs are small-scale checks and demonstrations and appear in a separate table.", "",
        f"Records read from: {', '.join(f'`{s}`' for s in sources)} ({len(records)} found, {n_paper} at paper "
        "scale). This page is generated by `sequnet book`.", "",
        "## Table 1 at a glance", "",
        "The paper's test metric for each task and model beside ours at paper scale (lower is better). Where a cell "
        "has runs with several seeds (the paper's settings otherwise unchanged), *Ours* is their mean ± standard "
        "deviation and *Seeds* their number and range (with one run, n = 1: its seed and no deviation); the "
        "verdict then says whether the paper's number lies inside that range, or only within the precision the "
        "paper prints it with (*at its 2 decimals*: its 1.30 stands for anything from 1.295 to 1.305). With one "
        "seed the verdict can only "
        f"say whether ours is within {100 * MATCH_TOLERANCE:g} % of the paper's (*matches*) or by how much it is "
        "better or worse: one run "
        "cannot tell a real difference from the spread between seeds. *Difference* is ours minus the paper's.", "",
        *glance_section(records), "",
        "## Table 1 beside paper-scale runs", "",
        f"Metrics are in each task's unit ({units}); lower is better. The paper measured time per training step "
        "and peak memory on a GTX 1080 with PyTorch 1.2; ours come from `torch.cuda.max_memory_allocated` "
        "(MiB) and a synchronised, warmed-up median step, so compare ratios between models on one device rather "
        "than absolute figures across devices.", "",
        *table1_section(records), "",
        "\\* The paper measured the piano models' time and memory at batch size 2 instead of 16.", "",
        CONTENDED_NOTE, "",
        *changed_section(records), "",
        *searches_section(search_rows(list(searches), records)),
        *spikes_section(records),
        "### Seq-U-Net relative to its baseline", "",
        "Time per step and peak memory of Seq-U-Net divided by those of TCN (WaveNet for piano audio), measured "
        "on the same device: below 1 means Seq-U-Net is cheaper. Ratios travel across devices better than "
        "absolute figures.", "",
        *ratios_section(records), "",
        "† At least one run of the pair trained side by side with others (see above); for cost ratios, read the "
        "benchmark below.", "",
        *bench_section(), "",
    ]
    if not n_paper:
        parts += ["```{note}", "No paper-scale record yet. Run `make book SCALE=paper` on a GPU machine and commit "
                  "the records under `results/`.", "```", ""]
    parts += ["## Small-scale runs (not reproductions)", "",
              "These runs use tiny (`smoke`) or CPU-sized (`demo`) models, data and epochs. They show that the "
              "pipeline works and how training behaves; their numbers are **not comparable** with the paper's.", "",
              *small_scale_section(records), "",
              "```{include} _paper_settings.md", ":heading-offset: 1", "```", ""]
    return "\n".join(parts)
