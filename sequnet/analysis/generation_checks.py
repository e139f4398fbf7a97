"""Section 4.2 checked on the step-wise generator (``sequnet.core.generation``): which levels a step updates, that
step-by-step generation equals the full forward pass, and how fast it runs here. Figures and tables of the
generation and complexity chapters; nothing is trained, random weights suffice to test an algorithm.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from sequnet.analysis.complexity import (clock_schedule, mean_levels_per_step, measured_generation_counts,
                                         res_sequnet_mean_layers_per_step)
from sequnet.analysis.figures import MAX_WIDTH_IN, styled
from sequnet.analysis.sweeps import SEQ, AudioModels
from sequnet.core.models import OneHotModel, ResSeqUNet, ResSeqUNetConfig, WaveNet, WaveNetConfig


@styled
def plot_update_grid(levels: int = 11, steps: int = 64):
    """Black where level i (row) computes at generation step s (column): every 2^(i-1) steps."""
    import matplotlib.pyplot as plt

    updated = np.array([[s % 2 ** i == 0 for s in range(steps)] for i in range(levels)])
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_IN, 2.8))
    ax.imshow(updated, aspect="auto", cmap="Greys", interpolation="nearest", origin="lower")
    ax.set(xlabel="generation step", ylabel="level", yticks=range(levels), yticklabels=range(1, levels + 1),
           title="Levels updated per step (black), piano Seq-U-Net")
    fig.tight_layout()
    return fig


def measure_levels(small: AudioModels, levels: tuple[int, ...]) -> dict[int, dict]:
    """The generator's counters over one full clock period (2^(L-1) + 1 steps) for each L; {} when the generator
    cannot be imported (the closed forms do not need it)."""
    try:
        return {L: measured_generation_counts(small.sequnet(L), 2 ** (L - 1) + 1) for L in levels}
    except ImportError as e:
        print(f"step-wise generator not available ({e}); showing the clock schedule only")
        return {}


@styled
def plot_levels_per_step(measured: dict[int, dict], show_levels: int = 6):
    """Left: the clock schedule of the first 64 steps. Right: the mean levels per step against L, closed form
    and (when ``measured``) the generator's counters, with the worst step and the bound 2."""
    import matplotlib.pyplot as plt

    fig, (sched, mean) = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.4))
    sched.bar(np.arange(1, 65), clock_schedule(64, show_levels), color=SEQ, width=0.8)
    sched.axhline(mean_levels_per_step(show_levels), color="k", ls="--", lw=1, label="mean")
    sched.set(xlabel="generated sample", ylabel="levels updated", title=f"Clock schedule, L = {show_levels}")
    sched.legend()
    Ls = np.arange(1, 12)
    mean.plot(Ls, [mean_levels_per_step(L) for L in Ls], "-", color=SEQ, label=r"$\sum_i 2^{-(i-1)}$")
    if measured:
        mean.plot(list(measured), [r["mean_levels_per_step"] for r in measured.values()], "s", color=SEQ,
                  label="generator counters")
    mean.plot(Ls, Ls, ":", color="grey", label="worst step (all L levels)")
    mean.axhline(2, color="k", lw=1, label="bound 2")
    mean.set(xlabel="levels L", ylabel="levels updated per sample", title="Average over a clock period",
             yscale="log")
    mean.legend()
    fig.tight_layout()
    return fig


def levels_report(measured: dict[int, dict], depth: int) -> str:
    """Check the counters against the closed form (``AssertionError`` naming L if they differ) and describe the
    deepest model's: level counts, levels and layers per step against the cached WaveNet's 52 layers."""
    if not measured:
        return ""
    for L, r in measured.items():
        if abs(r["mean_levels_per_step"] - mean_levels_per_step(L)) > 1e-12 or r["mean_levels_per_step"] >= 2:
            raise AssertionError(f"L = {L}: the generator updated {r['mean_levels_per_step']} levels per step, "
                                 f"the closed form says {mean_levels_per_step(L)}")
    L = max(measured)
    r = measured[L]
    return (f"L = {L}: {r['steps']} steps, level counts {r['level_counts']}, {r['mean_levels_per_step']:.4f} levels "
            f"per step (closed form {mean_levels_per_step(L):.4f}, bound 2)\nlayers evaluated per step: "
            f"{r['mean_layers_per_step']:.2f} measured, {res_sequnet_mean_layers_per_step(L, depth):.2f} closed "
            f"form; the paper's WaveNet evaluates all {4 * 13} of its dilated layers at every step")


def small_models() -> dict[str, OneHotModel]:
    """A small residual Seq-U-Net and a small WaveNet over 256 classes, random weights."""
    return {
        "Seq-U-Net (L=5, F=16, D=2)": OneHotModel(ResSeqUNet(ResSeqUNetConfig(256, 16, 5, 256, 5, 2)), 256),
        "WaveNet (2 x 6 layers)": OneHotModel(WaveNet(WaveNetConfig(256, blocks=2, layers=6, residual_channels=16,
                                                                    skip_channels=32, end_channels=32)), 256),
    }


def greedy_check(models: dict[str, OneHotModel], n_new: int, batch: int = 3) -> str:
    """Greedy generation must pick, at every generated position, the argmax of one full forward pass over the final
    sequence (float64). A markdown table; ``AssertionError`` naming the model that disagrees."""
    from sequnet.core.generation import generate, init_state, minimal_window

    rows = ["| model | steps x batch | greedy = argmax of full forward | layers updated per step |",
            "|---|---:|---:|---:|"]
    for name, model in models.items():
        model = model.double().eval()
        window = minimal_window(model)
        prime = torch.randint(0, 256, (batch, window))
        out = generate(model, prime, n_new, greedy=True, progress=False)
        with torch.no_grad():
            full = model(out)                       # outputs for the inputs after `history`
        # output j predicts the element after input history + j; generated element t comes after input t - 1
        start = window - 1 - model.body.history
        agree = (full.argmax(1)[:, start:start + n_new] == out[:, window:]).float().mean().item()
        state = init_state(model, prime)
        state.generate(n_new, greedy=True, progress=False)
        rows.append(f"| {name} | {n_new} x {batch} | {agree:.0%} | {state.mean_layers_per_step:.2f} |")
        if agree != 1.0:
            raise AssertionError(f"{name}: greedy generation disagrees with the full forward pass")
    return "\n".join(rows)


def time_generation(models: dict[str, OneHotModel], steps: int, device: torch.device) -> list[str]:
    """Samples per second of eager cached generation at batch 1 in float32 on ``device``, after 16 warm-up steps."""
    from sequnet.core.generation import init_state, minimal_window

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    lines = []
    for name, model in models.items():
        model = model.float().to(device)
        state = init_state(model, torch.randint(0, 256, (1, minimal_window(model)), device=device))
        state.generate(16, progress=False)                  # warm-up
        sync()
        t0 = time.perf_counter()
        state.generate(steps, progress=False)
        sync()
        lines.append(f"{name:28s} {steps / (time.perf_counter() - t0):10,.0f} samples/s on {device.type} "
                     "(batch 1, eager, float32)")
    return lines
