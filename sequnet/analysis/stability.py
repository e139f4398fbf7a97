"""Objective noise measures over time for long generated audio.

The paper (§5.2) reports that WaveNet "starts to introduce progressively more noise into its outputs with longer
generation", pronounced beyond about 10 s, while Seq-U-Net stays stable. These measures make that visible
without listening, window by window (1 s by default):

* spectral flatness: geometric over arithmetic mean of the power spectrum, 0 for a pure tone, near 1 for white
  noise. The spectrum of each window is a Welch average over short segments: a single periodogram of white noise
  has exponentially distributed bins and a flatness of only exp(-0.577) = 0.56, the average brings it near 1;
* the fraction of the power above a band limit (4 kHz by default): piano partials carry little energy up there,
  broadband noise half of it at 16 kHz;
* RMS level in dBFS: a generation that dies out into silence or blows up shows here.

Compare a generation with real piano at the same sample rate and mu-law resolution: quantisation noise in quiet
passages raises the flatness of real recordings too.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.signal

from sequnet.experiment.records import percent

# What plot_stability draws. Both ratios span orders of magnitude (real piano: flatness ~1e-3, white noise ~1),
# so they are drawn in dB, floored at FLOOR_DB where a ratio is exactly zero.
PLOTTED = ("flatness_db", "high_fraction_db", "rms_db")
LABELS = {"flatness_db": "spectral flatness (dB)", "high_fraction_db": "power above {band:g} kHz (dB)",
          "rms_db": "RMS (dBFS)"}
FLOOR_DB = -100.0


@dataclasses.dataclass(frozen=True)
class StabilityMeasures:
    """Per-window measures of one signal; ``starts`` are the windows' start times in seconds."""
    starts: np.ndarray
    flatness: np.ndarray        # 0..1; NaN in silent windows, where it is undefined
    high_fraction: np.ndarray   # 0..1; NaN in silent windows
    rms_db: np.ndarray          # dBFS (a full-scale sine is -3 dB)
    window_s: float
    band_hz: float

    @property
    def centres(self) -> np.ndarray:
        return self.starts + self.window_s / 2

    @property
    def flatness_db(self) -> np.ndarray:
        return _db(self.flatness)

    @property
    def high_fraction_db(self) -> np.ndarray:
        return _db(self.high_fraction)


def _db(ratio: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.maximum(10 * np.log10(ratio), FLOOR_DB)   # NaN (silence) stays NaN


def _samples(signal: Any) -> np.ndarray:
    if hasattr(signal, "detach"):   # a torch tensor
        signal = signal.detach().cpu().numpy()
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D array of samples, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the signal contains NaN or infinite samples")
    return x


def measure(signal: Any, sr: int, *, window_s: float = 1.0, hop_s: float | None = None, band_hz: float = 4000.0,
            nperseg: int = 512, silence_db: float = -70.0) -> StabilityMeasures:
    """Spectral flatness, power fraction above ``band_hz`` and RMS of ``signal`` in windows of ``window_s``
    seconds every ``hop_s`` (default: ``window_s``, no overlap); a last window shorter than ``window_s`` is left
    out. Windows quieter than ``silence_db`` get NaN flatness and band fraction (noise-free silence has no
    spectral shape)."""
    x = _samples(signal)
    if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
        raise ValueError(f"sr={sr!r}: expected a positive integer sample rate")
    hop_s = window_s if hop_s is None else hop_s
    win, hop = int(round(window_s * sr)), int(round(hop_s * sr))
    if win < nperseg or hop < 1:
        raise ValueError(f"window_s={window_s} s is {win} samples at {sr} Hz; it needs at least nperseg={nperseg}")
    if not 0 < band_hz < sr / 2:
        raise ValueError(f"band_hz={band_hz}: must lie between 0 and the Nyquist frequency {sr / 2:g} Hz")
    if len(x) < win:
        raise ValueError(f"the signal ({len(x) / sr:.2f} s) is shorter than one window ({window_s} s)")
    starts = np.arange(0, len(x) - win + 1, hop)
    frames = np.stack([x[s:s + win] for s in starts])
    freqs, power = scipy.signal.welch(frames, fs=sr, nperseg=nperseg, axis=-1)
    power = power[:, 1:]   # DC: removed by Welch's detrending, and log(0) would make the flatness 0
    freqs = freqs[1:]
    rms_db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20)
    silent = rms_db < silence_db
    total = power.sum(axis=1)
    tiny = np.finfo(np.float64).tiny   # keeps log finite where a bin is exactly zero
    flatness = np.exp(np.mean(np.log(power + tiny), axis=1)) / np.maximum(power.mean(axis=1), tiny)
    high = power[:, freqs > band_hz].sum(axis=1) / np.maximum(total, tiny)
    flatness[silent] = np.nan
    high[silent] = np.nan
    return StabilityMeasures(starts / sr, np.clip(flatness, 0.0, 1.0), high, rms_db, window_s, band_hz)


