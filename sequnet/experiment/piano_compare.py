"""The raw piano run's two comparisons, from the records of its two models: the training curves (loss against
steps and seconds, ``curves.json``) and ``comparison.json``: (a) equal iterations, (b) equal training time, and
each model at the end of its budget."""
from __future__ import annotations

from typing import Any

import numpy as np

from sequnet.experiment.records import PAPER_STEPS, ResultRecord


def total_steps(record: ResultRecord) -> int:
    return sum(h["steps"] for h in record.history)


def curves(records: dict[str, ResultRecord]) -> dict[str, dict[str, list[float]]]:
    """Each model's training loss (bits per sample, the mean over each reporting interval) against the steps and
    the training seconds at the interval's end."""
    out = {}
    for arch, r in records.items():
        steps = np.cumsum([h["steps"] for h in r.history]).tolist()
        out[arch] = {"steps": steps, "seconds": [h.get("train_time_s") for h in r.history],
                     "train_bits": [h["train"] for h in r.history]}
    return out


def comparison(records: dict[str, ResultRecord], at: dict[str, float], steps_at: int) -> dict[str, Any]:
    """(a) both models after ``steps_at`` steps (WaveNet's final count); (b) both after the same training time,
    the shorter of the two budgets, read off the training curves (the reporting interval ending nearest that
    time; the test loss only where that interval is the model's last); and each model at the end of its budget."""
    def point(metrics, steps):
        return {"steps": steps, "fraction_of_paper": steps / PAPER_STEPS["piano_audio"],
                "train_bits": metrics["train"], "test_bits": metrics["test"]}

    w = records["wavenet"]
    ends = {arch: point(r.metrics, total_steps(r)) | {"train_seconds": r.history[-1]["train_time_s"]}
            for arch, r in records.items()}
    seconds = min(p["train_seconds"] for p in ends.values())
    equal_time: dict[str, Any] = {"seconds": seconds}
    for arch, c in curves(records).items():
        i = min(range(len(c["seconds"])), key=lambda k: abs(c["seconds"][k] - seconds))
        last = i == len(c["seconds"]) - 1
        equal_time[arch] = {"steps": c["steps"][i], "fraction_of_paper": c["steps"][i] / PAPER_STEPS["piano_audio"],
                            "train_seconds": c["seconds"][i], "train_loss_bits": c["train_bits"][i],
                            "test_bits": ends[arch]["test_bits"] if last else None}
    return {"paper_steps": PAPER_STEPS["piano_audio"],
            "equal_iterations": {"wavenet": point(w.metrics, steps_at), "sequnet": point(at, steps_at)},
            "equal_time": equal_time, "ends": ends}
