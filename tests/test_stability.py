"""Noise measures over time, on signals whose answer is known."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from sequnet.analysis import stability  # noqa: E402
from sequnet.data.audio import mu_law_decode, mu_law_encode  # noqa: E402

SR = 16000


def piano_like(seconds: int, seed: int = 0) -> np.ndarray:
    """One decaying harmonic note per second (partials 1/k, below 3 kHz), at mu-law resolution as generated
    audio is."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    notes = []
    for f0 in rng.choice([196.0, 220.0, 262.0, 294.0, 330.0, 392.0], size=seconds):
        partials = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 8))
        notes.append(0.25 * partials * np.exp(-3.0 * t))
    x = torch.from_numpy(np.concatenate(notes)).float()
    return mu_law_decode(mu_law_encode(x)).double().numpy()


def white(seconds: float, level: float = 0.1, seed: int = 1) -> np.ndarray:
    return level * np.random.default_rng(seed).normal(size=int(seconds * SR))


def test_piano_like_tone_is_not_flat_and_white_noise_is():
    tone, noise = stability.measure(piano_like(4), SR), stability.measure(white(4), SR)
    assert tone.flatness.max() < 0.05 and tone.high_fraction.max() < 0.01
    assert noise.flatness.min() > 0.95 and noise.high_fraction == pytest.approx(0.5, abs=0.03)
    assert noise.rms_db == pytest.approx(-20.0, abs=0.2)
    assert np.all(tone.flatness_db < -13) and np.all(noise.flatness_db > -0.3)


def test_a_signal_that_turns_into_noise_after_10_s_shows_the_rise_there():
    x = np.concatenate([piano_like(10), white(8, level=0.05)])
    m = stability.measure(x, SR, window_s=0.5)
    assert m.starts[0] == 0 and m.starts[-1] == 17.5
    assert stability.noise_onset(m) == 10.0
    before, after = m.starts < 10, m.starts >= 10
    assert m.flatness[before].max() < 0.05 < 0.9 < m.flatness[after].min()
    assert stability.noise_onset(stability.measure(piano_like(6), SR)) is None


def test_silence_has_no_flatness_and_bad_arguments_are_named():
    m = stability.measure(np.zeros(2 * SR), SR)
    assert np.isnan(m.flatness).all() and np.isnan(m.high_fraction).all()
    with pytest.raises(ValueError, match="band_hz"):
        stability.measure(white(2), SR, band_hz=9000)
    with pytest.raises(ValueError, match="shorter than one window"):
        stability.measure(white(0.5), SR)
    with pytest.raises(ValueError, match="NaN"):
        stability.measure(np.full(SR, np.nan), SR)


def test_plot_draws_every_signal_on_shared_axes():
    fig = stability.plot_stability({"real piano": piano_like(3), "noisy": white(3),
                                    "measured": stability.measure(white(3, seed=5), SR)}, SR, reference="real piano")
    axes = fig.axes
    assert len(axes) == 3 and all(len(ax.lines) == 3 + 1 for ax in axes)   # 3 signals + the 10 s mark
    assert axes[0].get_shared_x_axes().joined(axes[0], axes[2])
    assert axes[0].lines[0].get_linewidth() == 4   # the reference is drawn as the baseline
    with pytest.raises(ValueError, match="reference='piano'"):
        stability.plot_stability({"a": white(2)}, SR, reference="piano")


def test_median_over_clips_keeps_the_common_windows():
    a, b, c = (stability.measure(x, SR) for x in (white(3), white(4, seed=2), piano_like(3)))
    m = stability.median_measures([a, b, c])
    assert list(m.starts) == [0.0, 1.0, 2.0]
    assert np.allclose(m.rms_db, np.median([a.rms_db, b.rms_db[:3], c.rms_db], axis=0))
    with pytest.raises(ValueError, match="window_s"):
        stability.median_measures([a, stability.measure(white(3), SR, window_s=0.5)])


def test_median_curves_and_noise_onsets_per_label():
    turns = np.concatenate([piano_like(4), white(4)])
    curves = stability.median_curves({"stable": [piano_like(8), piano_like(8, seed=2)],
                                      "noisy": [turns, np.concatenate([piano_like(4, seed=3), white(4, seed=4)])]},
                                     SR, window_s=1.0)
    assert list(curves) == ["stable", "noisy"] and len(curves["stable"].starts) == 8
    onsets = stability.noise_onsets(curves)
    assert onsets["stable"] is None and onsets["noisy"] == pytest.approx(4.0)
    assert stability.onsets_text(onsets) == ("noise onset (median flatness above 0.5 for 2 windows): stable never, "
                                             "noisy at 4 s")


def test_behaviour_and_claim_text_tell_accumulating_noise_from_stable_and_from_noise():
    real = [stability.measure(piano_like(6, seed=s), SR) for s in range(3)]
    reference = stability.median_measures(real)
    # noise that grows from nothing: the flatness climbs over the 6 s and ends as noise
    growing = [stability.measure(piano_like(6, seed=s) + white(6, level=0.002, seed=s)
                                 * np.linspace(0, 40, 6 * SR), SR) for s in range(3)]
    stable = [stability.measure(piano_like(6, seed=s + 5), SR) for s in range(3)]
    noise = [stability.measure(white(6, seed=s), SR) for s in range(3)]
    kinds = {name: stability.behaviour(m, reference) for name, m in
             (("growing", growing), ("stable", stable), ("noise", noise))}
    assert kinds["growing"].kind() == "accumulates noise" and kinds["growing"].drift_db > 3
    assert kinds["stable"].kind() == "stable" and kinds["stable"].noisy == 0
    assert abs(kinds["stable"].excess_db) < 6 and kinds["noise"].excess_db > 20
    assert kinds["noise"].kind() == "noise from the start" and kinds["noise"].noisy_from_start == 3

    steps = {"WaveNet": 2_460, "Seq-U-Net": 12_300}
    text = stability.claim_text({"Seq-U-Net": kinds["stable"], "WaveNet": kinds["growing"]}, steps, 246_000)
    assert "This is the paper's observation" in text and "2,460 training steps, 1.0% of the paper's 246,000" in text
    assert "none of 3 generations turns into noise" in text
    text = stability.claim_text({"Seq-U-Net": kinds["stable"], "WaveNet": kinds["noise"]}, steps, 246_000)
    assert "does not test the paper's observation" in text and "100 times longer" in text
    text = stability.claim_text({"Seq-U-Net": kinds["growing"], "WaveNet": kinds["stable"]}, steps, 246_000)
    assert "does not show the paper's observation" in text
