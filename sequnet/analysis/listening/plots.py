"""The paper's Figure 3 from a listening-test summary, and the noise over time in the items' clips."""
from __future__ import annotations

import numpy as np

from sequnet.analysis import stability
from sequnet.analysis.listening.common import MODEL_NAMES, MODELS, QUESTION_LABELS, QUESTIONS
from sequnet.analysis.listening.key import Key
from sequnet.analysis.listening.stats import Summary

FIGURE3_COLOURS = {"sequnet": "#1f77b4", "not sure": "#bbbbbb", "wavenet": "#ff7f0e"}


def plot_figure3(summary: Summary, ax=None):
    """The paper's Figure 3: one horizontal bar per question, stacked as Seq-U-Net preferred / not sure /
    WaveNet preferred, in per cent of the answers. Without responses the axes say "No responses yet"."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.4), layout="constrained")
    if summary.empty:
        ax.text(0.5, 0.5, "No responses yet", ha="center", va="center", transform=ax.transAxes, fontsize=12)
        ax.set_axis_off()
        return ax
    labels = [QUESTION_LABELS[q] for q in QUESTIONS]
    left = np.zeros(len(QUESTIONS))
    for choice in ("sequnet", "not sure", "wavenet"):
        share = np.array([100 * summary.counts[q][choice] / max(summary.answers(q), 1) for q in QUESTIONS])
        name = MODEL_NAMES.get(choice, "Not sure")
        bars = ax.barh(labels, share, left=left, color=FIGURE3_COLOURS[choice],
                       label=name if choice == "not sure" else f"{name} preferred")
        for bar, value in zip(bars, share):
            if value >= 5:   # smaller segments have no room for a label
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2, f"{value:.0f} %",
                        ha="center", va="center", fontsize=9)
        left += share
    ax.set_xlim(0, 100)
    ax.set_xlabel("answers (%)")
    ax.invert_yaxis()   # first question on top, as in the paper
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3, frameon=False)
    n = summary.answers(QUESTIONS[0])
    ax.set_title(f"Listening test: {summary.participants} participant{'s' if summary.participants != 1 else ''}, "
                 f"{n} answers per question")
    return ax


def plot_clip_stability(key: Key, window_s: float = 0.5):
    """``stability.plot_stability`` of the items: the median over all primes (real piano) and over each model's
    clips (sorted through the key), window by window; medians, so that no single item's clip is given away."""
    from sequnet.data.audio import load_audio

    items, sr = key.items, key.items.sample_rate
    groups = {"real piano (primes)": [load_audio(items.path(it.prime), sr) for it in items.items]}
    groups |= {MODEL_NAMES[m]: [load_audio(items.path(c), sr) for it in items.items for c in it.clips
                                if key.model(it.id, c) == m] for m in MODELS}
    fig = stability.plot_stability(stability.median_curves(groups, sr, window_s=window_s),
                                   mark_s=items.prime_seconds, reference="real piano (primes)")
    fig.suptitle(f"Median over {len(items.items)} items; dotted line: end of the real prime")
    return fig
