"""The trainer's ``compile`` switch: torch.compile of the model for training steps, the same maths as the eager
step (other rounding), for both models of the piano pair alike. On the CPU here; tests/test_fast_training_cuda.py
trains both compiled on a GPU with the fast path's other switches."""
from __future__ import annotations

import contextlib
import json

import pytest
import torch

from sequnet.experiment import training
from sequnet.experiment.scales import deviations, resolve


@pytest.mark.parametrize("arch", ["sequnet", "wavenet"])
def test_compiled_training_follows_the_eager_training(arch, tmp_path, data_root):
    # No time budget (smoke's is 60 s): the first compiled step compiles, and a cold compile on a busy machine
    # outlasted it, which ended the compiled run after fewer steps (2026-12-04, the GPU suite's CPU tests on 6 workers)
    config = resolve("piano_audio", arch, "smoke", device="cpu", epochs=2, max_steps_per_epoch=3, eval_limit=2,
                     time_budget_s=0)
    from torch._dynamo.utils import counters

    eager = training.train(config, out_dir=tmp_path / "eager", log=None)
    counters.clear()
    compiled = training.train(config.replace(compile=True), out_dir=tmp_path / "compiled", log=None)
    assert counters["stats"]["unique_graphs"] >= 1, "the training steps ran through torch.compile"
    assert compiled.record.status == eager.record.status == "ok"
    assert compiled.record.config["compile"] is True and eager.record.config["compile"] is False
    assert [h["steps"] for h in compiled.record.history] == [h["steps"] for h in eager.record.history] == [3, 3]
    for got, want in zip(compiled.record.history, eager.record.history, strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-4)
    assert compiled.record.metrics["test"] == pytest.approx(eager.record.metrics["test"], rel=1e-4)
    # the compiled model's weights are the model's own: what was saved is what the eager model evaluates
    torch.testing.assert_close(compiled.model(torch.zeros(1, 2001, dtype=torch.long)),
                               eager.model(torch.zeros(1, 2001, dtype=torch.long)), rtol=1e-3, atol=1e-4)


