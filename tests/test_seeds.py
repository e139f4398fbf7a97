"""Seeds of a cell (names, records, which are still to train), loss spikes, and what a run shows while it trains."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sequnet.experiment.records import ResultRecord
from sequnet.experiment.scales import deviations, resolve
from sequnet.experiment.seeds import finished_seeds, main as seeds_main, mismatch, records_in, todo
from sequnet.experiment.steps import SpikeRule, count_spikes
from sequnet.experiment.training import train

REPO = Path(__file__).resolve().parents[1]


# --- loss spikes ----------------------------------------------------------------------------------------------------

def test_a_spike_is_a_step_above_factor_times_the_running_median():
    rule = SpikeRule(factor=3.0, window=4, min_history=3)
    #         judged from index 3 on: median of the (up to 4) losses before each
    losses = [4.0, 5.0, 4.5, 13.0, 14.0, 4.0, 4.2, 100.0, 4.1]
    # 13.0 > 3 x median(4, 5, 4.5) = 13.5? no. 14.0 > 3 x median(4, 5, 4.5, 13) = 14.25? no.
    # 100 > 3 x median(13, 14, 4, 4.2) = 3 x 8.6: yes
    assert rule.find(losses) == [(7, 100.0, pytest.approx(8.6))]
    assert SpikeRule(factor=2.0, window=4, min_history=3).find(losses) == \
        [(3, 13.0, 4.5), (4, 14.0, 4.75), (7, 100.0, pytest.approx(8.6))]
    # fewer than min_history losses before a step: not judged
    assert rule.find([1.0, 1.0, 50.0]) == []
    # a loss equal to the threshold is no spike; a falling loss never is
    assert rule.find([2.0, 2.0, 2.0, 6.0, 0.1]) == []


def test_spikes_counted_epoch_by_epoch_equal_those_of_the_whole_series():
    rule = SpikeRule(factor=3.0, window=5, min_history=2)
    series = [4.0, 4.1, 30.0, 4.0, 3.9, 3.8, 50.0, 3.7, 60.0, 3.6]
    whole = count_spikes(None, series, [], 1, rule)
    summary, previous = None, []
    for epoch, part in enumerate((series[:3], series[3:7], series[7:]), start=1):
        summary = count_spikes(summary, part, previous, epoch, rule)
        previous = (previous + part)[-rule.window:]
    assert whole["count"] == summary["count"] == 3 and summary["steps_checked"] == len(series)
    assert summary["largest"] == {"epoch": 3, "step": 2, "ratio": 60.0 / 3.9}
    assert whole["largest"] == {"epoch": 1, "step": 9, "ratio": 60.0 / 3.9}         # the same step, one epoch
    assert [(e["epoch"], e["step"], e["loss"]) for e in summary["events"]] == [(1, 3, 30.0), (2, 4, 50.0),
                                                                                 (3, 2, 60.0)]
    assert summary["rule"].startswith("a training step whose loss exceeds 3 x the median of the previous 5")


def test_a_run_records_its_seed_spikes_and_notes_and_names_its_files_by_seed(tmp_path, data_root, capsys):
    config = resolve("jsb", "tcn", "smoke", epochs=2, max_steps_per_epoch=3, eval_limit=2, seed=2)
    assert config.name == "jsb_tcn_seed2" and resolve("jsb", "tcn", "smoke").name == "jsb_tcn"
    assert "seed" not in deviations(config) and deviations(config.replace(seed=1111)) == deviations(config)
    run = train(config, out_dir=tmp_path, checkpoint=tmp_path / "c.pt", notes=["trained side by side with x"])
    assert capsys.readouterr().out == ""             # no line per epoch, no path, unless a log is given
    record = ResultRecord.load(tmp_path / "records" / "jsb_tcn_seed2.json")
    assert record.seed == 2 and record.notes.endswith("trained side by side with x")
    assert record.loss_spikes["steps_checked"] == 6 and record.loss_spikes["count"] == 0
    assert record.loss_spikes == run.record.loss_spikes


def test_progress_shows_one_bar_for_the_run_with_the_epoch_as_its_postfix(tmp_path, data_root, capsys):
    config = resolve("jsb", "tcn", "smoke", epochs=3, max_steps_per_epoch=2, eval_limit=1)
    lines = []
    train(config, progress=True, log=lines.append)
    err = capsys.readouterr().err
    assert lines == []                               # the bar's postfix replaces the epoch lines
    assert "jsb_tcn" in err and "6/6" in err and "epoch   3/3: train" in err
    train(config, log=lines.append)
    assert [line.split(":")[0] for line in lines] == [f"jsb_tcn epoch   {e}/3" for e in (1, 2, 3)]


# --- which seeds exist ----------------------------------------------------------------------------------------------

def test_committed_paper_runs_count_as_seed_1111_and_an_earlier_seed_run_as_its_seed():
    records = records_in([REPO / "results" / "published", REPO / "results" / "paper"])
    # word-PTB's seed 2 of the Seq-U-Net diverged (2026-12-03): a finished result, not to be trained again
    assert set(finished_seeds(records, "word_ptb", "sequnet")) == {1111, 1, 2}
    # seed 2 is the earlier run under results/paper/music_seeds/; seed 1 was trained on 2026-12-03
    assert set(finished_seeds(records, "muse", "sequnet")) == {1111, 1, 2}
    by_name = {p.relative_to(REPO / "results").as_posix(): r for p, r in records}
    assert mismatch(by_name["paper/music_seeds/seed1/nottingham_sequnet.json"], "nottingham", "sequnet") == \
        "status interrupted"
    assert mismatch(by_name["paper/word_ptb/variant-lr0.0002/word_ptb_sequnet.json"], "word_ptb", "sequnet") == \
        "preset changed: lr=0.0002"
    # the other tasks' seeds 1 and 2 are committed under results/paper/seeds/ (2026-12-03): none is left
    assert set(finished_seeds(records, "jsb", "tcn")) == {1111, 1, 2}
    assert set(finished_seeds(records, "char_ptb", "sequnet")) == {1111, 1, 2}
    assert set(finished_seeds(records, "nottingham", "sequnet")) == {1111, 1, 2}
    assert todo([("word_ptb", "sequnet", None), ("nottingham", "tcn", None), ("jsb", "tcn", None)], (1111, 1, 2),
                [REPO / "results"]) == []
    assert todo([("word_ptb", "tcn", 3), ("muse", "sequnet", 2), ("jsb", "tcn", 2)], (1111, 1, 2, 3),
                [REPO / "results"]) == [("word_ptb", "tcn", 3)]


def test_a_record_of_changed_settings_or_too_few_epochs_is_no_seed(tmp_path):
    path = REPO / "results" / "paper" / "seeds" / "records" / "jsb_tcn.json"
    data = json.loads(path.read_text())
    short = ResultRecord(**(data | {"history": data["history"][:50]}))
    assert mismatch(short, "jsb", "tcn") == "50 of 100 epochs"
    changed = ResultRecord(**(data | {"config": data["config"] | {"clip": 0.5}}))
    assert mismatch(changed, "jsb", "tcn").startswith("configuration differs from the preset: clip=0.5")
    assert mismatch(ResultRecord.load(path), "jsb", "sequnet").startswith("another cell")
    shutil.copy(path, tmp_path / "seed.json")
    assert seeds_main(["todo", "--cells", "jsb:tcn", "--seeds", "1111", "--have", str(tmp_path)]) == 0
    assert seeds_main(["todo", "--cells", "jsb"]) == 2


@pytest.mark.parametrize("cell", ["jsb", "jsb:lstm", "opera:tcn", "jsb:tcn:two", "jsb:tcn:1:2"])
def test_bad_cells_are_named(cell, capsys):
    assert seeds_main(["status", "--cells", cell]) == 2
    assert "error:" in capsys.readouterr().err


def test_status_shows_records_under_the_working_directory_relative(tmp_path, monkeypatch, capsys):
    """status.txt comes back from the GPU machine into the logs: no absolute paths of that machine in it."""
    records = tmp_path / "runs" / "records"
    records.mkdir(parents=True)
    shutil.copy(REPO / "results" / "paper" / "seeds" / "records" / "jsb_tcn.json", records / "jsb_tcn.json")
    monkeypatch.chdir(tmp_path)
    assert seeds_main(["status", "--cells", "jsb:tcn", "--seeds", "1111", "--have", str(records)]) == 0
    assert capsys.readouterr().out == "jsb/tcn seed 1111: ok: runs/records/jsb_tcn.json\n"