def median_measures(measured: Sequence[StabilityMeasures]) -> StabilityMeasures:
    """Window-wise medians over several signals measured alike (e.g. all continuations of one model), over the
    windows they all have: one curve per model without singling out any one clip."""
    if not measured:
        raise ValueError("nothing to take the median of")
    first = measured[0]
    if any((m.window_s, m.band_hz) != (first.window_s, first.band_hz) for m in measured):
        raise ValueError("the measures differ in window_s or band_hz")
    n = min(len(m.starts) for m in measured)
    if any(not np.array_equal(m.starts[:n], first.starts[:n]) for m in measured):
        raise ValueError("the measures use different window positions (hop_s or sample rate differ)")

    def med(name: str) -> np.ndarray:
        with warnings.catch_warnings():   # all-NaN windows (silence everywhere) stay NaN without a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(np.stack([getattr(m, name)[:n] for m in measured]), axis=0)

    return StabilityMeasures(first.starts[:n], med("flatness"), med("high_fraction"), med("rms_db"),
                             first.window_s, first.band_hz)


def noise_onset(m: StabilityMeasures, *, flatness: float = 0.5, persist: int = 2) -> float | None:
    """Start time (s) of the first window that begins a run of ``persist`` windows whose flatness exceeds
    ``flatness``, i.e. where the signal turns into noise and stays noise; None if it never does."""
    above = np.nan_to_num(m.flatness, nan=0.0) > flatness
    for i in range(len(above) - persist + 1):
        if above[i:i + persist].all():
            return float(m.starts[i])
    return None


def plot_stability(signals: Mapping[str, Any], sr: int | None = None, *, axes=None, mark_s: float | None = 10.0,
                   reference: str | None = None, **measure_kw):
    """Flatness, high-band power fraction (both in dB) and RMS over time for several signals on shared axes.

    ``signals`` maps a label ("real piano", "Seq-U-Net", "WaveNet") to samples (with ``sr``) or to
    ``StabilityMeasures``. ``reference`` names the signal to draw as the baseline (thick grey, underneath), e.g.
    real piano. ``mark_s`` draws a dotted line where the paper says WaveNet's noise becomes pronounced.
    Returns the figure."""
    import matplotlib.pyplot as plt

    if not signals:
        raise ValueError("signals is empty: give at least one labelled signal")
    if reference is not None and reference not in signals:
        raise ValueError(f"reference={reference!r} is not one of the signals: {', '.join(signals)}")
    measured = {}
    for label, s in signals.items():
        if isinstance(s, StabilityMeasures):
            measured[label] = s
        elif sr is None:
            raise ValueError(f"{label}: give sr to measure raw samples")
        else:
            measured[label] = measure(s, sr, **measure_kw)
    if axes is None:
        fig, axes = plt.subplots(len(PLOTTED), 1, figsize=(8, 6.5), sharex=True, layout="constrained")
    else:
        fig = axes[0].figure
    band = next(iter(measured.values())).band_hz
    for ax, name in zip(axes, PLOTTED):
        for label, m in measured.items():
            style = (dict(color="0.55", linewidth=4, alpha=0.6, zorder=1) if label == reference
                     else dict(marker=".", zorder=2))
            ax.plot(m.centres, getattr(m, name), label=label, **style)
        ax.set_ylabel(LABELS[name].format(band=band / 1000))
        ax.grid(alpha=0.3)
        if mark_s is not None:
            ax.axvline(mark_s, color="k", linestyle=":", linewidth=1)
    for ax in axes[:2]:
        ax.set_ylim(top=2)   # 0 dB: white noise
    axes[0].legend(loc="upper left")
    axes[-1].set_xlabel("time (s)")
    return fig


def median_curves(groups: Mapping[str, Sequence[Any]], sr: int, **measure_kw) -> dict[str, StabilityMeasures]:
    """One median curve per label: every signal of a group measured alike (``measure_kw``), then
    :func:`median_measures` over the group, e.g. {"real piano": [...], "WaveNet": [...]}."""
    return {label: median_measures([measure(s, sr, **measure_kw) for s in signals])
            for label, signals in groups.items()}


def noise_onsets(curves: Mapping[str, StabilityMeasures], *, flatness: float = 0.5,
                 persist: int = 2) -> dict[str, float | None]:
    """Where each curve turns into noise and stays noise (:func:`noise_onset`), None where it never does."""
    return {label: noise_onset(m, flatness=flatness, persist=persist) for label, m in curves.items()}


def onsets_text(onsets: Mapping[str, float | None], *, flatness: float = 0.5, persist: int = 2) -> str:
    """:func:`noise_onsets` (found with the same ``flatness`` and ``persist``) in one line."""
    return (f"noise onset (median flatness above {flatness:g} for {persist} windows): "
            + ", ".join(f"{label} {'never' if t is None else f'at {t:g} s'}" for label, t in onsets.items()))


