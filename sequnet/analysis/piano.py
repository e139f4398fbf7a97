"""The raw piano chapter: what a piano run (:mod:`sequnet.experiment.piano_run`) produced, as tables, figures,
audio files and listening-test items.

Audio files go under the notebook's ``out_dir`` (the notebook plays them with
``sequnet.publish.notebook_view.audio_player``, which this layer may not import): the functions here return the
paths and captions to play.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import soundfile
import torch

from sequnet.analysis import listening, stability
from sequnet.core.configs import ARCH_LABELS
from sequnet.data.audio import mu_law_decode
from sequnet.experiment import piano_run
from sequnet.experiment.piano_data import generation_path, load_generation
from sequnet.experiment.records import PAPER_TABLE1, ResultRecord, percent

ARCHS = ("sequnet", "wavenet")       # the residual Seq-U-Net and its baseline, in the chapter's order


def run_records(run_dir: str | os.PathLike) -> dict[str, ResultRecord]:
    """The run's final record of each model, in the chapter's order."""
    return {a: ResultRecord.load(Path(run_dir) / "records" / f"piano_audio_{a}.json") for a in ARCHS}


def steps(record: ResultRecord) -> int:
    return sum(h["steps"] for h in record.history)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def comparison_markdown(run_dir: str | os.PathLike) -> str:
    """Test bits per sample (a) at equal iterations, (b) at equal training time, beside the paper's (which trained
    both models 246k iterations); from the run's ``comparison.json`` and records."""
    comp = json.loads((Path(run_dir) / "comparison.json").read_text())
    records = run_records(run_dir)
    head = ["| model | steps | of the paper's | train time (s) | train | test | paper test |",
            "|---|---:|---:|---:|---:|---:|---:|"]

    def row(arch, point):
        seconds = point.get("train_seconds")
        return (f"| {ARCH_LABELS[arch]} | {point['steps']:,} | {percent(point['fraction_of_paper'])} "
                f"| {'–' if seconds is None else f'{seconds:,.1f}'} | {_fmt(point['train_bits'])} "
                f"| {_fmt(point['test_bits'])} | {PAPER_TABLE1[('piano_audio', arch)]['test']:.2f} |")

    a, ends = comp["equal_iterations"], comp.get("ends", comp["equal_time"])   # a run before "ends": one table

    def end_row(arch):   # the records' own point, with their costs (checked against them: publish.chapter_records)
        r = records[arch]
        ms = "–" if r.time_per_step_s is None else f"{1000 * r.time_per_step_s:.1f}"
        return row(arch, ends[arch]) + f" {ms} | {_fmt(r.peak_memory_mib, 1)} |"
    lines = [f"**(a) Equal iterations**: both models after {a['wavenet']['steps']:,} steps (WaveNet's last), bits "
             "per sample", "", *head, *(row(x, a[x]) for x in ARCHS), ""]
    same = comp["equal_time"]
    if "seconds" in same:
        lines += [f"**(b) Equal training time**: both models after {same['seconds']:,.0f} s of training steps (the "
                  "shorter budget), read off the training curves: the training loss is the mean over the reporting "
                  "interval that ended nearest that time, the test loss is known where that interval was the "
                  "model's last", "",
                  "| model | steps | of the paper's | train time (s) | training loss | test |",
                  "|---|---:|---:|---:|---:|---:|",
                  *(f"| {ARCH_LABELS[x]} | {same[x]['steps']:,} | {percent(same[x]['fraction_of_paper'])} "
                    f"| {same[x]['train_seconds']:,.1f} | {_fmt(same[x]['train_loss_bits'])} "
                    f"| {_fmt(same[x]['test_bits'])} |" for x in ARCHS), "",
                  "**(c) Each model at the end of its budget**", ""]
    else:
        lines += ["**(b) Equal training time**: each model at the end of its budget", ""]
    return "\n".join(lines + [head[0] + " ms/step | peak MiB |", head[1] + "---:|---:|",
                              *(end_row(x) for x in ARCHS), "",
                              f"Time per training step and peak memory on {records['sequnet'].device}."])


