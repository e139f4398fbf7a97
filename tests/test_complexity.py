"""Section 4's complexity argument: the analytic counts match the models, and the measured ones scale as claimed."""
import gc
import json
import weakref

import pytest
import torch

from sequnet.analysis import benchmarks, sweeps
from sequnet.analysis import complexity as C
from sequnet.core import sizes
from sequnet.core.models import ResSeqUNet, ResSeqUNetConfig, SeqUNet, SeqUNetConfig, TCN, TCNConfig, WaveNet, WaveNetConfig

SMALL = sweeps.AudioModels(features=4, wavenet_channels=4, skip_channels=8, end_channels=8, classes=8)


def bodies():
    """(body, input length) pairs covering every model and both length modes of the base Seq-U-Net."""
    valid = SeqUNet(SeqUNetConfig(3, (5, 6, 7), 2, kernel_size=3))
    yield valid, sizes.sequnet_valid_io(3, 3, 40)[0] + 4 * 3
    yield SeqUNet(SeqUNetConfig(3, (5, 6, 7, 4), 2, kernel_size=5, padded=True)), 50
    res = ResSeqUNet(ResSeqUNetConfig(3, 4, 4, 2, kernel_size=5, depth=2))
    yield res, res.plan.input_length + 3 * res.cycle
    yield WaveNet(WaveNetConfig(3, blocks=2, layers=4, residual_channels=4, skip_channels=6, end_channels=6,
                                num_outputs=2)), 70
    yield TCN(TCNConfig(3, (5, 5, 6), kernel_size=3)), 33


@pytest.mark.parametrize("body,length", list(bodies()), ids=lambda v: type(v).__name__ if hasattr(v, "config") else str(v))
def test_layer_lengths_match_forward_hooks(body, length):
    layers = C.model_layers(body, length)
    shapes = C.layer_shapes(body, torch.randn(2, body.config.num_inputs, length), [l.name for l in layers])
    assert shapes == {l.name: (l.length, l.channels) for l in layers}


def test_layer_lists_approach_the_papers_closed_forms():
    # (the closed forms themselves are checked against the paper in test_models.py) without the valid-convolution shrink the exact counts approach the closed forms as I grows
    I = SMALL.sequnet_input(4, outputs=2 ** 16)
    exact = C.activations(C.res_sequnet_layers(I, 4, 5, 2, 4))
    assert exact == pytest.approx(sizes.res_sequnet_ideal_activations(I, 4, 2), rel=0.01)
    assert C.activations(C.tcn_layers(400, (600,) * 4)) == sizes.tcn_ideal_activations(400, 4)   # causal padding
    exact = C.activations(C.wavenet_layers(2 ** 20, 4, 13))
    assert exact == pytest.approx(sizes.wavenet_ideal_activations(2 ** 20, 4, 13), rel=0.05)


def saved_and_analytic(model, input_length):
    """(saved elements, analytic positions x channels) per input sample of one forward pass."""
    ids = torch.randint(0, model.classes, (1, input_length))
    saved = C.count_saved_activations(model.body, model.embed(ids)).elements
    analytic = C.activations(C.model_layers(model.body, input_length), channels=True)
    return saved / input_length, analytic / input_length


def test_saved_tensors_grow_linearly_in_length():
    for arch, levels in (("sequnet", 3), ("wavenet", 5)):
        model = getattr(SMALL, arch)(levels)
        inputs = getattr(SMALL, f"{arch}_input")
        (a, _), (b, _) = (saved_and_analytic(model, inputs(levels, outputs=t)) for t in (4096, 16384))
        # per input sample the count is constant up to the valid-convolution shrink (a few % at these lengths)
        assert a == pytest.approx(b, rel=0.1), arch


