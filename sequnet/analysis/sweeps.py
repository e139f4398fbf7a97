"""Section 4's claims measured on real training steps: Seq-U-Net against WaveNet as the input length and the depth
grow, and the figures of the complexity chapter.

:func:`sweep` runs the audio pair of Table 2 (or a narrower copy, per scale: ``SWEEP_PLANS``) through
:func:`measure_point`: analytic counts (:mod:`sequnet.analysis.complexity`), the tensors autograd keeps, and the
time and peak memory of a full training step. :func:`plot_sweeps` draws a sweep's result (this run's, or a
committed GPU run's ``{"meta", "rows"}`` JSON from ``benchmarks/complexity.py``) against the analytic prediction;
:func:`plot_closed_forms` and :func:`check_layer_lists` are the chapter's closed-form figure and its check that
the models compute what the formulas count.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from sequnet.analysis.figures import MAX_WIDTH_IN, styled
from sequnet.analysis.complexity import (activations, count_saved_activations, layer_shapes, model_layers,
                                         res_sequnet_layers, single_cpu_thread, time_training_step, wavenet_layers)
from sequnet.core.sizes import res_sequnet_ideal_activations, sequnet_ideal_activations, wavenet_ideal_activations
from sequnet.core import sizes
from sequnet.core.models import ResSeqUNet, ResSeqUNetConfig, SeqUNet, SeqUNetConfig, TCN, TCNConfig, WaveNet, \
    WaveNetConfig
from sequnet.core.models.layers import OneHotModel
from sequnet.experiment.presets import SCALES, Sweep

SEQ, WAVE = "tab:blue", "tab:orange"     # one colour per model in every figure of the chapter


# --------------------------------------------------------------------------------------------------------------
# The sweep: Seq-U-Net vs WaveNet as the input length and the depth grow

@dataclass(frozen=True)
class AudioModels:
    """The raw-audio pair of Table 2, or a narrower copy of it: residual Seq-U-Net (F, D, k) and WaveNet."""
    features: int = 180
    depth: int = 2
    kernel_size: int = 5
    wavenet_channels: int = 128
    skip_channels: int = 512
    end_channels: int = 512
    classes: int = 256
    blocks: int = 4             # WaveNet stacks

    def sequnet(self, levels: int) -> OneHotModel:
        return OneHotModel(ResSeqUNet(ResSeqUNetConfig(self.classes, self.features, levels, self.classes,
                                                       self.kernel_size, self.depth)), self.classes)

    def wavenet(self, layers: int) -> OneHotModel:
        return OneHotModel(WaveNet(WaveNetConfig(self.classes, self.blocks, layers, 2, self.wavenet_channels,
                                                 self.skip_channels, self.end_channels, self.classes)), self.classes)

    def sequnet_rf(self, levels: int) -> int:
        return sizes.res_sequnet_rf(levels, self.kernel_size, self.depth)[1]

    def matched_wavenet_layers(self, levels: int) -> int:
        """Layers per WaveNet stack for a receptive field at least the Seq-U-Net's (13 for the paper's L = 11)."""
        return next(n for n in range(1, 64) if sizes.wavenet_rf(self.blocks, n) >= self.sequnet_rf(levels))

    def sequnet_input(self, levels: int, outputs: int | None = None, at_most: int | None = None) -> int:
        """Input length for at least ``outputs`` outputs, or the longest allowed input of at most ``at_most``."""
        plan = sizes.res_sequnet_plan(levels, self.kernel_size, self.depth)
        if outputs is not None:
            return sizes.res_sequnet_plan(levels, self.kernel_size, self.depth, outputs).input_length
        cycle = 2 ** (levels - 1)
        if at_most < plan.input_length:
            raise ValueError(f"input length {at_most} is shorter than the L={levels} Seq-U-Net's shortest, "
                             f"{plan.input_length}")
        return plan.input_length + (at_most - plan.input_length) // cycle * cycle

    def wavenet_input(self, layers: int, outputs: int | None = None, at_most: int | None = None) -> int:
        history = sizes.wavenet_rf(self.blocks, layers) - 1
        if outputs is not None:
            return history + outputs
        if at_most <= history:
            raise ValueError(f"input length {at_most} is too short for a WaveNet with {layers} layers per stack")
        return at_most


@dataclass(frozen=True)
class SweepPlan(Sweep):
    """A scale's sweep (its row of ``sequnet.experiment.presets.SCALES``) with the audio models it measures."""
    models: AudioModels = AudioModels()