# --- what a set of long generations shows ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How one model's long generations behave, from the per-window measures of each (``measure``):

    * ``onsets``: per generation, where it turns into noise and stays noise (:func:`noise_onset`), None if never;
    * ``early_db`` / ``late_db``: median flatness (dB) over the first and the last third of the windows, over all
      generations; ``drift_db`` = late - early (a model that accumulates noise drifts upwards);
    * ``excess_db``: median over windows of the median flatness minus the reference's (e.g. real piano), or None.
    """
    n: int
    onsets: tuple[float | None, ...]
    early_db: float
    late_db: float
    excess_db: float | None
    first_window_s: float

    @property
    def drift_db(self) -> float:
        return self.late_db - self.early_db

    @property
    def noisy(self) -> int:
        return sum(t is not None for t in self.onsets)

    @property
    def noisy_from_start(self) -> int:
        return sum(t is not None and t <= self.first_window_s for t in self.onsets)

    def kind(self, drift_db: float = 3.0) -> str:
        """"noise from the start" (most generations are noise from their first window), "accumulates noise"
        (a generation turns into noise later, or the flatness rises by more than ``drift_db``) or "stable"."""
        if 2 * self.noisy_from_start > self.n:
            return "noise from the start"
        if self.noisy > self.noisy_from_start or self.drift_db > drift_db:
            return "accumulates noise"
        return "stable"


def behaviour(measured: Sequence[StabilityMeasures], reference: StabilityMeasures | None = None, *,
              flatness: float = 0.5, persist: int = 2) -> Behaviour:
    """:class:`Behaviour` of several generations measured alike; ``reference``: the median measures of what the
    generations should sound like (real piano), or None."""
    median = median_measures(measured)
    db = median.flatness_db
    third = max(1, len(db) // 3)
    with warnings.catch_warnings():      # all-silent thirds stay NaN without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        early, late = float(np.nanmedian(db[:third])), float(np.nanmedian(db[-third:]))
        excess = None
        if reference is not None:
            n = min(len(db), len(reference.starts))
            excess = float(np.nanmedian(db[:n] - reference.flatness_db[:n]))
    return Behaviour(len(measured), tuple(noise_onset(m, flatness=flatness, persist=persist) for m in measured),
                     early, late, excess, float(median.starts[0]))


def _steps_text(steps: int, paper_steps: int) -> str:
    return f"{steps:,} training steps, {percent(steps / paper_steps)} of the paper's {paper_steps:,}"


def claim_text(behaviours: Mapping[str, Behaviour], steps: Mapping[str, int], paper_steps: int, *,
               noisy: str = "WaveNet", stable: str = "Seq-U-Net", drift_db: float = 3.0) -> str:
    """What the measured generations say about the paper's observation that ``noisy`` "introduces progressively
    more noise" while ``stable`` "appears stable": one sentence per model and a conclusion, every number computed
    from ``behaviours`` (label -> :class:`Behaviour`) and ``steps`` (label -> training steps)."""
    lines = []
    for label, b in behaviours.items():
        onsets = sorted(t for t in b.onsets if t is not None)
        noise = (f"{b.noisy} of {b.n} generations turn into noise (first at {onsets[0]:g} s, median "
                 f"{float(np.median(onsets)):g} s)" if onsets else f"none of {b.n} generations turns into noise")
        near = "" if b.excess_db is None else f", {b.excess_db:+.1f} dB against real piano"
        lines.append(f"* **{label}** ({_steps_text(steps[label], paper_steps)}): {b.kind(drift_db)}. Median "
                     f"spectral flatness {b.early_db:.1f} dB in the first third and {b.late_db:.1f} dB in the last "
                     f"third ({b.drift_db:+.1f} dB{near}); {noise}.")
    kinds = {label: b.kind(drift_db) for label, b in behaviours.items()}
    if kinds.get(noisy) == "accumulates noise" and kinds.get(stable) == "stable":
        verdict = (f"This is the paper's observation: {noisy} accumulates noise while {stable} stays stable, "
                   f"here after {steps[noisy]:,} ({noisy}) and {steps[stable]:,} ({stable}) training steps.")
    elif kinds.get(noisy) == "noise from the start":
        verdict = (f"This does not test the paper's observation: after {steps[noisy]:,} steps "
                   f"({percent(steps[noisy] / paper_steps)} of the paper's training) {noisy} produces noise from "
                   f"the first window on, so nothing can accumulate; the paper's models trained "
                   f"{paper_steps / max(steps[noisy], 1):.0f} times longer.")
    else:
        verdict = (f"This does not show the paper's observation at this training length: {noisy} is "
                   f"{kinds.get(noisy)}, {stable} is {kinds.get(stable)} (criteria: a generation turning into noise "
                   f"after its first window, or median flatness rising by more than {drift_db:g} dB).")
    return "\n".join(lines + ["", verdict])