def test_a_compiled_step_compiles_the_model_and_its_loss_as_one_graph(monkeypatch, data_root):
    """Compiled, the trainer's step hands torch.compile the model and the loss together (not the model alone), so
    that the graph Inductor fuses holds the convolutions and the cross-entropy; the step's results are the eager
    step's."""
    from sequnet.experiment import steps
    from sequnet.experiment.tasks import make_task

    config = resolve("char_ptb", "sequnet", "smoke", device="cpu")
    task = make_task(config.task, config.setting, config.batch_size)
    graphs, real_compile = [], torch.compile
    # Dynamo's caches outlive a test: where earlier tests of this process had compiled the step's loss 8 times,
    # Dynamo ran it eagerly at its recompile limit and no graph came here (the GPU suite's xdist worker, c7033da)
    torch._dynamo.reset()

    def keep_graph(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real_compile(fn, **{**kw, "backend": keep_graph}))
    batch = next(iter(task.train_batches(torch.Generator().manual_seed(0))))
    results = {}
    for compiled in (True, False):
        torch.manual_seed(0)
        model, optimizer = training.build(config.replace(compile=compiled), torch.device("cpu"))
        step = steps.step_function(model, optimizer, task, config.replace(compile=compiled), torch.device("cpu"))
        results[compiled] = (step(*batch), model.state_dict())
    ops = {str(n.target) for gm in graphs for n in gm.graph.nodes if n.op == "call_function"}
    assert any("conv1d" in op for op in ops) and any("cross_entropy" in op for op in ops), sorted(ops)
    (total, count), weights = results[True]
    assert count == results[False][0][1] and total.item() == pytest.approx(results[False][0][0].item(), rel=1e-5)
    for name, value in weights.items():
        torch.testing.assert_close(value, results[False][1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_compile_is_a_checked_switch_that_changes_no_procedure():
    with pytest.raises(ValueError, match="compile='yes'"):
        resolve("piano_audio", "sequnet", "smoke", compile="yes")
    assert "compile" not in deviations(resolve("piano_audio", "sequnet", "paper", compile=True))
    assert resolve("jsb", "tcn", "smoke").compile is False


def test_cli_passes_compile_on():
    from sequnet.cli import build_parser
    from sequnet.experiment import cli as train_cli

    args = build_parser().parse_args(["train", "piano_audio", "wavenet", "--compile", "--nproc", "2"])
    assert train_cli._overrides(args)["compile"] is True
    assert "--compile" in train_cli._worker_argv(args)
    args = build_parser().parse_args(["train", "piano_audio", "wavenet"])
    assert train_cli._overrides(args)["compile"] is None and "--compile" not in train_cli._worker_argv(args)


def test_piano_run_compiles_both_models_or_neither_and_continues_an_older_run_folder(tmp_path):
    from sequnet.experiment import piano_run

    run = piano_run.preset("smoke", compile=True)
    assert {c.compile for c in piano_run.run_configs(run, "cpu").values()} == {True}
    assert {c.compile for c in piano_run.run_configs(piano_run.preset("smoke"), "cpu").values()} == {False}
    # a run folder from before the switch: its run.json has no "compile", which means the default (off)
    old = piano_run.preset("smoke")
    piano_run.claim(old, tmp_path)
    saved = json.loads((tmp_path / "run.json").read_text())
    del saved["compile"]
    (tmp_path / "run.json").write_text(json.dumps(saved))
    piano_run.claim(old, tmp_path)
    assert piano_run.load_run(tmp_path) == old
    with pytest.raises(ValueError, match="compile: folder False, now True"):
        piano_run.claim(run, tmp_path)


# The Seq-U-Net's bound is 3: Inductor's choices differ by version, 2 such buffers with torch 2.13 (the CPU machines)
# and 3 with torch 2.11 (the GPU machine's suite at 3c7b693, 2026-12-05), against 12 before.
@pytest.mark.parametrize("arch, most", [("sequnet", 3), ("wavenet", 1)])
def test_compiled_channels_last_models_keep_one_copy_of_each_activation(arch, most):
    """Compiled with channels-last activations (the GPU path), Inductor lays out each pointwise result as it likes
    in the result's own shape. Summed, gated or rectified on the (batch, channels, time) views, the residual
    streams, gates and heads were written channels-first and copied again channels-last for the next convolution
    (on an H100 at 1c69402, 41 of the 109 kernels of the bf16 piano Seq-U-Net's forward stored a value twice).
    Computed on the (batch, time, channels) views (``layers.add_channels``, ``gate``, ``relu``) they are written
    once. Counted here in Inductor's CPU code of a forward and backward, whose layout choices showed the same: the
    (batch, channels, 1, time) buffers, such copies, were 12 (Seq-U-Net) and 15 (WaveNet) before, 2-3 and 1 now."""
    import re

    from torch._inductor.utils import run_and_get_code

    from sequnet.core.models import (OneHotModel, ResSeqUNet, ResSeqUNetConfig, WaveNet, WaveNetConfig,
                                     use_channels_last)

    torch.manual_seed(0)
    if arch == "sequnet":
        model = OneHotModel(ResSeqUNet(ResSeqUNetConfig(16, 32, 3, 32, 5, 2)), 16)
        length = model.body.plan.input_length
    else:
        model = OneHotModel(WaveNet(WaveNetConfig(16, 2, 4, 2, 6, 10, 10, 16)), 16)
        length = model.body.receptive_field + 20
    model = use_channels_last(model).train()
    ids = torch.randint(0, 16, (2, length))
    eager = model(ids)
    compiled = torch.compile(model, dynamic=False)
    out, code = run_and_get_code(lambda: compiled(ids).float().square().mean().backward())
    code = "\n".join(code)
    buffers = re.findall(r"empty_strided_cpu\(\((\d+(?:, \d+)*)\)", code)
    assert len(buffers) > 20, "Inductor's code was not read (its allocation call renamed?)"
    copies = [b for b in buffers if re.fullmatch(r"2, \d+, 1, \d+", b)]
    assert len(copies) <= most, copies
    torch.testing.assert_close(compiled(ids), eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind, compile, tuned", [("token", False, True), ("token", True, True),
                                                  ("audio", False, True), ("audio", True, True),
                                                  ("music", True, False), ("music", False, False)])
def test_cudnn_autotuner_runs_for_fixed_shapes_only(kind, compile, tuned):
    """cuDNN's autotuner on a GPU for fixed shapes: the language windows and the audio windows, compiled or not
    (each variant alone on an H100, it took the uncompiled bf16 piano steps from 45.64 to 42.06 ms and WaveNet's
    from 200.46 to 169.63); never the music sequences, whose lengths change every step. The setting before comes
    back afterwards. Flags only: nothing runs on the GPU, so this holds on the CPU machines too."""
    from types import SimpleNamespace

    from sequnet.experiment.steps import torch_settings

    config = SimpleNamespace(compile=compile, cpu_threads=None, fast_kernels=True)
    task = SimpleNamespace(setting=SimpleNamespace(kind=kind))
    before = torch.backends.cudnn.benchmark
    for device, expected in ((torch.device("cuda"), tuned), (torch.device("cpu"), False)):
        with torch_settings(config, device, task):
            assert torch.backends.cudnn.benchmark is expected, device
        assert torch.backends.cudnn.benchmark is before


@pytest.mark.parametrize("capability, compile_, pdl", [((9, 0), True, True), ((10, 0), True, True),
                                                     ((8, 0), True, False), ((9, 0), False, False)])
def test_compiled_steps_launch_inductors_kernels_dependently_on_hopper_and_later(monkeypatch, capability, compile_,
                                                                                   pdl):
    """Compiled, the trainer's steps (torch_settings) compile under Inductor's programmatic dependent launch and its
    combo kernels on a GPU of compute capability 9.0 or later, the same for every model; never uncompiled, on older
    GPUs or on the CPU; the setting before comes back afterwards (the numerics check's use of compiler_settings:
    the test below). The GPU is faked (flags only), so this holds on the CPU machines too."""
    from types import SimpleNamespace

    import torch._inductor.config as inductor_config

    from sequnet.experiment.fast_path import compiler_settings
    from sequnet.experiment.steps import torch_settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    config = SimpleNamespace(compile=compile_, cpu_threads=None, fast_kernels=True)
    task = SimpleNamespace(setting=SimpleNamespace(kind="audio"))
    def settings():
        return inductor_config.triton.enable_pdl, inductor_config.combo_kernels

    before = settings()
    assert before == (False, False)
    for device, expected in ((torch.device("cuda"), pdl), (torch.device("cpu"), False)):
        with torch_settings(config, device, task):
            assert settings() == (expected, expected), device
        assert settings() == before
        with compiler_settings(device):
            on = device.type == "cuda" and capability >= (9,)
            assert settings() == (on, on)
        assert settings() == before


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 9,
                    reason="needs a CUDA GPU of compute capability 9.0 or later (programmatic dependent launch)")
