"""Training: exact resume, the LR rule, divergence, metric units, scale validation, the search and the CLI."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from sequnet import build_model, count_parameters, paper_setting
from sequnet.data import text as text_data
from sequnet.experiment.hpo import SPACE, search
from sequnet.experiment.records import ResultRecord
from sequnet.experiment.presets import PRESETS
from sequnet.experiment.scales import resolve
from sequnet.experiment.metrics import bits_per_character, frame_nll, perplexity
from sequnet.experiment.tasks import LanguageTask, make_task
from sequnet.experiment.checkpoints import checkpoint_in, load_checkpoint
from sequnet.experiment.training import LRRule, lr_schedule, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def jsb_smoke(arch="sequnet", **overrides):
    return resolve("jsb", arch, "smoke", **overrides)


# --- resume ---------------------------------------------------------------------------------------------------------

def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, data_root):
    # Dropout (0.5) and the shuffled order make every epoch depend on the random states the checkpoint carries.
    config = jsb_smoke(epochs=4, max_steps_per_epoch=4)
    whole = train(config, checkpoint=tmp_path / "whole.pt", log=None)

    shared = "trained side by side with other runs (3 training processes ...)"
    part = train(config, checkpoint=tmp_path / "part.pt", stop_after_epoch=2, log=None, notes=[shared])
    assert part.record.status == "interrupted" and len(part.record.history) == 2
    torch.manual_seed(12345)                      # disturb every generator between the two calls
    resumed = train(config, checkpoint=tmp_path / "part.pt", resume=True, log=None)
    # the first call's note outlives it: the checkpoint keeps it for the record the second call writes, and for
    # a report that only reads the finished checkpoint (2026-12-03: a MuseData seed's record lost it)
    assert shared in resumed.record.notes and shared not in whole.record.notes
    assert shared in train(config, checkpoint=tmp_path / "part.pt", resume=True, log=None).record.notes

    assert resumed.record.status == whole.record.status == "ok"
    assert resumed.record.metrics == whole.record.metrics
    assert resumed.record.loss_spikes == whole.record.loss_spikes and whole.record.loss_spikes["steps_checked"] == 16
    # the allocator's peak depends on what the process allocated before (on a GPU it differed by 0.04 MiB)
    strip = ("epoch_time_s", "step_time_median_s", "peak_memory_mib")
    assert [{k: v for k, v in h.items() if k not in strip} for h in resumed.record.history] == \
        [{k: v for k, v in h.items() if k not in strip} for h in whole.record.history]
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    last_a, last_b = load_checkpoint(tmp_path / "whole.pt"), load_checkpoint(tmp_path / "part.pt")
    for name, a in last_a["model"].items():
        assert torch.equal(a, last_b["model"][name]), name
    assert last_a["state"]["epoch"] == last_b["state"]["epoch"] == 4


def test_resume_refuses_a_different_configuration(tmp_path, data_root):
    config = jsb_smoke(epochs=1)
    train(config, checkpoint=tmp_path / "c.pt", log=None)
    with pytest.raises(ValueError, match="lr"):
        train(config.replace(lr=0.5), checkpoint=tmp_path / "c.pt", resume=True, log=None)


# --- LR rule ----------------------------------------------------------------------------------------------------------

def test_lr_rule_gating_patience_and_comparison():
    flat = [5.0] * 10
    strict, loose = LRRule(5, strict=True), LRRule(5, strict=False)
    # Epoch 11 equal to the max of the last 5: only the >= variant (word PTB) halves.
    assert not strict.should_halve(11, 5.0, flat) and loose.should_halve(11, 5.0, flat)
    assert strict.should_halve(11, 5.1, flat)
    # Never at or before epoch 10, however bad.
    assert not strict.should_halve(10, 99.0, flat[:9]) and not loose.should_halve(1, 99.0, [])
    # Only the last P losses count: 9.0 six epochs ago is outside P=5 but inside P=10.
    history = [1.0] * 4 + [9.0] + [2.0] * 5
    assert LRRule(5).should_halve(11, 3.0, history)
    assert not LRRule(10).should_halve(11, 3.0, history)
    assert not LRRule(None).should_halve(50, 1e9, history)


def test_lr_schedule_halves_on_consecutive_epochs():
    losses = [10 - i for i in range(10)] + [20.0, 21.0, 0.5, 0.6]
    rates = lr_schedule(LRRule(5, strict=True), 1.0, losses)
    # epoch 11 (20 > 6) halves for epoch 12; epoch 12 (21 > 20) halves again; epoch 13 (0.5) does not.
    assert rates == [1.0] * 11 + [0.5, 0.25, 0.25]


def test_trainer_applies_the_rule(data_root):
    run = train(jsb_smoke(epochs=12, max_steps_per_epoch=1, eval_limit=1, patience=1), log=None)
    history = run.record.history
    valid = [h["valid_loss"] for h in history]
    assert [h["lr"] for h in history] == pytest.approx(lr_schedule(LRRule(1), history[0]["lr"], valid))
    assert [h["lr_halved"] for h in history] == [LRRule(1).should_halve(e, v, valid[:e - 1])
                                                for e, v in enumerate(valid, start=1)]


# --- divergence -------------------------------------------------------------------------------------------------------

class ChangedTrainingLoss:
    """Wraps a task so that ``change`` rewrites (objective, total, count) of chosen training steps, counted over
    the whole run from 1."""

    def __init__(self, task, when, change):
        self.task, self.when, self.change, self.calls = task, when, change, 0

    def __getattr__(self, name):
        return getattr(self.task, name)

    def loss(self, model, batch):
        result = self.task.loss(model, batch)
        if model.training:
            self.calls += 1
            if self.when(self.calls):
                result = self.change(*result)
        return result


def NaNAfter(task, step):
    """The training loss turns NaN from ``step`` on."""
    return ChangedTrainingLoss(task, lambda n: n >= step, lambda o, t, c: (o * math.nan, t * math.nan, c))


def test_divergence_stops_with_a_clear_record(tmp_path, data_root):
    config = jsb_smoke(epochs=5, max_steps_per_epoch=3)
    task = NaNAfter(make_task("jsb", config.setting, 1), step=5)      # epoch 2, second step
    run = train(config, task=task, out_dir=tmp_path, log=None)
    record = ResultRecord.load(tmp_path / "records" / "jsb_sequnet.json")
    assert record.status == run.record.status == "diverged"
    assert "epoch 2" in record.notes and "not finite" in record.notes
    assert len(record.history) == 1 and record.metrics["test"] is None
    assert record.metrics["valid"] == pytest.approx(record.history[0]["valid"])


def SpikeAt(task, steps, nats, interval=None):
    """The reported training loss of ``steps`` rises by ``nats`` per item, the gradients untouched: a loss spike
    like the paper-setting word Seq-U-Net's. ``interval`` overrides the task's train_loss_interval."""
    wrapped = ChangedTrainingLoss(task, lambda n: n in steps, lambda o, t, c: (o, t + nats * c, c))
    if interval is not None:
        wrapped.train_loss_interval = interval
    return wrapped


def spiked_run(tmp_path, experiment, steps, nats, interval=None):
    config = resolve(experiment, "tcn", "smoke", epochs=1, max_steps_per_epoch=7, eval_limit=2)
    task = SpikeAt(make_task(experiment, config.setting, config.batch_size), steps, nats, interval)
    return train(config, task=task, out_dir=tmp_path, log=None).record


def test_char_stops_on_one_step_over_100_nats_word_does_not(tmp_path, data_root):
    # The char script raises on any step's loss > 100; the word script only on an overflowing log line.
    char = spiked_run(tmp_path / "char", "char_ptb", {2}, 500.0)
    assert char.status == "diverged" and "at step 2" in char.notes
    word = spiked_run(tmp_path / "word", "word_ptb", {2}, 500.0, interval=3)
    assert word.status == "ok" and word.metrics["test"] is not None
    word_task = make_task("word_ptb", resolve("word_ptb", "tcn", "smoke").setting, 1)
    assert (word_task.train_loss_limit, word_task.train_loss_interval) == (pytest.approx(709.78, abs=0.01), 100)


def test_word_stops_when_a_log_interval_mean_overflows(tmp_path, data_root):
    # Interval 3: the first log line at step 4 averages steps 1-4 over 3 (the official off-by-one kept).
    word = spiked_run(tmp_path, "word_ptb", {2, 3}, 1500.0, interval=3)
    assert word.status == "diverged"
    assert "log interval of 3 steps ending at step 4" in word.notes
    # The same two spikes in different log intervals stay under exp's overflow.
    assert spiked_run(tmp_path / "apart", "word_ptb", {2, 6}, 1500.0, interval=3).status == "ok"


# --- metrics -----------------------------------------------------------------------------------------------------------

class Constant(nn.Module):
    """Logits that are zero everywhere, after the model's history: the uniform / p=1/2 predictor."""

    def __init__(self, classes, history=0):
        super().__init__()
        self.classes, self.history = classes, history
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.zeros(x.shape[0], self.classes, x.shape[-1] - self.history) + 0 * self.unused