def test_saved_tensors_bounded_for_sequnet_growing_for_wavenet():
    length = 4096
    seq, wave = [], []
    for levels in range(2, 7):
        seq.append(saved_and_analytic(SMALL.sequnet(levels), SMALL.sequnet_input(levels, at_most=length)))
        wave.append(saved_and_analytic(SMALL.wavenet(SMALL.matched_wavenet_layers(levels)), length))
    seq_saved, wave_saved = [s for s, _ in seq], [s for s, _ in wave]
    # Seq-U-Net: below a constant times I whatever the depth (about 3 saved tensors per layer output: the conv
    # input, the tanh and sigmoid outputs, times the limit of 12 layer outputs per input sample)
    assert max(seq_saved) < 3.5 * sizes.res_sequnet_activation_limit(2) * SMALL.features
    # WaveNet: every added layer is another full-length one (less the shrink of ever longer dilations)
    assert all(b > a for a, b in zip(wave_saved, wave_saved[1:])) and wave_saved[-1] > 1.6 * wave_saved[0]
    # and at every depth the measurement is the analytic count times a constant of the layer type
    for counts in (seq, wave):
        ratios = [s / a for s, a in counts]
        assert max(ratios) < 1.06 * min(ratios)


class TanhSigmoid(torch.nn.Module):
    """conv -> tanh -> chunk/slice -> sigmoid: outputs saved by their ops, views of them, a parameter."""

    def __init__(self, chunk: bool):
        super().__init__()
        self.conv, self.chunk = torch.nn.Conv1d(2, 4, 1), chunk

    def forward(self, x):
        h = self.conv(x).tanh()
        self.output = weakref.ref(h)
        if self.chunk:
            a, b = h.chunk(2, dim=1)         # two views of one tanh output, both saved by the product
            return a * b
        return h[..., 2:].sigmoid()


def test_saved_tensors_exclude_parameters_and_count_views_once():
    x = torch.randn(1, 2, 10)
    # the conv saves x and its weight (both left out); tanh saves its output (40), sigmoid its output (32)
    saved = C.count_saved_activations(TanhSigmoid(chunk=False), x)
    assert (saved.elements, saved.tensors, saved.bytes) == (40 + 32, 2, 4 * 72)
    # tanh's output and the two chunk views saved by the product share one storage
    model = TanhSigmoid(chunk=True)
    saved = C.count_saved_activations(model, x)
    assert (saved.elements, saved.tensors) == (40, 1)


def test_saved_tensors_count_frees_the_graph_at_once():
    """A saved output must not keep its own graph alive in a reference cycle (only a gc would free it)."""
    model = TanhSigmoid(chunk=False)
    gc.disable()
    try:
        C.count_saved_activations(model, torch.randn(1, 2, 10))
        assert model.output() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("levels", [1, 2, 4, 11])
def test_levels_per_step(levels):
    cycle = 2 ** (levels - 1)
    schedule = C.clock_schedule(3 * cycle, levels)
    assert sum(schedule) / len(schedule) == pytest.approx(C.mean_levels_per_step(levels))
    assert C.mean_levels_per_step(levels) <= 2
    assert max(schedule) == C.worst_levels_per_step(levels) and schedule[-1] == levels   # clock 0 every period
    assert schedule[0] == 1                                                               # first step: clock 1
    if levels > 1:      # a residual Seq-U-Net has at least 2 levels
        layers = [C.res_sequnet_layers_updated(c, levels, 2) for c in range(cycle)]
        assert sum(layers) / cycle == pytest.approx(C.res_sequnet_mean_layers_per_step(levels, 2))


