"""The chapters' compact training log: one table of the epochs instead of a printed line per epoch."""
from __future__ import annotations

from sequnet.analysis.reports import epoch_rows, epoch_table
from sequnet.experiment.records import ResultRecord


def record(model: str, epochs: int, best: int, halved: int = 0) -> ResultRecord:
    history = [{"epoch": e, "train": 5.0 - e / 100, "valid": 6.0 - e / 100 if e <= best else 6.0 - best / 100,
                "best": e <= best, "lr_halved": e == halved, "epoch_time_s": 2.5} for e in range(1, epochs + 1)]
    return ResultRecord(experiment="jsb", model=model, scale="demo", metric="nll",
                        metrics={"train": 4.0, "valid": 5.0, "test": 5.1}, params=1, receptive_field=1,
                        time_per_step_s=0.01, peak_memory_mib=None, device="cpu", wall_time_s=1.0, history=history,
                        date="2026-01-01T00:00:00+00:00", git_commit="abc1234", host="h")


def rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[4:]]


def test_a_short_run_shows_every_epoch_with_its_marks():
    table = epoch_table([record("tcn", 4, best=3, halved=2), record("sequnet", 4, best=4)])
    assert table.splitlines()[2] == ("| epoch | TCN train | TCN valid | TCN s | Seq-U-Net train | Seq-U-Net valid | "
                                     "Seq-U-Net s |")
    body = rows(table)
    assert [r[0] for r in body] == ["1", "2", "3", "4"]
    assert body[1][1:4] == ["4.980", "5.980 ★ ½", "2.5"] and body[3][2] == "5.970"


def test_a_long_run_is_compact_and_keeps_each_models_best_and_last_epoch():
    body = rows(epoch_table([record("tcn", 100, best=82), record("sequnet", 60, best=37)], max_rows=12))
    epochs = [int(r[0]) for r in body]
    assert epochs[0] == 1 and epochs[-1] == 100 and {82, 37, 60} <= set(epochs) and len(epochs) <= 12 + 3
    assert body[-1][4:] == ["–", "–", "–"], "the shorter run has no epoch 100"
    assert epoch_rows(5, {3}, 12) == [1, 2, 3, 4, 5]



def test_the_training_log_names_the_loss_spikes_of_runs_that_counted_them():
    import dataclasses

    plain = [record("tcn", 4, best=3), record("sequnet", 4, best=4)]
    assert "Loss spikes" not in epoch_table(plain)          # records from before the trainer counted them
    spikes = {"rule": "a training step whose loss exceeds 3 x the median", "steps_checked": 1289, "count": 1,
              "events": [{"epoch": 49, "step": 12, "loss": 4000.0, "median": 4.6}], "largest": None}
    counted = [dataclasses.replace(plain[0], loss_spikes=dict(spikes, count=0, events=[])),
               dataclasses.replace(plain[1], loss_spikes=spikes)]
    last = epoch_table(counted).splitlines()[-1]
    assert last == ("**Loss spikes** (a training step whose loss exceeds 3 x the median): TCN 0 in 1,289 steps; "
                    "Seq-U-Net 1 in 1,289 steps (epoch 49). The reproduction page counts them over every seed of "
                    "each cell.")