def _plan(sweep: Sweep) -> SweepPlan:
    numbers = {f.name: getattr(sweep, f.name) for f in dataclasses.fields(sweep)}
    return SweepPlan(**numbers, models=AudioModels(**sweep.widths))


SWEEP_PLANS = {name: _plan(s.sweep) for name, s in SCALES.items()}


def measure_point(model: OneHotModel, input_length: int, batch: int, device: torch.device, steps: int,
                  warmup: int, seed: int = 0) -> dict:
    """Analytic counts, saved-tensor counts, time and peak memory of one model at one input length."""
    torch.manual_seed(seed)
    model = model.to(device).train()
    body = model.body
    outputs = body.check_length(input_length)
    ids = torch.randint(0, model.classes, (batch, input_length), device=device)
    target = torch.randint(0, model.classes, (batch, outputs), device=device)
    layers = model_layers(body, input_length)
    saved = count_saved_activations(body, model.embed(ids))
    timing = time_training_step(model, ids, target, F.cross_entropy, steps, warmup)
    return {"input_length": input_length, "output_length": outputs, "batch": batch,
            "receptive_field": body.history + 1, "params": sum(p.numel() for p in model.parameters()),
            "layers": len(layers), "activations": activations(layers),
            "activations_x_channels": activations(layers, channels=True),
            "saved_elements": saved.elements // batch, "saved_bytes": saved.bytes // batch, **timing}


def sweep(plan: SweepPlan, device: torch.device, progress: Callable[[str], None] | None = print) -> list[dict]:
    """Both models over the plan's output lengths (at fixed depth) and depths (at fixed input length).

    Each row has ``sweep`` ("length" or "depth"), ``arch``, ``levels`` (Seq-U-Net levels, or WaveNet layers per
    stack) and the fields of :func:`measure_point`; saved counts are per batch element.
    """
    m = plan.models
    rows = []

    def run(kind, arch, levels, input_length):
        model = m.sequnet(levels) if arch == "sequnet" else m.wavenet(levels)
        r = {"sweep": kind, "arch": arch, "levels": levels,
             **measure_point(model, input_length, plan.batch, device, plan.steps, plan.warmup)}
        del model
        rows.append(r)
        if progress:
            mem = f"{r['peak_memory_mib']:9.1f} MiB" if r["peak_memory_mib"] else "        - MiB"
            progress(f"{kind:6s} {arch:8s} L={levels:2d} I={input_length:7d}: {r['time_median_s'] * 1e3:9.2f} ms, "
                     f"{mem}, saved {r['saved_bytes'] / 2 ** 20:9.1f} MiB per sequence")

    wave_layers = m.matched_wavenet_layers(plan.length_levels)
    with single_cpu_thread(device):
        for t in plan.outputs:
            run("length", "sequnet", plan.length_levels, m.sequnet_input(plan.length_levels, outputs=t))
            run("length", "wavenet", wave_layers, m.wavenet_input(wave_layers, outputs=t))
        for levels in plan.depth_levels:
            run("depth", "sequnet", levels, m.sequnet_input(levels, at_most=plan.depth_input))
            layers = m.matched_wavenet_layers(levels)
            run("depth", "wavenet", layers, m.wavenet_input(layers, at_most=plan.depth_input))
    return rows




# --------------------------------------------------------------------------------------------------------------
# Figures and summaries

def predicted(measured, analytic, offset: bool) -> np.ndarray:
    """The analytic count scaled to the measurement: times a constant pinned at the largest point, or (with
    ``offset``) a least-squares a + b * count in relative error, a being what does not scale with the
    activations (parameters, optimizer state, kernel launches)."""
    measured, analytic = np.asarray(measured, float), np.asarray(analytic, float)
    if not offset or len(measured) < 3:
        return analytic * measured[-1] / analytic[-1]
    b, a = np.polyfit(analytic, measured, 1, w=1 / measured)
    return a + b * analytic


def time_key(meta: dict) -> str:
    """GPU: the median step; a shared CPU is noisy, so its best step is the fairer measure of the work."""
    return "time_median_s" if meta["device"] != "cpu" else "time_min_s"


@styled
def plot_sweeps(result: dict, title: str):
    """Saved activations, step time and peak memory (GPU only) against input length (top row) and depth (bottom
    row), markers measured, dashed lines the analytic counts scaled by :func:`predicted`."""
    import matplotlib.pyplot as plt

    meta, rows = result["meta"], result["rows"]
    on_gpu = meta["device"] != "cpu"
    panels = [("saved_bytes", 2 ** -20, "saved for backward (MiB / sequence)", False),
              (time_key(meta), 1e3, "training step (ms)" + ("" if on_gpu else ", best of steps"), True)]
    if on_gpu:
        panels.append(("peak_memory_mib", 1, "peak allocated (MiB)", True))
    fig, axes = plt.subplots(2, len(panels), figsize=(min(MAX_WIDTH_IN, 2.7 * len(panels)), 6.4), squeeze=False)
    seq_levels = [r["levels"] for r in rows if r["sweep"] == "depth" and r["arch"] == "sequnet"]
    for row, (kind, xlabel) in enumerate([("length", "input length I (samples)"), ("depth", "Seq-U-Net levels L")]):
        for col, (key, factor, ylabel, offset) in enumerate(panels):
            ax = axes[row, col]
            for arch, color, marker in (("sequnet", SEQ, "s"), ("wavenet", WAVE, "o")):
                pts = [r for r in rows if r["sweep"] == kind and r["arch"] == arch]
                # depth points come in pairs: WaveNet's receptive field matches the Seq-U-Net's of the same L
                xs = [r["input_length"] for r in pts] if kind == "length" else seq_levels
                ys = [r[key] * factor for r in pts]
                ax.plot(xs, ys, marker, color=color, label="Seq-U-Net" if arch == "sequnet" else "WaveNet")
                ax.plot(xs, predicted(ys, [r["activations_x_channels"] for r in pts], offset), "--", color=color,
                        lw=1)
            ax.set(yscale="log", xlabel=xlabel, ylabel=ylabel)
            if kind == "length":
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(plt.NullFormatter())     # crowded minor labels overlap
    axes[0, 0].legend()
    fig.suptitle(f"{title}: {meta['device']}, torch {meta['torch']}, {meta['date'][:10]} ({meta['plan']} plan)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def sweep_summary(result: dict) -> str:
    """Markdown: Seq-U-Net against WaveNet at the longest input of each sweep, and the depth growth of each."""
    rows, t = result["rows"], time_key(result["meta"])

    def points(kind, arch):
        return [r for r in rows if r["sweep"] == kind and r["arch"] == arch]

    lines = []
    for kind in ("length", "depth"):
        s, w = points(kind, "sequnet")[-1], points(kind, "wavenet")[-1]
        mem = f", peak memory {w['peak_memory_mib'] / s['peak_memory_mib']:.1f}x" if s["peak_memory_mib"] else ""
        lines.append(f"* {kind} sweep, last point (I = {s['input_length']:,}, L = {s['levels']} vs WaveNet "
                     f"{w['levels']} per stack): WaveNet keeps {w['saved_bytes'] / s['saved_bytes']:.1f}x the "
                     f"activations, takes {w[t] / s[t]:.1f}x the time{mem}.")
    for arch in ("sequnet", "wavenet"):
        pts = points("depth", arch)
        per = [r["saved_elements"] / r["input_length"] for r in pts]
        ratios = [r["saved_elements"] / r["activations_x_channels"] for r in pts]
        lines.append(f"* {arch}: saved elements per input sample from {pts[0]['levels']} to {pts[-1]['levels']} "
                     f"levels: {per[0]:,.0f} → {per[-1]:,.0f} (max {max(per):,.0f}); saved / analytic = "
                     f"{min(ratios):.2f}…{max(ratios):.2f}")
    return "\n".join(lines)


@styled
def plot_closed_forms(pair: AudioModels = AudioModels(), input_length: int = 2 ** 16):
    """Left: activations per input sample of the closed forms against depth. Right: the exact per-layer counts of
    Table 2's two piano models (valid convolutions) against input length, with their closed forms."""
    import matplotlib.pyplot as plt

    fig, (by_depth, by_length) = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.8))
    levels, I0 = np.arange(2, 17), input_length
    by_depth.plot(levels, [wavenet_ideal_activations(I0, 4, L + 2) / I0 for L in levels], "o-", color=WAVE,
                  label="WaveNet, 4 stacks (receptive field matched)")
    by_depth.plot(levels, [wavenet_ideal_activations(I0, 1, L + 4) / I0 for L in levels], "o--", color=WAVE,
                  mfc="none", label=r"WaveNet, one stack: $\log_2 N$ (paper)")
    by_depth.plot(levels, [res_sequnet_ideal_activations(I0, L, 2) / I0 for L in levels], "s-", color=SEQ,
                  label="Seq-U-Net, residual (D = 2)")
    by_depth.plot(levels, [sequnet_ideal_activations(I0, L) / I0 for L in levels], "s--", color=SEQ, mfc="none",
                  label="Seq-U-Net, base")
    by_depth.axhline(8, color="grey", ls=":", lw=1)
    by_depth.text(12, 8.4, "8 I (paper's bound)", color="grey")
    by_depth.set(yscale="log", xlabel="Seq-U-Net levels L", ylabel="activations per input sample",
                 title="Closed forms vs depth")
    by_depth.legend()

    outputs = np.unique(np.geomspace(1, 2 ** 18, 20).astype(int))
    seq_in = [pair.sequnet_input(11, outputs=int(t)) for t in outputs]
    wave_in = [pair.wavenet_input(13, outputs=int(t)) for t in outputs]
    by_length.plot(wave_in, [activations(wavenet_layers(i, 4, 13)) for i in wave_in], "o-", color=WAVE,
                   label="WaveNet 4 x 13 (exact)")
    by_length.plot(seq_in, [activations(res_sequnet_layers(i, 11, 5, 2, 180)) for i in seq_in], "s-", color=SEQ,
                   label="Seq-U-Net L = 11 (exact)")
    grid = np.geomspace(seq_in[0], seq_in[-1], 50)
    by_length.plot(grid, wavenet_ideal_activations(grid, 4, 13), color=WAVE, lw=1, alpha=0.6, label="52 I")
    by_length.plot(grid, res_sequnet_ideal_activations(grid, 11, 2), color=SEQ, lw=1, alpha=0.6,
                   label="closed form, no shrink")
    by_length.set(xscale="log", yscale="log", xlabel="input length I (samples)",
                  ylabel="activations (time positions)", title="Table 2's models vs input length")
    by_length.xaxis.set_minor_formatter(plt.NullFormatter())
    by_length.legend()
    fig.tight_layout()
    return fig


