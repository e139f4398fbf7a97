"""Comparing training runs with the paper, for the notebooks: Markdown tables of the records beside Table 1 and of
what each run trains, learning curves, and the cost of a training step (ours beside the paper's)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from sequnet.core.configs import ARCH_LABELS, baseline_arch, build_model, count_parameters
from sequnet.experiment.records import PAPER_TABLE1, ResultRecord, extent_text, short_of_paper
from sequnet.experiment.scales import RunConfig
from sequnet.experiment.metrics import describe_unit
from sequnet.analysis.figures import MAX_WIDTH_IN, STYLE

def scale_label(record: ResultRecord) -> str:
    """How a number must be labelled: only paper-scale runs of the paper's length are (attempted) reproductions."""
    if record.scale == "paper" and (record.deviations or short_of_paper(record)):
        changed = ", ".join([extent_text(record)] * short_of_paper(record)
                            + [f"{k}={v}" for k, v in sorted((record.deviations or {}).items())])
        return f"paper-size models with changed training ({changed}) on {record.device}: not a reproduction"
    if record.scale == "paper":
        return f"paper scale (Table 3 settings) on {record.device}"
    return f"{record.scale} scale on {record.device}: not a reproduction"


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def comparison_markdown(records: Sequence[ResultRecord]) -> str:
    """A Markdown table of our records next to the paper's Table 1 row for the same task and model."""
    digits = 2 if records and records[0].metric == "perplexity" else 3
    lines = [f"**{describe_unit(records[0].metric)}, {scale_label(records[0])}**", "",
             "| model | params | train | valid | test | ms/step | peak MiB | status "
             "| paper train | paper test | paper ms/step | paper MB |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in records:
        paper = PAPER_TABLE1.get((r.experiment, r.model), {})
        ms = None if r.time_per_step_s is None else 1000 * r.time_per_step_s
        pms = paper.get("time_s") and 1000 * paper["time_s"]
        lines.append(f"| {ARCH_LABELS.get(r.model, r.model)} | {r.params:,} | {_fmt(r.metrics.get('train'), digits)} "
                     f"| {_fmt(r.metrics.get('valid'), digits)} | {_fmt(r.metrics.get('test'), digits)} "
                     f"| {_fmt(ms, 1)} | {_fmt(r.peak_memory_mib, 1)} | {r.status} "
                     f"| {_fmt(paper.get('train'), digits)} | {_fmt(paper.get('test'), digits)} | {_fmt(pms, 1)} "
                     f"| {_fmt(paper.get('mem_mb'), 1)} |")
    by_model = {r.model: r for r in records}
    base_arch = baseline_arch(records[0].experiment)
    if base_arch in by_model and "sequnet" in by_model:
        ours, base = by_model["sequnet"], by_model[base_arch]
        paper_s = PAPER_TABLE1.get((ours.experiment, "sequnet"))
        paper_t = PAPER_TABLE1.get((ours.experiment, base_arch))
        ratios = []
        if ours.time_per_step_s and base.time_per_step_s:
            ratios.append(f"time per step {ours.time_per_step_s / base.time_per_step_s:.2f}")
        if ours.peak_memory_mib and base.peak_memory_mib:
            ratios.append(f"peak memory {ours.peak_memory_mib / base.peak_memory_mib:.2f}")
        paper_ratios = (f"paper: time {paper_s['time_s'] / paper_t['time_s']:.2f}, "
                        f"memory {paper_s['mem_mb'] / paper_t['mem_mb']:.2f}") if paper_s and paper_t else \
            "not in the paper's Table 1"
        lines += ["", f"Seq-U-Net / {ARCH_LABELS[base_arch]}: {', '.join(ratios) or 'no timing'} ({paper_ratios})."]
    lines += ["", "Paper: GTX 1080, torch 1.2, unsynchronised timing; memory = peak allocated tensors in MB."
              + (" Its piano time and memory were measured at batch 2, ours at the training batch."
                 if records[0].experiment == "piano_audio" else "")]
    if records[0].scale != "paper":
        lines += [f"Our numbers come from a {records[0].scale}-scale run (smaller models and/or far fewer steps than "
                  "the paper's training): they show the pipeline, not the paper's result."]
    return "\n".join(lines)


def epoch_rows(n_epochs: int, keep: set[int], max_rows: int) -> list[int]:
    """Epochs to show: evenly spaced from the first to the last, at most ``max_rows`` of them, plus ``keep``."""
    if n_epochs <= max_rows:
        return list(range(1, n_epochs + 1))
    spaced = {round(1 + i * (n_epochs - 1) / (max_rows - 1)) for i in range(max_rows)}
    return sorted(spaced | (keep & set(range(1, n_epochs + 1))))


def epoch_table(records: Sequence[ResultRecord], max_rows: int = 12) -> str:
    """The training log of a chapter as one Markdown table: per shown epoch, each model's train and validation
    metric (best validation marked ★, an epoch after which the learning rate was halved marked ½) and the
    seconds its epoch took. Long runs show ``max_rows`` evenly spaced epochs plus each model's best one; the
    whole log is in the records (``history``)."""
    if not records:
        return "No runs."
    unit = describe_unit(records[0].metric)
    digits = 2 if records[0].metric == "perplexity" else 3
    by_epoch = [{h["epoch"]: h for h in r.history} for r in records]
    best = {e for hist in by_epoch for e, h in hist.items() if h.get("best")}
    # Kept however long the run: each model's best epoch and its last (a budgeted run may end early).
    keep = {max((e for e, h in hist.items() if h.get("best")), default=0) for hist in by_epoch}
    keep |= {max(hist, default=0) for hist in by_epoch}
    n = max((max(hist, default=0) for hist in by_epoch), default=0)
    has_valid = any(h.get("valid") is not None for hist in by_epoch for h in hist.values())
    head, rule = ["epoch"], ["---:"]
    for r in records:
        name = ARCH_LABELS.get(r.model, r.model)
        head += [f"{name} train"] + ([f"{name} valid"] if has_valid else []) + [f"{name} s"]
        rule += ["---:"] * (3 if has_valid else 2)
    marks = "; ★ best validation so far, ½ learning rate halved after the epoch" if has_valid else ""
    shown = ("every epoch" if n <= max_rows
             else f"{max_rows} of {n} epochs evenly spaced, and each model's best and last")
    lines = [f"**Training log** ({unit}{marks}; *s*: seconds the epoch took; {shown}):", "",
             "| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    for e in epoch_rows(n, keep, max_rows):
        cells = [str(e)]
        for hist in by_epoch:
            h = hist.get(e)
            if h is None:
                cells += ["–"] * (3 if has_valid else 2)
                continue
            mark = (" ★" if h.get("best") and e in best else "") + (" ½" if h.get("lr_halved") else "")
            cells.append(_fmt(h.get("train"), digits))
            if has_valid:
                cells.append(_fmt(h.get("valid"), digits) + mark)
            cells.append(_fmt(h.get("epoch_time_s"), 1))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + spikes_lines(records))


def spikes_lines(records: Sequence[ResultRecord]) -> list[str]:
    """One sentence on the runs' loss spikes (issue 20: the word Seq-U-Net's epoch-49 jump), for the runs whose
    records counted them; nothing for older records."""
    counted = [r for r in records if r.loss_spikes is not None]
    if not counted:
        return []
    parts = []
    for r in counted:
        s, name = r.loss_spikes, ARCH_LABELS.get(r.model, r.model)
        where = ", ".join(f"epoch {e['epoch']}" for e in s.get("events", [])[:3])
        parts.append(f"{name} {s['count']} in {s['steps_checked']:,} steps" + (f" ({where})" if where else ""))
    return ["", f"**Loss spikes** ({counted[0].loss_spikes['rule']}): {'; '.join(parts)}. The reproduction page "
                "counts them over every seed of each cell."]


CURVE_AXES = {"epoch": "epoch", "time": "training time (s)"}


def plot_learning_curves(records: Sequence[ResultRecord], ax=None, x: str = "epoch"):
    """Train (solid) and validation (dashed, where the task has one) metric per epoch for each record, against
    the epoch or (``x="time"``, runs with a time budget) the training time at its end; returns the figure."""
    import matplotlib.pyplot as plt

    if x not in CURVE_AXES:
        raise ValueError(f"x={x!r}: choose one of {', '.join(CURVE_AXES)}")
    if x == "time" and any("train_time_s" not in h for r in records for h in r.history):
        raise ValueError("x='time' needs records of runs with a time budget (their history has train_time_s)")
    with plt.rc_context(STYLE):
        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 3.8))
        for i, r in enumerate(records):
            xs = [h["epoch"] if x == "epoch" else h["train_time_s"] for h in r.history]
            color = f"C{i}"
            label = ARCH_LABELS.get(r.model, r.model)
            ax.plot(xs, [h["train"] for h in r.history], "-o", color=color, ms=3, label=f"{label} train")
            if any(h["valid"] is not None for h in r.history):
                ax.plot(xs, [h["valid"] for h in r.history], "--s", color=color, ms=3, label=f"{label} valid")
        if records and records[0].metric == "perplexity":
            ax.set_yscale("log")
        ax.set_xlabel(CURVE_AXES[x])
        if x == "epoch":
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(describe_unit(records[0].metric) if records else "")
        ax.set_title(f"{records[0].experiment}: learning curves ({records[0].scale} scale)" if records else "")
        ax.grid(alpha=0.3)
        ax.legend()
        ax.figure.tight_layout()
    return ax.figure