@pytest.mark.parametrize("levels", [2, 3, 5])
def test_generator_counters_follow_the_clock(levels):
    pytest.importorskip("sequnet.core.generation")
    cycle = 2 ** (levels - 1)
    r = C.measured_generation_counts(SMALL.sequnet(levels), 2 * cycle + 1)   # the first sample needs no step
    assert r["steps"] == 2 * cycle
    assert r["level_counts"] == [2 * cycle // 2 ** i for i in range(levels)]
    assert r["mean_levels_per_step"] == pytest.approx(C.mean_levels_per_step(levels))
    assert r["mean_layers_per_step"] == pytest.approx(C.res_sequnet_mean_layers_per_step(levels, SMALL.depth))


def test_sweep_runs_and_reports_every_point():
    plan = sweeps.SweepPlan(models=SMALL, batch=1, length_levels=2, outputs=(16, 64), depth_levels=(2, 3),
                            depth_input=300, steps=1, warmup=0)
    rows = sweeps.sweep(plan, torch.device("cpu"), progress=None)
    assert [(r["sweep"], r["arch"]) for r in rows] == [("length", "sequnet"), ("length", "wavenet")] * 2 \
        + [("depth", "sequnet"), ("depth", "wavenet")] * 2
    for r in rows:
        assert r["output_length"] == r["input_length"] - r["receptive_field"] + 1
        assert r["saved_elements"] > r["activations"] > 0 and r["time_median_s"] > 0
    # what the chapter draws and writes from a sweep
    result = {"meta": {**C.run_metadata(torch.device("cpu")), "plan": "test"}, "rows": rows}
    fig = sweeps.plot_sweeps(result, "test")
    assert len(fig.axes) == 2 * 2                 # saved and time, no peak-memory panel on a CPU
    summary = sweeps.sweep_summary(result)
    assert summary.count("\n") == 3 and "length sweep" in summary and "depth sweep" in summary


def test_predicted_pins_or_fits_the_analytic_count():
    assert sweeps.predicted([2.0, 4.0], [10, 20], offset=False).tolist() == [2.0, 4.0]
    # measured = 5 + 0.5 * count exactly: the fit recovers it
    assert sweeps.predicted([10.0, 15.0, 25.0], [10, 20, 40], offset=True) == pytest.approx([10, 15, 25])


def test_the_models_compute_the_analytic_layer_lists():
    assert len(sweeps.check_layer_lists(SMALL)) == 5


def test_generation_counters_report_against_the_closed_form():
    from sequnet.analysis import generation_checks

    measured = generation_checks.measure_levels(SMALL, (2, 3))
    assert "L = 3" in generation_checks.levels_report(measured, SMALL.depth)
    with pytest.raises(AssertionError, match="L = 2"):
        generation_checks.levels_report({2: dict(measured[2], mean_levels_per_step=1.0)}, SMALL.depth)


def _bench(tmp_path, name, meta, rows):
    (tmp_path / name).write_text(json.dumps({"meta": {"torch": "2", "device": "GPU", **meta}, "rows": rows}))


def test_benchmark_tables_pair_each_sequnet_with_its_baseline(tmp_path):
    row = lambda task, arch, ms, mib, batch=16: dict(task=task, arch=arch, batch=batch, time_median_s=ms / 1e3,
                                                     peak_memory_mib=mib)
    _bench(tmp_path, "training-a.json", {"date": "2026-01-02"},
           [row("char_ptb", "tcn", 10, 400), row("char_ptb", "sequnet", 5, 100),
            row("piano_audio", "wavenet", 200, 1000), row("piano_audio", "sequnet", 50, 500)])
    _bench(tmp_path, "training-quick.json", {"date": "2026-01-03", "quick": True},
           [row("char_ptb", "tcn", 1, 1), row("char_ptb", "sequnet", 9, 9), row("piano_audio", "sequnet", 1, 1)])
    table = benchmarks.table1_ratios_markdown(tmp_path)
    assert "`training-a.json`" in table and "quick" not in table
    assert "| char_ptb | 16 | 0.41 | 0.50 | 0.68 | 0.25 |" in table        # paper 0.0286/0.0694, 304.9/445.9
    assert "| word_ptb | – | 0.49 | – |" in table
    piano = benchmarks.piano_variants_markdown(tmp_path)
    assert "| 50.0 | 200.0 | 500 | 1,000 | 0.25 | 0.50 |" in piano and "**50.0 ms**" in piano
    assert "no GPU benchmark committed" in benchmarks.table1_ratios_markdown(tmp_path / "none")


def test_each_pair_is_compared_plain_side_by_side_and_each_model_at_its_best(tmp_path):
    """Plain: both models as written, from one file; best: each model's fastest step and smallest peak, whichever
    file and speed-ups they came from (a compiler setting only where both models ran with it); a pair with only
    one model measured has no row."""
    def row(arch, ms, mib, **switches):
        return dict(task="piano_audio", arch=arch, batch=16, time_median_s=ms / 1e3, peak_memory_mib=mib, **switches)

    _bench(tmp_path, "training-plain.json", {"date": "2026-01-01"},
           [row("sequnet", 120, 8000), row("wavenet", 600, 40000)])
    _bench(tmp_path, "training-fast.json", {"date": "2026-01-02", "bf16": True, "cuda_graphs": True},
           [row("sequnet", 40, None, channels_last=True, fused_gate=True),
            row("wavenet", 200, 20000, channels_last=True, fused_gate=True),
            dict(task="jsb", arch="sequnet", batch=1, time_median_s=0.003, peak_memory_mib=10)])
    table = benchmarks.plain_and_best_markdown(tmp_path)
    assert ("| GPU | piano_audio | 16 | 120.0 / 600.0 | 0.20, 0.20 | 40.0 (bf16, CUDA graphs, channels-last, fused "
            "gate, `training-fast.json`) | 200.0 (bf16, CUDA graphs, channels-last, fused gate, `training-fast.json`) "
            "| 0.20, 0.40 | 0.25, 0.29 |") in table
    assert "jsb" not in table
    assert "No full training benchmark" in benchmarks.plain_and_best_markdown(tmp_path / "none")
    # benchmarks/piano_step.py's variants compete for the best (never for plain), named by their spec
    _bench(tmp_path, "piano-step-x.json", {"date": "2026-01-03", "batch": 16, "cuda_graphs": True},
           [dict(arch="sequnet", spec="sequnet bf16 pad=64 compile", batch=16, time_median_s=0.030,
                 peak_memory_mib=4900, bf16=True, compile=True),
            dict(arch="wavenet", spec="wavenet bf16 crop compile", batch=16, time_median_s=0.110,
                 peak_memory_mib=26000, bf16=True, compile=True),
            # a variant that failed (benchmarks/piano_step.py keeps its switches and the error) competes for nothing,
            # nor one whose cuDNN plans its name misstates (faster, or it would not test the rule)
            dict(arch="sequnet", spec="sequnet bf16 mm_wgrad", bf16=True, compile=False, error="TypeError: x"),
            dict(arch="wavenet", spec="wavenet bf16 crop compile", batch=16, time_median_s=0.090,
                 peak_memory_mib=26000, bf16=True, compile=True, cudnn_plans="autotuned"),
            # nor a compiler setting tried on one model only
            dict(arch="sequnet", spec="sequnet bf16 pad=64 compile inductor.x=True", batch=16, time_median_s=0.020,
                 peak_memory_mib=4900, bf16=True, compile=True, config_patches={"inductor": {"x": True}})])
    _bench(tmp_path, "piano-step-quick.json", {"date": "2026-01-04", "quick": True},
           [dict(arch="sequnet", spec="sequnet fp32", batch=16, time_median_s=0.001, peak_memory_mib=1)])
    assert ("| GPU | piano_audio | 16 | 120.0 / 600.0 | 0.20, 0.20 | 30.0 (bf16 pad=64 compile, CUDA graphs, "
            "channels-last, `piano-step-x.json`) | 110.0 (bf16 crop compile, CUDA graphs, channels-last, "
            "`piano-step-x.json`) | 0.27, 0.24 | 0.25, 0.29 |") in benchmarks.plain_and_best_markdown(tmp_path)
    # ... until the other model runs with it too
    _bench(tmp_path, "piano-step-x2.json", {"date": "2026-01-03", "batch": 16, "cuda_graphs": True},
           [dict(arch="wavenet", spec="wavenet bf16 crop compile inductor.x=True", batch=16, time_median_s=0.100,
                 peak_memory_mib=26000, bf16=True, compile=True, config_patches={"inductor": {"x": True}})])
    assert ("| 20.0 (bf16 pad=64 compile, Inductor: x, CUDA graphs, channels-last, `piano-step-x.json`) | 100.0 "
            "(bf16 crop compile, Inductor: x, CUDA graphs, channels-last, `piano-step-x2.json`) | 0.20, 0.24 |"
            ) in benchmarks.plain_and_best_markdown(tmp_path)
    (tmp_path / "piano-step-x2.json").unlink()
    # on a GPU where only the Seq-U-Net was compiled, its best is its fastest step of a mode WaveNet also ran
    _bench(tmp_path, "piano-step-y.json",
           {"date": "2026-01-05", "batch": 16, "device": "Other GPU", "cuda_graphs": True},
           [dict(arch="sequnet", spec="sequnet bf16 pad=64 compile", batch=16, time_median_s=0.030,
                 peak_memory_mib=4000, bf16=True, compile=True),
            dict(arch="sequnet", spec="sequnet bf16 pad=64", batch=16, time_median_s=0.050, peak_memory_mib=5000,
                 bf16=True, compile=False),
            dict(arch="wavenet", spec="wavenet bf16 crop", batch=16, time_median_s=0.200, peak_memory_mib=20000,
                 bf16=True, compile=False)])
    assert ("| Other GPU | piano_audio | 16 | – | – | 50.0 (bf16 pad=64, CUDA graphs, channels-last, "
            "`piano-step-y.json`) | 200.0 (bf16 crop, CUDA graphs, channels-last, `piano-step-y.json`) | 0.25, 0.25 "
            "|") in benchmarks.plain_and_best_markdown(tmp_path)


def test_piano_rows_pair_models_with_the_same_speed_ups(tmp_path):
    """Each Seq-U-Net row beside the WaveNet with the same switches: plain with plain, fused with fused."""
    def row(arch, ms, fused):
        return dict(task="piano_audio", arch=arch, batch=16, time_median_s=ms / 1e3, peak_memory_mib=100,
                    channels_last=False, fused_gate=fused)

    _bench(tmp_path, "training-piano.json", {"date": "2026-01-02", "cuda_graphs": True},
           [row("wavenet", 400, False), row("sequnet", 80, False), row("wavenet", 360, True), row("sequnet", 60, True)])
    piano = benchmarks.piano_variants_markdown(tmp_path)
    assert "| 80.0 | 400.0 | 100 | 100 | 0.20 | 1.00 |" in piano
    assert "| 60.0 | 360.0 | 100 | 100 | 0.17 | 1.00 |" in piano


def test_piano_rows_pair_each_sequnet_with_the_wavenet_it_was_measured_beside(tmp_path):
    """A Seq-U-Net measured beside a WaveNet with cropped skips gets that WaveNet; the one beside the uncropped
    WaveNet keeps its own (benchmarks/training.py --crop-skips both)."""
    def row(arch, ms, crop):
        extra = {"crop_skips": crop} if arch == "wavenet" else {"crop_skips": False, "baseline_crop_skips": crop}
        return dict(task="piano_audio", arch=arch, batch=16, time_median_s=ms / 1e3, peak_memory_mib=100,
                    channels_last=True, fused_gate=True, **extra)

    _bench(tmp_path, "training-piano.json", {"date": "2026-01-02", "cuda_graphs": True},
           [row("wavenet", 400, False), row("sequnet", 80, False), row("wavenet", 250, True), row("sequnet", 81, True)])
    piano = benchmarks.piano_variants_markdown(tmp_path)
    assert "| 80.0 | 400.0 | 100 | 100 | 0.20 | 1.00 |" in piano
    assert "WaveNet's skips cropped | 16 | 81.0 | 250.0 | 100 | 100 | 0.32 | 1.00 |" in piano


def test_step_times_are_fitted_as_a_fixed_cost_plus_flops_at_one_rate():
    """Rows made from a known fixed cost (2 ms over 400 operations: 5 us each) and rate (50 TFLOP/s) give them back;
    the longer window is compared with the fit, not fitted; a model with one batch only has no fit."""
    from sequnet.analysis import step_model

    def row(arch, batch, gflop, window=1, extra_ms=0.0):
        return dict(task="char_ptb", arch=arch, batch=batch, window_multiple=window, flops_per_step=gflop * 1e9,
                    gpu_operations_per_step=400, graph_time_s=2e-3 + gflop * 1e9 / 50e12 + extra_ms / 1e3,
                    eager_time_s=1.0)

    result = {"rows": [row("tcn", 16, 100), row("tcn", 64, 400), row("tcn", 256, 1600),
                       row("tcn", 16, 300, window=4, extra_ms=8.0), dict(row("sequnet", 16, 40), task="jsb")]}
    (fit,) = step_model.fit_steps(result)
    assert (fit["task"], fit["arch"], fit["points"]) == ("char_ptb", "tcn", 3)
    assert fit["fixed_ms"] == pytest.approx(2.0) and fit["per_operation_us"] == pytest.approx(5.0)
    assert fit["rate_tflops"] == pytest.approx(50.0) and fit["worst_residual"] < 1e-9
    assert fit["arithmetic_share"] == pytest.approx(2 / 4)                  # 2 ms of arithmetic in a 4 ms step
    assert fit["window_over_fit"] == pytest.approx(16 / 8)                  # 8 ms predicted, 16 ms measured
    assert "| char_ptb | tcn | 2.00 (5.0) | 50.0 | 0.0 % | 50 % | 2.00 |" in step_model.fit_markdown(result)
    assert "no batch sweep" in step_model.fit_markdown({"rows": [row("tcn", 16, 100)]})


def test_training_step_compiles_the_loss_with_the_model_when_asked(monkeypatch):
    """compile_loss: one torch.compile, of a function of the batch that returns the loss (the model and the loss as
    one graph, so that Inductor fuses the logits' cast and softmax), and no compile of the model alone; without it
    the model alone is compiled; compile_loss without compile_ is refused."""
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: compiled.append(fn) or fn)
    torch.manual_seed(0)
    model = torch.nn.Conv1d(3, 4, 1)
    x, y = torch.randn(2, 3, 5), torch.randint(0, 4, (2, 5))

    def loss_fn(logits, target):
        return torch.nn.functional.cross_entropy(logits, target)

    step = C.training_step(model, x, y, loss_fn, compile_=True, compile_loss=True)
    (objective,) = compiled
    assert not isinstance(objective, torch.nn.Module)
    torch.testing.assert_close(objective(x, y), loss_fn(model(x), y))
    assert step()[0].dim() == 0
    compiled.clear()
    C.training_step(model, x, y, loss_fn, compile_=True)
    assert compiled == [model]
    with pytest.raises(ValueError, match="compile_loss compiles the loss with the model: it needs compile_"):
        C.training_step(model, x, y, loss_fn, compile_loss=True)


def test_a_step_compiled_with_its_loss_trains_as_the_model_compiled_alone():
    """The same first steps (losses and weights, to float32 rounding) with the loss compiled with the model and
    without, a small convolution on the CPU (Inductor's C++ code)."""
    def loss_fn(logits, target):
        return torch.nn.functional.cross_entropy(logits, target)

    x, y = torch.randn(2, 3, 16), torch.randint(0, 4, (2, 16))
    results = []
    for compile_loss in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Conv1d(3, 4, 3, padding=1)
        step = C.training_step(model, x, y, loss_fn, compile_=True, compile_loss=compile_loss)
        results.append(([float(step()[0]) for _ in range(3)], model.weight.detach().clone()))
    (losses, weight), (losses2, weight2) = results
    assert losses2 == pytest.approx(losses, rel=1e-5) and losses[2] < losses[0]
    torch.testing.assert_close(weight2, weight, rtol=1e-5, atol=1e-6)
