"""The raw piano audio task: its loss and metric, its batches, budgeted training and its presets.

Excerpt lengths and the split by piece are the data layer's (tests/test_audio_data.py); generation is tested in
tests/test_generation.py.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from sequnet import build_model, count_parameters, paper_setting
from sequnet.experiment.records import ResultRecord
from sequnet.experiment.scales import resolve
from sequnet.experiment.tasks import make_task
from sequnet.experiment.training import train


class Uniform(nn.Module):
    """Equal logits for all 256 classes at every scored position: CE = ln 256, i.e. 8 bits per sample."""

    def __init__(self, history: int):
        super().__init__()
        self.history = history
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, ids):
        return self.bias.expand(ids.shape[0], 256, ids.shape[1] - self.history)


def smoke_task(arch="sequnet", scale="smoke"):
    config = resolve("piano_audio", arch, scale)
    return config, make_task("piano_audio", config.setting, config.batch_size)


def test_uniform_predictor_costs_eight_bits_per_sample(data_root):
    config, task = smoke_task()
    inputs, outputs = config.setting.input_output
    assert task.unit == "bits_per_sample"
    for split in ("train", "test"):
        ce = task.evaluate(Uniform(inputs - outputs), split, limit=3)
        assert ce == pytest.approx(math.log(256)) and task.metric(ce) == pytest.approx(8.0)
    assert task.metric(1.234) == pytest.approx(1.234 * math.log2(math.e))       # bits = CE * log2 e
    with pytest.raises(ValueError, match="valid.*train, test"):
        task.evaluate(Uniform(inputs - outputs), "valid")


@pytest.mark.parametrize("arch", ["sequnet", "wavenet"])
@pytest.mark.parametrize("scale", ["smoke", "demo"])
def test_batches_fit_the_model_and_the_loss_is_the_mean_over_all_targets(data_root, arch, scale):
    config, task = smoke_task(arch, scale)
    torch.manual_seed(0)
    model = build_model(config.setting).eval()
    inputs, targets = next(task.train_batches(torch.Generator().manual_seed(0)))
    assert inputs.shape == (config.batch_size, task.input_length)
    assert targets.shape == (config.batch_size, task.output_length)
    assert task.input_length - task.output_length == model.history    # each output has its full history
    assert torch.equal(targets[:, :-1], inputs[:, -(task.output_length - 1):])   # targets: the next samples
    if scale == "smoke":
        objective, total, count = task.loss(model, (inputs, targets))
        expected = F.cross_entropy(model(inputs), targets)
        assert count == targets.numel() and objective.item() == pytest.approx(expected.item(), rel=1e-6)
        assert total.item() == pytest.approx(expected.item() * count, rel=1e-6)


def test_training_stream_is_reproducible_and_random(data_root):
    _, task = smoke_task()

    def first(seed, n=3):
        stream = task.train_batches(torch.Generator().manual_seed(seed))
        return [next(stream)[0] for _ in range(n)]

    a, b, c = first(1), first(1), first(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[0], a[1])


def test_evaluation_windows_are_spread_over_the_split(data_root):
    _, task = smoke_task()
    n_test, n_train = len(task.windows["test"]), len(task.windows["train"])
    assert task.eval_indices("test", None) == list(range(n_test))
    spread = task.eval_indices("train", None)               # as many as the test split, evenly spaced
    assert len(spread) == n_test and spread[0] == 0 and spread[-1] == n_train - 1
    picked = task.eval_indices("test", 3)
    assert len(picked) == 3 and picked[0] == 0 and picked[-1] == n_test - 1


def test_smoke_training_writes_a_valid_record(tmp_path, data_root):
    config = resolve("piano_audio", "wavenet", "smoke")
    run = train(config, out_dir=tmp_path, log=None)
    record = ResultRecord.load(tmp_path / "records" / "piano_audio_wavenet.json")
    assert record.status == "ok" and record.metric == "bits_per_sample"
    assert record.metrics["valid"] is None
    assert all(0 < record.metrics[s] < 9 for s in ("train", "test"))
    assert record.params == count_parameters(run.model) and record.receptive_field == config.setting.receptive_field
    assert [h["steps"] for h in record.history] == [3, 3] and all(h["valid"] is None for h in record.history)
    assert "test pieces" in record.notes and record.time_per_step_s > 0


def test_time_budget_ends_the_run_inside_an_epoch(data_root):
    config = resolve("piano_audio", "sequnet", "smoke", epochs=10_000, max_steps_per_epoch=1000, time_budget_s=0.5)
    record = train(config, log=None, final_splits=()).record
    assert record.status == "ok" and "trained for its time budget of 0.5 s" in record.notes
    assert len(record.history) == 1 and 0 < record.history[0]["steps"] < 1000
    assert record.history[-1]["train_time_s"] >= 0.5


def test_presets_match_the_models_and_the_paper():
    paper = {arch: resolve("piano_audio", arch, "paper") for arch in ("sequnet", "wavenet")}
    for arch, config in paper.items():
        assert config.setting == paper_setting("piano_audio", arch)
        assert (config.batch_size, config.lr, config.clip) == (16, 5e-4, None)
        assert config.epochs * config.max_steps_per_epoch == 246_000       # without a budget: the paper's length
        assert config.time_budget_s == paper["sequnet"].time_budget_s
    assert resolve("piano_audio", "sequnet", "paper", time_budget_s=0).time_budget_s is None
    demo = {arch: resolve("piano_audio", arch, "demo") for arch in ("sequnet", "wavenet")}
    params = [count_parameters(build_model(c.setting)) for c in demo.values()]
    fields = [c.setting.receptive_field for c in demo.values()]
    assert abs(params[0] - params[1]) / params[0] < 0.05 and abs(fields[0] - fields[1]) / fields[0] < 0.05
    assert demo["sequnet"].time_budget_s == demo["wavenet"].time_budget_s
    with pytest.raises(ValueError, match="time_budget_s=-1"):
        resolve("piano_audio", "sequnet", "demo", time_budget_s=-1)


def test_test_excerpts_come_from_test_pieces(data_root):
    _, task = smoke_task()
    ids, sources = task.test_excerpts(3, 4000, seed=5)
    assert ids.shape == (3, 4000) and ids.dtype == torch.long
    names = [s.split(" @ ")[0] for s in sources]
    assert set(names) <= set(task.corpus.test) and len(set(names)) == min(3, len(task.corpus.test))
    for row, source in zip(ids, sources):
        name, at = source.split(" @ sample ")
        start = int(at.split()[0])
        assert torch.equal(row, task.corpus.test[name][start:start + 4000].long())
    again, _ = task.test_excerpts(3, 4000, seed=5)
    assert torch.equal(ids, again)