def _on_gpu(r: ResultRecord) -> bool:
    return r.peak_memory_mib is not None or r.device.lower().startswith(("cuda", "nvidia"))


def plot_costs(records: Sequence[ResultRecord]):
    """Time per training step (and, from GPU runs, peak memory) per model, and the ratios of the Seq-U-Net to its
    baseline (TCN, or WaveNet for audio), ours beside the paper's.

    The paper measured on a GPU (GTX 1080): its times stand beside ours only when ours come from a GPU too, and
    the memory panel is drawn only when ours were measured (a CPU run has no allocator peak). Devices differ, so
    the ratios are what can be compared. Returns the figure."""
    import matplotlib.pyplot as plt

    gpu = bool(records) and all(_on_gpu(r) for r in records)
    mem = [r.peak_memory_mib for r in records]
    with plt.rc_context(STYLE):
        panels = 3 if any(m is not None for m in mem) else 2
        fig, axes = plt.subplots(1, panels, figsize=(MAX_WIDTH_IN, 3.4),
                                 gridspec_kw={"width_ratios": [1] * (panels - 1) + [0.8]})
        ax_t, ax_r = axes[0], axes[-1]
        labels = [ARCH_LABELS.get(r.model, r.model) for r in records]
        x, width = np.arange(len(records)), 0.38
        paper = [PAPER_TABLE1.get((r.experiment, r.model), {}) for r in records]
        device = records[0].device.split(" (")[0].removeprefix("NVIDIA ") if records else ""
        ours = [1000 * (r.time_per_step_s or 0) for r in records]
        if gpu:
            ax_t.bar(x - width / 2, ours, width, label=f"ours ({device})")
            ax_t.bar(x + width / 2, [1000 * p.get("time_s", 0) for p in paper], width, label="paper (GTX 1080)")
            ax_t.set_ylabel("ms per training step (GPU)")
        else:
            # CPU milliseconds are no measure of the paper's GPU milliseconds: ours alone, the ratios compare.
            ax_t.bar(x, ours, 2 * width, label=f"ours ({device})")
            ax_t.set_ylabel("ms per training step (CPU)")
        ax_t.set_xticks(x, labels)
        if panels == 3:
            ax_m = axes[1]
            ax_m.bar(x - width / 2, [m or 0 for m in mem], width, label="ours (MiB)")
            ax_m.bar(x + width / 2, [p.get("mem_mb", 0) for p in paper], width, label="paper (MB)")
            ax_m.set_ylabel("peak GPU memory (MiB / MB)")
            ax_m.set_xticks(x, labels)
        by_model = {r.model: r for r in records}
        base_arch = baseline_arch(records[0].experiment)
        ours_r, paper_r = [math.nan, math.nan], [math.nan, math.nan]
        if "sequnet" in by_model and base_arch in by_model:
            s, t = by_model["sequnet"], by_model[base_arch]
            if s.time_per_step_s and t.time_per_step_s:
                ours_r[0] = s.time_per_step_s / t.time_per_step_s
            if s.peak_memory_mib and t.peak_memory_mib:
                ours_r[1] = s.peak_memory_mib / t.peak_memory_mib
            ps, pt = PAPER_TABLE1.get((s.experiment, "sequnet")), PAPER_TABLE1.get((s.experiment, base_arch))
            if ps and pt:
                paper_r = [ps["time_s"] / pt["time_s"], ps["mem_mb"] / pt["mem_mb"]]
        xr = np.arange(2)
        ax_r.bar(xr - width / 2, ours_r, width, label="ours")
        ax_r.bar(xr + width / 2, paper_r, width, label="paper")
        ax_r.axhline(1.0, color="0.3", lw=0.8)
        if math.isnan(ours_r[1]):
            ax_r.text(1 - width / 2, 0.05, "ours: no\nGPU peak", ha="center", va="bottom", rotation=90)
        ax_r.set_xticks(xr, ["time", "memory"])
        ax_r.set_ylabel(f"Seq-U-Net / {ARCH_LABELS[base_arch]} (ratio)")
        for ax in axes:
            ax.grid(axis="y", alpha=0.3)
            ax.legend()
        fig.suptitle(f"{records[0].experiment}: cost of a training step" if records else "")
        fig.tight_layout()
    return fig