def plot_run_curves(run_dir: str | os.PathLike):
    """Training loss of both models (mean over each reporting interval of random excerpts) against steps and
    against training seconds; the dotted lines mark the equal-iteration and the equal-time points."""
    import matplotlib.pyplot as plt

    data = json.loads((Path(run_dir) / "curves.json").read_text())
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for ax, x, label in zip(axes, ("steps", "seconds"), ("training steps", "training time (s)")):
        for arch in ARCHS:
            ax.plot(data[arch][x], data[arch]["train_bits"], "-o", ms=3, label=ARCH_LABELS[arch])
        ax.set_xlabel(label)
        ax.set_ylabel("train loss (bits per sample)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=10)
    axes[0].axvline(data["wavenet"]["steps"][-1], color="k", linestyle=":", linewidth=1)
    # the equal-time point: the end of the shorter budget
    axes[1].axvline(min(data[a]["seconds"][-1] for a in ARCHS), color="k", linestyle=":", linewidth=1)
    return fig


def stability_window(seconds: float) -> tuple[float, int]:
    """Measuring window (s) and Welch segment for continuations of ``seconds``: 1 s (the per-second measure) for
    long ones, shorter for the small scales' short ones (at least four windows)."""
    window = min(1.0, seconds / 4)
    return window, min(512, 2 ** int(np.log2(window * 16000)))


def long_measures(run_dir: str | os.PathLike, name: str = "long") -> dict[str, list[stability.StabilityMeasures]]:
    """Every continuation of a generated set measured window by window after its prime: "real piano" (what
    followed each prime), then each model."""
    ids, meta = load_generation(run_dir, name)
    start, sr = meta["prime_len"], meta["sr"]
    window, nperseg = stability_window((ids["real"].shape[1] - start) / sr)
    groups = {"real piano": ids["real"]} | {ARCH_LABELS[a]: ids[a] for a in ARCHS}
    return {label: [stability.measure(mu_law_decode(torch.from_numpy(row[start:].astype(np.int64))).numpy(), sr,
                                      window_s=window, nperseg=nperseg) for row in rows]
            for label, rows in groups.items()}


def trained_words(run_dir: str | os.PathLike) -> str:
    """How long each model trained: "Seq-U-Net 13,333 steps, WaveNet 2,614 (of the paper's 246,000)"."""
    records = run_records(run_dir)
    counts = [f"{ARCH_LABELS[a]} {steps(r):,}" + " steps" * (i == 0) for i, (a, r) in enumerate(records.items())]
    return f"{', '.join(counts)} (of the paper's {records['sequnet'].extent['paper_steps']:,})"


def stability_figure(measured: Mapping[str, list[stability.StabilityMeasures]], trained: str):
    """Median measures per window of each group, with real piano as the reference and the paper's 10 s marked
    when the generations reach it; ``trained`` (:func:`trained_words`) says in the title how long the models
    trained, so that a figure taken out of the chapter still says it."""
    curves = {label: stability.median_measures(m) for label, m in measured.items()}
    length = curves["real piano"].starts[-1] + curves["real piano"].window_s
    fig = stability.plot_stability(curves, reference="real piano", mark_s=10.0 if length > 10 else None)
    # each generation's noise onset (its first noisy window's centre), a triangle in its model's colour
    colours = {line.get_label(): line.get_color() for line in fig.axes[0].get_lines()}
    for label, group in measured.items():
        onsets = [t + m.window_s / 2 for t, m in ((stability.noise_onset(m), m) for m in group) if t is not None]
        if onsets:
            fig.axes[0].plot(onsets, [0.5] * len(onsets), "v", color=colours.get(label), ms=7, clip_on=False,
                             label=f"{label}: noise onsets")
    fig.axes[0].legend(loc="upper right", fontsize=9)   # the curves lie low: piano is far below white noise
    n = len(measured["real piano"])
    fig.suptitle(f"{n} continuations of {length:g} s at temperature 0.95, medians\n{trained}")
    return fig


def stability_claim(run_dir: str | os.PathLike, measured: Mapping[str, list[stability.StabilityMeasures]]) -> str:
    """What the measurements say about "WaveNet accumulates noise, Seq-U-Net stays stable", with each model's
    training steps and their fraction of the paper's (``stability.claim_text``)."""
    records = run_records(run_dir)
    reference = stability.median_measures(measured["real piano"])
    behaviours = {ARCH_LABELS[a]: stability.behaviour(measured[ARCH_LABELS[a]], reference) for a in ARCHS}
    paper = records["sequnet"].extent["paper_steps"]
    return stability.claim_text(behaviours, {ARCH_LABELS[a]: steps(r) for a, r in records.items()}, paper)


def speed_markdown(run_dir: str | os.PathLike, name: str = "long") -> str:
    """How fast each model generated the run's ``name`` set (all primes as one batch)."""
    ids, meta = load_generation(run_dir, name)
    sr = meta["sr"]
    lines = ["| model | sequences | steps/s | samples/s | × real time (per sequence) | device |",
             "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {ARCH_LABELS[a]} | {s['batch']} | {s['steps_per_s']:,.0f} | {s['batch'] * s['steps_per_s']:,.0f} "
              f"| {s['steps_per_s'] / sr:.2f} | {s['device']}{' (CUDA graphs)' * s['cuda_graphs']}"
              f"{_kernel_words(s)} |" for a, s in meta["speed"].items()]
    batch, rows = max(s["batch"] for s in meta["speed"].values()), len(ids["real"])
    notes = "\n\nIncluding the pass over the primes (and, on a GPU, capturing the CUDA graphs)."
    if batch > rows:
        notes += (f" The {rows} continuations of this set were generated in one batch of {batch} with the listening "
                  f"items' {batch - rows} primes: the speeds above are of that batch.")
    if "cut_from_s" in meta:
        notes += (f" **This set was cut at {(ids['real'].shape[1] - meta['prime_len']) / sr:g} s of the "
                  f"{meta['cut_from_s']:g} s asked:** the session's device time ran out during it.")
    return "\n".join(lines) + notes + " The paper: 309 (Seq-U-Net) and 69 (WaveNet) samples/s at batch 1 on a GTX 1080."


def _kernel_words(speed: dict) -> str:
    """', splitk kernels' on a GPU (sets made before the state named its products have no "kernel"), and the
    trial that chose them where candidates were timed first (', chain kernels (timed first: chain 5,000, splitk
    1,500 steps/s)')."""
    if not speed.get("kernel") or speed["kernel"] == "torch":
        return ""
    trial = speed.get("kernel_trial")
    timed = (" (timed first: " + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(trial.items(), key=lambda kv: -kv[1]))
             + " steps/s)") if trial else ""
    return f", {speed['kernel']} kernels{timed}"