def test_metric_units():
    assert bits_per_character(1.5 * math.log(2)) == pytest.approx(1.5)
    assert perplexity(math.log(100.0)) == pytest.approx(100.0)
    assert perplexity(1e6) == math.inf
    assert frame_nll(6.9) == 6.9


def test_task_metrics_of_a_uniform_predictor(data_root):
    char = make_task("char_ptb", resolve("char_ptb", "tcn", "smoke").setting, 4)
    assert char.unit == "bpc"
    ce = char.evaluate(Constant(49, history=80), "valid", limit=3)
    assert ce == pytest.approx(math.log(49)) and char.metric(ce) == pytest.approx(math.log2(49))
    music = make_task("jsb", jsb_smoke().setting, 1)
    nll = music.evaluate(Constant(88), "test", limit=4)
    assert music.unit == "nll" and music.metric(nll) == pytest.approx(88 * math.log(2))   # nats per frame


def test_language_windows_follow_the_official_scripts():
    ids = torch.arange(16 * 50)
    corpus = text_data.Corpus("word", [str(i) for i in range(800)], ids, ids, ids)
    setting = paper_setting("word_ptb", "tcn").replace(target_output=5, history=7)      # windows of 12, 5 scored
    task = LanguageTask("word_ptb", setting, corpus, batch_size=16)
    starts = [int(x[0, 0]) for x, _ in task.eval_batches("valid", None) for x in x.split(16)]
    # word: range(0, L - 1, V) without the windows where i + seq_len >= L - 1 (L = 50 per stream)
    assert starts == [i for i in range(0, 49, 5) if i + 12 < 49]
    inputs, targets = next(iter(task.eval_batches("valid", 1)))
    assert torch.equal(targets, inputs[:, -5:] + 1)                  # the next token after each scored input