# Columns of the configuration tables: (title, left-aligned?). Audio runs describe their two architectures in
# words and are bounded by a time budget rather than by epochs.
CONFIG_COLUMNS = {
    "audio": [("model", True), ("params", False), ("structure", True), ("past samples seen", False),
              ("window (inputs → scored)", True), ("batch", False), ("lr", False), ("time budget", False),
              ("steps/epoch", False), ("eval. windows/split", False)],
    "other": [("model", True), ("params", False), ("levels × kernel", True), ("H", False), ("emb.", False),
              ("dropout", False), ("window (inputs → scored)", True), ("epochs", False), ("steps/epoch", False),
              ("eval. items/split", False), ("lr", False), ("clip", False)],
}


def _structure(s) -> str:
    if s.arch == "wavenet":
        return f"{s.blocks} × {s.levels} layers, {s.hidden} residual / {s.skip} skip channels, k = {s.kernel_size}"
    return f"residual, L = {s.levels}, F = {s.hidden}, D = {s.depth}, k = {s.kernel_size}"


def _config_row(arch: str, c: RunConfig) -> list[Any]:
    s = c.setting
    inputs, scored = s.input_output
    model, params = ARCH_LABELS.get(arch, arch), f"{count_parameters(build_model(s)):,}"
    extent = [c.max_steps_per_epoch or "all", c.eval_limit or "all"]
    if s.kind == "audio":
        budget = "none" if c.time_budget_s is None else f"{c.time_budget_s:g} s"
        return [model, params, _structure(s), f"{s.receptive_field:,}", f"{inputs:,} → {scored:,}", c.batch_size,
                f"{c.lr:.3g}", budget] + extent
    window = "whole sequences" if inputs is None else f"{inputs} → {scored}"
    return [model, params, f"{s.levels} × {s.kernel_size}", s.hidden, s.emsize or "–", s.dropout, window,
            c.epochs] + extent + [f"{c.lr:.3g}", "off" if c.clip is None else f"{c.clip:.3g}"]


def config_markdown(configs: dict[str, RunConfig]) -> str:
    """A Markdown table of what each run will train: model size, window, extent and optimiser settings."""
    kind = "audio" if any(c.setting.kind == "audio" for c in configs.values()) else "other"
    columns = CONFIG_COLUMNS[kind]
    lines = ["| " + " | ".join(title for title, _ in columns) + " |",
             "|" + "|".join("---" if left else "---:" for _, left in columns) + "|"]
    lines += ["| " + " | ".join(str(v) for v in _config_row(arch, c)) + " |" for arch, c in configs.items()]
    return "\n".join(lines)