def test_inductors_kernels_wait_for_the_kernel_before_them_under_the_trainers_compiler_settings():
    """On the GPU, what Inductor writes under the trainer's compiler settings has its Triton kernels wait for
    the kernel before them (``gdc_wait``, programmatic dependent launch), and without them not; both compute the
    same (the settings' combo kernels included)."""
    from torch._inductor.utils import run_and_get_code

    from sequnet.experiment.fast_path import compiler_settings

    x = torch.randn(256, 300, device="cuda")
    results = {}
    for pdl in (True, False):
        torch._dynamo.reset()
        fn = torch.compile(lambda t: torch.softmax(t.sin() * 2, dim=-1).sum(0), dynamic=False)
        # compiled afresh each time: a cached graph from an earlier run would bring no code to read
        with torch._inductor.config.patch(force_disable_caches=True), (
                compiler_settings(torch.device("cuda")) if pdl else contextlib.nullcontext()):
            results[pdl], code = run_and_get_code(fn, x)
        assert ("gdc_wait" in "\n".join(code)) is pdl
    torch.testing.assert_close(results[True], results[False], rtol=1e-6, atol=1e-6)


def test_the_numerics_check_compiles_under_the_trainers_compiler_settings(monkeypatch):
    """benchmarks/step_numerics.py's compiled loss and gradients are computed inside the trainer's compiler
    settings (both compiling the forward and running the backward), and the eager ones outside them."""
    from sequnet.analysis import step_numerics

    entered = []

    @contextlib.contextmanager
    def settings(device):
        entered.append(device.type)
        yield

    monkeypatch.setattr(step_numerics, "compiler_settings", settings)
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    for compile_ in (False, True):
        loss, grads = step_numerics.loss_and_grads(model, x, y, torch.nn.functional.cross_entropy, "fp32",
                                                   compile_=compile_)
        assert set(grads) == {"weight", "bias"} and loss > 0
    assert entered == ["cpu"]


@pytest.mark.parametrize("kind", ["audio", "token", "music"])
@pytest.mark.parametrize("compile_", [False, True])
def test_the_trainer_leaves_the_float32_matmul_precision_alone(kind, compile_, matmul_precision_calls):
    """No path of the trainer sets the float32 matmul precision (the products' weight gradients, which ran in TF32
    under "high", are no longer the trainer's): setting it at all, even to its own value, changes torch's state."""
    from types import SimpleNamespace

    from sequnet.experiment.steps import torch_settings

    before = torch.get_float32_matmul_precision()
    config = SimpleNamespace(compile=compile_, cpu_threads=None, fast_kernels=True)
    task = SimpleNamespace(setting=SimpleNamespace(kind=kind))
    for device in (torch.device("cuda"), torch.device("cpu")):
        with torch_settings(config, device, task):
            assert torch.get_float32_matmul_precision() == before
    assert matmul_precision_calls == []