def test_stacked_evaluation_equals_one_window_at_a_time(data_root):
    config = resolve("char_ptb", "sequnet", "smoke")
    task = make_task("char_ptb", config.setting, 4)
    model = train(config, task=task, final_splits=(), log=None).model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in text_data.windows(task.streams["valid"].shape[1], *config.setting.input_output)[:40]:
            x, y = text_data.get_window(task.streams["valid"], start, *config.setting.input_output)
            total += nn.functional.cross_entropy(model(x), y, reduction="sum").item()
            count += y.numel()
    assert task.evaluate(model, "valid", limit=40) == pytest.approx(total / count, rel=1e-6)


# --- scales -------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,parameter", [
    (dict(scale="huge"), "scale='huge'.*'smoke', 'demo', 'paper'"),
    (dict(epochs=0), "epochs=0"),
    (dict(epochs=True), "epochs=True"),
    (dict(lr=-1.0), "lr=-1.0"),
    (dict(clip="x"), "clip='x'"),
    (dict(device="tpu"), "device='tpu'"),
    (dict(dataset="mnist"), "dataset='mnist'.*'jsb'"),
    (dict(batch_size=16), "batch_size=16.*only 1"),
    (dict(max_steps_per_epoch=-3), "max_steps_per_epoch"),
    (dict(learning_rate=1e-3), "unknown override.*learning_rate.*allowed"),
    (dict(arch="lstm"), "arch='lstm'.*'sequnet', 'tcn'"),
])
def test_bad_values_name_the_parameter(kwargs, parameter):
    args = dict(task="music", arch="tcn", scale="smoke") | kwargs
    with pytest.raises(ValueError, match=parameter):
        resolve(args.pop("task"), args.pop("arch"), args.pop("scale"), **args)