def write_audio(path: Path, ids: torch.Tensor, sr: int) -> Path:
    """Decode mu-law ids to a 16-bit FLAC at ``path`` (written beside, then renamed: never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    soundfile.write(partial, mu_law_decode(torch.as_tensor(ids).long()).numpy(), sr, subtype="PCM_16", format="FLAC")
    os.replace(partial, path)
    return path


def _excerpts(folder: Path, prefix: str, reference: torch.Tensor, reference_name: str, reference_label: str,
              generated: Mapping[str, torch.Tensor], length: int, sr: int,
              titles: list[str]) -> list[tuple[str, list[tuple[Path, str]]]]:
    """Write the first ``length`` samples of each excerpt: the reference and every model's continuation; returns
    (title, [(path, caption), ...]) per excerpt (one per title), to be played in that order."""
    shown = []
    for i, title in enumerate(titles):
        files = [(write_audio(folder / f"{prefix}{i + 1:02d}_{reference_name}.flac", reference[i, :length], sr),
                  reference_label)]
        files += [(write_audio(folder / f"{prefix}{i + 1:02d}_{arch}.flac", ids[i, :length], sr),
                   f"prime + {ARCH_LABELS[arch]}") for arch, ids in generated.items()]
        shown.append((title, files))
    return shown


def listening_excerpts(folder: Path, primes: torch.Tensor, generated: Mapping[str, torch.Tensor], length: int,
                       sr: int, sources: list[str]) -> list[tuple[str, list[tuple[Path, str]]]]:
    """Every excerpt as the listening test has it: the prime, then each model's continuation to ``length``."""
    return _excerpts(folder, "item", primes, "prime", "real piano (prime)", generated, length, sr,
                     [f"**Excerpt {i + 1}** ({source})" for i, source in enumerate(sources)])


def _set(run_dir, name: str):
    ids, meta = load_generation(run_dir, name)
    return {k: torch.from_numpy(v.astype(np.int64)) for k, v in ids.items()}, meta


def long_excerpts(folder: Path, run_dir: str | os.PathLike, count: int = 2,
                  name: str = "long") -> list[tuple[str, list[tuple[Path, str]]]]:
    """The first ``count`` long continuations of the run with the real piano that followed the same prime."""
    ids, meta = _set(run_dir, name)
    seconds = (ids["real"].shape[1] - meta["prime_len"]) / meta["sr"]
    return _excerpts(folder, "long", ids["real"], "real", "real piano", {a: ids[a] for a in ARCHS},
                     ids["real"].shape[1], meta["sr"],
                     [f"**Excerpt {i + 1}** ({meta['sources'][i]}), {meta['prime_len'] / meta['sr']:g} s prime + "
                      f"{seconds:g} s" for i in range(min(count, len(ids["real"])))])


def write_items(out: Path, run_dir: str | os.PathLike) -> str:
    """The listening-test items under ``out`` from the run's ``items`` generation set: per item the real prime
    and both models' continuations (prime included), written by ``listening.write_items`` under random clip names
    with the key beside them. The set has its own primes, never this chapter's excerpts. Items already in the
    folder are kept (their key holds the clip names that responses refer to)."""
    folder = out / listening.ITEMS_SUBDIR
    if (folder / listening.ITEMS_MANIFEST).is_file():
        return f"the items already in {folder.name}/ are kept ({len(listening.load_items(folder).items)} items)"
    if not generation_path(Path(run_dir), piano_run.ITEMS_SET).is_file():
        return (f"the run holds no generated items ({piano_run.ITEMS_SET}.npz) and {folder.name}/ holds no items: "
                f"nothing to write")
    ids, meta = _set(run_dir, piano_run.ITEMS_SET)
    p, sr = meta["prime_len"], meta["sr"]
    generation = {"prime_seconds": p / sr, "continuation_seconds": (ids["real"].shape[1] - p) / sr,
                  "temperature": meta["temperature"], "seed": meta["seed"], "n_items": len(ids["real"])}
    items = listening.write_items(folder, _decoded(ids["real"][:, :p]), {a: _decoded(ids[a]) for a in ARCHS}, sr,
                                  sources=meta["sources"], generation=generation)
    return f"{len(items.items)} listening items in {items.folder.name}/: " + items.describe()


def _decoded(rows: torch.Tensor) -> list[np.ndarray]:
    return [mu_law_decode(row).numpy() for row in rows]
