"""The models chapter: every model of the paper built and described, its settings side by side, and the
activation counts of section 4 from the closed forms of :mod:`sequnet.core.sizes`. Nothing is trained.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from sequnet.core import sizes
from sequnet.core.configs import ARCHS, TASKS, count_parameters, paper_model, paper_setting
from sequnet.experiment.records import PAPER_TABLE1
from sequnet.analysis.figures import MAX_WIDTH_IN, STYLE

# Table 3's "Context" column as printed (for the TCNs the unscored history of a training window, not the receptive
# field; "Full": whole sequences), and Table 2's receptive fields of the piano models. piano_midi is not in the paper.
PAPER_CONTEXT = {("char_ptb", "tcn"): 80, ("char_ptb", "sequnet"): 73, ("word_ptb", "tcn"): 73,
                 ("word_ptb", "sequnet"): 73, ("piano_audio", "wavenet"): 32764, ("piano_audio", "sequnet"): 32748}
PAPER_CONTEXT |= {(task, arch): "Full" for task in ("muse", "nottingham", "jsb") for arch in ("tcn", "sequnet")}
SETTING_FIELDS = ("kernel_size", "levels", "hidden", "dropout", "lr", "clip", "patience", "epochs", "batch_size",
                  "target_output", "history", "emsize", "depth")


def models_markdown() -> str:
    """One row per (task, model): class, parameters counted on the built model (a tied embedding once),
    receptive field, training window, and the paper's printed parameters (``PAPER_TABLE1``) and context."""
    rows = ["| Task | Model | Class | Parameters | Receptive field | Training window (in → scored) "
            "| Paper: params | Paper: context |", "|---|---|---|---:|---:|---|---:|---:|"]
    for task in TASKS:
        for arch in ARCHS[task]:
            setting = paper_setting(task, arch)
            model = paper_model(task, arch)
            inp, out = setting.input_output
            window = "whole sequences" if inp is None else f"{inp:,} → {out:,}"
            printed = PAPER_TABLE1.get((task, arch), {}).get("params", "–")
            context = PAPER_CONTEXT.get((task, arch), "–")
            rows.append(f"| {task} | {arch} | `{type(getattr(model, 'body', model)).__name__}` | "
                        f"{count_parameters(model):,} | {setting.receptive_field:,} | {window} | {printed} | "
                        f"{context} |")
            del model
    return "\n".join(rows)


def settings_widget():
    """Task buttons over a stack of settings tables, linked in the browser (``widgets.jslink``) so that it works
    in the static book without a kernel."""
    import ipywidgets as widgets

    def table(task):
        archs = ARCHS[task]
        settings = [dataclasses.asdict(paper_setting(task, a)) for a in archs]
        head = "".join(f"<th>{a}</th>" for a in archs)
        body = "".join(f"<tr><td><code>{f}</code></td>" + "".join(f"<td>{s[f]}</td>" for s in settings) + "</tr>"
                       for f in SETTING_FIELDS)
        return widgets.HTML(f"<table><tr><th></th>{head}</tr>{body}</table>")

    picker = widgets.ToggleButtons(options=TASKS, description="Task")
    panel = widgets.Stack([table(t) for t in TASKS], selected_index=0)
    widgets.jslink((picker, "index"), (panel, "selected_index"))
    return widgets.VBox([picker, panel])


def plot_activations(points: int = 24):
    """Left: the paper's closed forms per input sample against the receptive field. Right: the exact counts of
    Table 2's piano models against input length (``points`` lengths). Returns the figure and a line with the
    counts at the longest input."""
    import matplotlib.pyplot as plt

    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.6))
        line = _draw_activations(plt, left, right, points)
        fig.tight_layout()
    return fig, line


def _draw_activations(plt, left, right, points: int) -> str:
    levels = np.arange(1, 17)
    n = 2.0 ** levels
    left.plot(n, [sizes.wavenet_activation_count(1, N) for N in n], "o-", label=r"WaveNet / TCN: $\log_2 N$")
    left.plot(n, [sizes.sequnet_activation_bound(1, L) for L in levels], "s-", label=r"Seq-U-Net: $\sum_i 4/2^i$")
    left.axhline(8, color="grey", ls=":", lw=1)
    left.set(xscale="log", xlabel="receptive field N (samples)", ylabel="activations per input sample",
             title="Closed form (section 4)")
    left.legend()

    res = paper_setting("piano_audio", "sequnet")
    base = sizes.res_sequnet_plan(res.levels, res.kernel_size, res.depth).input_length
    cycle = 2 ** (res.levels - 1)                  # valid input lengths grow in steps of 2^(L-1)
    steps = np.unique(np.geomspace(1, 512, points).astype(int)) if points > 4 else [0, 8, 32, 128]
    inputs = [base + cycle * s for s in steps]
    sequ = [sum(sizes.res_sequnet_activation_counts(i, res.levels, res.kernel_size, res.depth)) / i for i in inputs]
    wave = [sum(sizes.wavenet_activation_counts(i, 4, 13)) / i for i in inputs]
    right.plot(inputs, wave, "o-", label="WaveNet (52 layers)")
    right.plot(inputs, sequ, "s-", label="Seq-U-Net, residual")
    right.set(xscale="log", xlabel="input length I (samples)", ylabel="activations per input sample",
              title="Piano models (Table 2)")
    right.xaxis.set_minor_formatter(plt.NullFormatter())   # the log axis' minor labels overlap
    right.legend()
    return (f"I = {inputs[-1]:,}: WaveNet {wave[-1]:.1f}, Seq-U-Net {sequ[-1]:.1f} activations per input "
                 "sample")


def write_receptive_field_sweep(path: Path, rate: int = 16_000, f0: float = 110.0, f1: float = 1760.0) -> float:
    """An exponential sine sweep from ``f0`` to ``f1`` Hz exactly as long as the piano Seq-U-Net's receptive field,
    written as 16-bit audio to ``path``; returns its duration in seconds."""
    import soundfile as sf

    samples = paper_setting("piano_audio", "sequnet").receptive_field
    seconds = samples / rate
    t = np.arange(samples) / rate
    phase = 2 * np.pi * f0 * seconds / math.log(f1 / f0) * ((f1 / f0) ** (t / seconds) - 1)
    fade = np.minimum(1, np.minimum(t, seconds - t) / 0.02)
    sf.write(path, 0.3 * np.sin(phase) * fade, rate, subtype="PCM_16")
    return seconds