def test_paper_scale_is_table_3():
    for task, arch in [("char_ptb", "sequnet"), ("word_ptb", "tcn"), ("jsb", "sequnet"), ("nottingham", "tcn")]:
        config = resolve(task, arch, "paper")
        setting = paper_setting(task, arch)
        assert config.setting == setting and config.epochs == 100
        assert (config.lr, config.clip, config.patience) == (setting.lr, setting.clip, setting.patience)
        assert config.batch_size == (1 if setting.kind == "music" else 16)
        assert config.max_steps_per_epoch is None and config.eval_limit is None
    assert resolve("word_ptb", "tcn", "paper").strict_lr_rule is False
    assert resolve("char_ptb", "tcn", "paper").strict_lr_rule is True
    assert resolve("music", "tcn", "demo", dataset="muse", epochs=3, clip=0).task == "muse"
    assert resolve("jsb", "tcn", "paper", clip=0).clip is None
    assert resolve("jsb", "tcn", "paper", epochs=None).epochs == 100               # None keeps the preset


@pytest.mark.parametrize("task", ["char_ptb", "word_ptb", "jsb", "muse"])
def test_demo_models_have_matched_sizes(task):
    counts = [count_parameters(build_model(resolve(task, arch, "demo").setting))
              for arch in ("tcn", "sequnet")]
    assert abs(counts[0] - counts[1]) / counts[0] < 0.1, counts
    assert resolve(task, "sequnet", "demo").setting.input_output == paper_setting(task, "sequnet").input_output
    assert set(PRESETS) >= {(task, "smoke"), (task, "demo")}


# --- search --------------------------------------------------------------------------------------------------------------

def test_hpo_smoke_three_trials(data_root):
    result = search("jsb", "sequnet", "smoke", trials=3, search_seed=1, log=None, epochs=1, max_steps_per_epoch=2,
                    seed=7)
    assert len(result.trials.trials) == 3
    assert math.exp(-12) <= result.lr <= math.exp(-2)
    assert result.clip is None or 0.01 <= result.clip <= 1.0
    assert result.best_valid_loss == min(row["valid_loss"] for row in result.table())
    assert set(SPACE) == {"lr", "clip"}


def test_hpo_stopped_by_its_time_limit_resumes_to_the_uninterrupted_search(tmp_path, data_root):
    args = dict(log=None, epochs=1, max_steps_per_epoch=1, eval_limit=1)
    whole = search("jsb", "tcn", "smoke", trials=3, search_seed=4, **args)
    part = search("jsb", "tcn", "smoke", trials=3, search_seed=4, out_dir=tmp_path, time_limit_s=1e-9, **args)
    assert not part.complete and len(part.trials.trials) == 1
    resumed = search("jsb", "tcn", "smoke", trials=3, search_seed=4, out_dir=tmp_path, **args)
    assert resumed.complete and resumed.table() == whole.table()
    with pytest.raises(ValueError, match="holds the trials of another search .* epochs"):
        search("jsb", "tcn", "smoke", trials=3, search_seed=4, out_dir=tmp_path, **(args | dict(epochs=2)))


def test_hpo_counts_diverged_trials_as_failures(data_root, monkeypatch):
    import sequnet.experiment.hpo as hpo
    real_train, calls = hpo.train, []

    def flaky(config, **kwargs):
        calls.append(config)
        run = real_train(config, **kwargs)
        if len(calls) == 1:
            run.record.status = "diverged"
        return run

    monkeypatch.setattr(hpo, "train", flaky)
    result = search("jsb", "tcn", "smoke", trials=2, log=None, epochs=1, max_steps_per_epoch=1)
    assert [row["status"] for row in result.table()] == ["fail", "ok"]
    assert result.lr == pytest.approx(calls[1].lr)


# --- command line --------------------------------------------------------------------------------------------------------