def check_layer_lists(small: AudioModels = SWEEP_PLANS["smoke"].models) -> list[str]:
    """Forward hooks on every layer of five small models (base Seq-U-Net valid and padded, residual Seq-U-Net,
    WaveNet, TCN): their output shapes must equal the analytic layer lists exactly. One line per model; raises
    ``AssertionError`` naming the model whose shapes differ."""
    checks = {
        "Seq-U-Net, base (valid, L = 4)": (SeqUNet(SeqUNetConfig(8, (8,) * 4, 8, 3)),
                                           sizes.sequnet_valid_io(4, 3, 200)[0]),
        "Seq-U-Net, base (padded, L = 4)": (SeqUNet(SeqUNetConfig(8, (8,) * 4, 8, 5, padded=True)), 300),
        "Seq-U-Net, residual (L = 6)": (small.sequnet(6).body, small.sequnet_input(6, outputs=500)),
        "WaveNet (4 x 8)": (small.wavenet(8).body, small.wavenet_input(8, outputs=500)),
        "TCN (4 blocks)": (TCN(TCNConfig(8, (8,) * 4, 3)), 300),
    }
    lines = []
    for name, (body, length) in checks.items():
        layers = model_layers(body, length)
        shapes = layer_shapes(body, torch.randn(1, body.config.num_inputs, length), [l.name for l in layers])
        if shapes != {l.name: (l.length, l.channels) for l in layers}:
            raise AssertionError(f"{name}: the layers' output shapes differ from the analytic layer list")
        lines.append(f"{name:34s} I = {length:5d}: {len(layers):3d} layers match, {activations(layers):7,d} "
                     f"activations ({activations(layers) / length:.2f} per input sample)")
    return lines