def test_cli_train_writes_a_valid_record(tmp_path, data_root):
    out = subprocess.run([sys.executable, "-m", "sequnet", "train", "jsb", "sequnet", "--scale", "smoke", "--out",
                          str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    record = ResultRecord.load(tmp_path / "records" / "jsb_sequnet.json")
    assert (record.experiment, record.model, record.scale, record.metric, record.status) == \
        ("jsb", "sequnet", "smoke", "nll", "ok")
    assert all(math.isfinite(v) for v in record.metrics.values())
    assert record.params == count_parameters(build_model(jsb_smoke().setting))
    assert record.receptive_field == paper_setting("jsb", "sequnet").receptive_field
    # the default device: the GPU where there is one (the GPU test suite runs this too), else the CPU
    expected = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu ("
    assert record.time_per_step_s > 0 and record.device.startswith(expected)
    assert len(record.history) == record.config["epochs"] == 2
    assert (tmp_path / "checkpoints" / "jsb_sequnet.pt").is_file()
    assert record.seed == 1111 and record.loss_spikes["steps_checked"] == sum(h["steps"] for h in record.history)
    # another seed of the same model: its own files beside the first, its record naming it
    out = subprocess.run([sys.executable, "-m", "sequnet", "train", "jsb", "sequnet", "--scale", "smoke", "--seed",
                          "2", "--out", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert ResultRecord.load(tmp_path / "records" / "jsb_sequnet_seed2.json").seed == 2
    assert (tmp_path / "checkpoints" / "jsb_sequnet_seed2.pt").is_file()


def test_cli_rejects_bad_values(tmp_path, capsys):
    from sequnet.cli import main
    assert main(["train", "jsb", "sequnet", "--scale", "smoke", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "epochs=0" in capsys.readouterr().err
    assert main(["train", "jsb", "sequnet", "--clip", "strong", "--out", str(tmp_path)]) == 2
    assert "--clip='strong'" in capsys.readouterr().err
    assert not (tmp_path / "records").exists()


def test_cli_hpo_writes_its_trials(tmp_path, data_root, capsys):
    from sequnet.cli import main
    assert main(["hpo", "jsb", "tcn", "--scale", "smoke", "--trials", "2", "--epochs", "1", "--max-steps-per-epoch",
                 "1", "--seed", "3", "--out", str(tmp_path)]) == 0
    assert "best of 2 trials: lr" in capsys.readouterr().out
    data = json.loads((tmp_path / "hpo_jsb_tcn_smoke.json").read_text())
    assert len(data["trials"]) == 2 and data["lr"] in [t["lr"] for t in data["trials"]]
    # a search at reduced cost names its change of the preset, and so does every trial's record
    assert data["deviations"] == {"epochs": 1, "max_steps_per_epoch": 1} and data["complete"] is True
    assert data["notes"] == "smoke preset changed: epochs=1, max_steps_per_epoch=1"
    trial = ResultRecord.load(tmp_path / "hpo_jsb_tcn_smoke" / "trial-002" / "records" / "jsb_tcn_seed3.json")
    assert trial.seed == 3 and trial.config["lr"] == data["trials"][1]["lr"]
    assert trial.notes.startswith("smoke preset changed: epochs=1, lr=")
    assert {"epochs", "max_steps_per_epoch", "lr"} <= trial.deviations.keys()
    assert "trial 2 of a TPE search over lr ~ exp(U(-12, -2))" in trial.notes


def test_checkpoint_in_names_the_train_commands_checkpoint():
    from sequnet.experiment.scales import resolve

    config = resolve("nottingham", "tcn", "smoke")
    assert checkpoint_in(None, config) is None
    assert checkpoint_in("runs/paper/checkpoints", config).as_posix() == \
        "runs/paper/checkpoints/nottingham_tcn.pt"
    with pytest.raises(ValueError, match="checkpoints=3"):
        checkpoint_in(3, config)


def test_music_trains_one_sequence_per_step_wherever_it_is_asked():
    with pytest.raises(ValueError, match="batch_size=4: the music tasks train on one whole sequence"):
        resolve("jsb", "tcn", "smoke", batch_size=4)
    with pytest.raises(ValueError, match="batch_size=2: the music tasks train on one whole sequence"):
        make_task("nottingham", paper_setting("nottingham", "tcn"), 2)


def test_a_changed_preset_is_a_field_of_the_record(tmp_path, data_root):
    changed = train(jsb_smoke(epochs=1, lr=0.01), out_dir=tmp_path, log=None).record
    assert changed.deviations == {"epochs": 1, "lr": 0.01}
    assert ResultRecord.load(tmp_path / "records" / "jsb_sequnet.json").deviations == {"epochs": 1, "lr": 0.01}
