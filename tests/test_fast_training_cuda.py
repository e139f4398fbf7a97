"""Issue 7's switches on a GPU (skipped without CUDA; run on the device machine): the fused gate's Triton kernels
against its torch path, cuDNN keeping the channels-last layout, and the switched models trained from a captured
CUDA graph. The CPU side is in ``test_fast_training.py``."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import sequnet
from sequnet.analysis.complexity import layout_conversions, training_step
from sequnet.analysis.step_numerics import fast_step_errors
from sequnet.core.models import (fused_gate, id_lookup, use_channels_last, use_fused_gate, use_fused_lookup,
                                 use_mm_weight_grad, weight_grad)
from sequnet.core.models.layers import input_conv, to_channels_last
from sequnet.core.triton_guard import use_triton
from test_fast_training import _is_time_major, _layout_probe, _resnet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")


def test_the_triton_kernels_are_what_runs():
    assert fused_gate.triton is not None, "Triton is not importable: the fused gate would run its torch path"
    assert use_triton(CUDA, torch.float32) and use_triton(CUDA, torch.bfloat16)


# (name, y length, start, n, x length, step, repeat): the piano model's shapes at its finest level, shortened,
# and small ones whose tiles are mostly masked
GEOMETRIES = [
    ("stride 1", 1000, 0, 1000, 1004, 1, 1),
    ("stride 2, odd input", 500, 0, 500, 1003, 2, 1),
    ("stride 2, even input", 7, 0, 7, 18, 2, 1),
    ("transposed", 2 * (600 - 1) + 5, 4, 2 * (600 - 1) + 5 - 8, 600, 1, 2),
    ("transposed, pad_front 1", 2 * (9 - 1) + 5, 3, 2 * (9 - 1) + 5 - 7, 9, 1, 2),
]
LAYOUTS = [(False, False, False), (True, True, True), (True, False, True), (False, True, False)]
LAYOUT_IDS = ["ncl", "nlc", "nlc-y-ncl-x", "ncl-y-nlc-x"]


def _gate_case(geometry, y_last, x_last, dtype, channels=180, batch=3):
    _, ly, start, n, lx, step, repeat = geometry
    g = torch.Generator(device=CUDA).manual_seed(0)

    def make(c, length, last):
        t = torch.randn(batch, c, length, generator=g, device=CUDA).to(dtype)
        return (to_channels_last(t) if last else t.contiguous()).requires_grad_()

    return make(2 * channels, ly, y_last), make(channels, lx, x_last), (start, n, step, repeat)


def _run(y, x, args, grad_last):
    out = fused_gate.gated_residual(y, x, *args)
    g = torch.Generator(device=CUDA).manual_seed(1)
    grad = torch.randn(out.shape[0], out.shape[2], 2 * out.shape[1], generator=g, device=CUDA).to(out.dtype)
    # as a channels-last cat's backward hands it on (a channel slice), or with gaps between (batch, channels, time)
    grad = grad[..., :out.shape[1]].transpose(1, 2) if grad_last else grad.transpose(1, 2).contiguous()[:, ::2]
    return (out, *torch.autograd.grad(out, (y, x), grad))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("y_last,x_last,grad_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=[g[0] for g in GEOMETRIES])
def test_triton_gate_equals_the_torch_path(geometry, y_last, x_last, grad_last, dtype, monkeypatch):
    y, x, args = _gate_case(geometry, y_last, x_last, dtype)
    fused = _run(y, x, args, grad_last)
    monkeypatch.setenv("SEQUNET_TRITON", "0")
    reference = _run(y, x, args, grad_last)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1.6e-2, "atol": 1e-3}
    for name, a, b in zip(["out", "grad y", "grad x"], fused, reference):
        assert a.dtype == b.dtype == dtype and a.stride() == b.stride(), (name, a.stride(), b.stride())
        torch.testing.assert_close(a, b, **tol, msg=lambda m: f"{name}: {m}")
    out, grad_y, grad_x = fused
    assert _is_time_major(out) == _is_time_major(grad_y) == y_last and _is_time_major(grad_x) == x_last


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("y_last,grad_last", [(False, False), (True, True), (True, False)],
                         ids=["ncl", "nlc", "nlc-y-ncl-grad"])
def test_triton_wavenet_gate_equals_the_torch_path(y_last, grad_last, dtype, monkeypatch):
    """WaveNet's gate alone (no identity) at the paper's width: Triton kernels against the torch path."""
    y, _, _ = _gate_case(GEOMETRIES[0], y_last, False, dtype, channels=128)

    def run():
        out = fused_gate.fused_gate(y)
        g = torch.Generator(device=CUDA).manual_seed(1)
        grad = torch.randn(out.shape[0], out.shape[2], out.shape[1], generator=g, device=CUDA).to(out.dtype)
        grad = grad.transpose(1, 2) if grad_last else grad.transpose(1, 2).contiguous()
        return out, *torch.autograd.grad(out, (y,), grad)

    fused = run()
    monkeypatch.setenv("SEQUNET_TRITON", "0")
    reference = run()
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1.6e-2, "atol": 1e-3}
    for name, a, b in zip(["out", "grad y"], fused, reference):
        assert a.dtype == b.dtype == dtype and a.stride() == b.stride(), (name, a.stride(), b.stride())
        torch.testing.assert_close(a, b, **tol, msg=lambda m: f"{name}: {m}")


def test_triton_gate_with_mixed_dtypes_promotes():
    y, _, args = _gate_case(GEOMETRIES[0], True, True, torch.bfloat16)
    _, x, _ = _gate_case(GEOMETRIES[0], True, True, torch.float32)
    out, grad_y, grad_x = _run(y, x, args, grad_last=True)
    assert (out.dtype, grad_y.dtype, grad_x.dtype) == (torch.float32, torch.bfloat16, torch.float32)


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def _paper_piano(batch: int, arch: str = "sequnet"):
    setting = sequnet.paper_setting("piano_audio", arch)
    torch.manual_seed(0)
    model = sequnet.build_model(setting).to(CUDA).train()
    inputs, outputs = setting.input_output
    g = torch.Generator(device=CUDA).manual_seed(2)
    ids = torch.randint(0, 256, (batch, inputs), generator=g, device=CUDA)
    target = torch.randint(0, 256, (batch, outputs), generator=g, device=CUDA)
    return model, ids, target


@pytest.mark.parametrize("switches", [[use_fused_gate], [use_channels_last], [use_channels_last, use_fused_gate],
                                      [use_fused_lookup], [use_channels_last, use_fused_gate, use_fused_lookup],
                                      [use_channels_last, use_mm_weight_grad],
                                      [use_channels_last, lambda m: use_mm_weight_grad(m, kernel="triton")],
                                      [use_channels_last, lambda m: use_mm_weight_grad(m, kernel="cudnn_cf")]],
                         ids=["fused", "channels-last", "both", "lookup", "all", "mm-weight-grad",
                              "triton-weight-grad", "cf-weight-grad"])
@pytest.mark.parametrize("arch", ["sequnet", "wavenet"])
def test_switched_paper_piano_model_computes_the_same(switches, arch, exact_float32):
    model, ids, target = _paper_piano(batch=1, arch=arch)
    twin = copy.deepcopy(model)
    for switch in switches:
        switch(twin)
    results = []
    for m in (model, twin):
        loss = F.cross_entropy(m(ids)[..., -target.shape[-1]:], target)
        results.append((loss, torch.autograd.grad(loss, list(m.parameters()))))
    (loss, grads), (loss2, grads2) = results
    torch.testing.assert_close(loss2, loss, rtol=1e-5, atol=0)
    for (name, _), a, b in zip(model.named_parameters(), grads2, grads):
        assert _relative_error(a, b) < 1e-4, (name, _relative_error(a, b))


def test_the_products_weight_gradients_are_counted_in_bf16():
    """benchmarks/piano_step.py counts a step's FLOPs with torch.utils.flop_counter: over bf16 products it failed
    ("bmm_flop() got multiple values for argument 'out_shape'", H100, 2026-12-06) while bmm had a float32 output.
    The products' count equals the convolutions' weight gradients they replace."""
    from torch.utils.flop_counter import FlopCounterMode

    setting = sequnet.paper_setting("piano_audio", "sequnet").replace(hidden=32, levels=4)
    torch.manual_seed(0)
    model = use_channels_last(sequnet.build_model(setting).to(CUDA))
    ids = torch.randint(0, 256, (2, model.body.plan.input_length), device=CUDA)
    flops = []
    for mm in (False, True):
        use_mm_weight_grad(model, mm)
        with FlopCounterMode(display=False) as counter, torch.autocast("cuda", torch.bfloat16):
            model(ids).float().square().mean().backward()
        flops.append(counter.get_total_flops())
    assert flops[0] == flops[1] > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["tf32", "bf16"])
@pytest.mark.parametrize("arch", ["sequnet", "wavenet"])
def test_the_triton_weight_gradients_match_cudnns_at_the_piano_shapes(arch, dtype):
    """``weight_grad``'s Triton kernel against cuDNN's weight gradients for each group of alike convolution
    geometries of the piano model at batch 2 (benchmarks/weight_grad_kernels.py), in TF32 and bf16 as trained:
    within 1 % of the largest entry (TF32 rounds the operands to 10 bits, bf16 to 7; both sum in float32)."""
    from test_benchmarks import benchmark_module
    wgk = benchmark_module("weight_grad_kernels")
    found = wgk.geometries(arch, CUDA, 2, quick=False, bf16=dtype == torch.bfloat16)
    assert len(found) >= 3
    # the kernel's own tile for the dtype (at 6bbc185 a fixed 64x64x64 at float32's 4 stages asked for 384 KiB of
    # shared memory, and its rows were failures without a max_error)
    tile, warps, stages = weight_grad.TILE["float32" if dtype == torch.float32 else "16-bit"]
    rows = [r for geometry, layers, scale in wgk.groups(found)
            for r in wgk.time_geometry(geometry, layers, scale, dtype, [tile], [warps], CUDA, 1, True,
                                       stages_list=[stages])]
    # time_geometry checks each way against cuDNN's before timing it (it raises past 1e-2, 2e-2 in bf16)
    assert {r["way"] for r in rows} == {"cudnn", "cudnn_cf", "cudnn_cf_copies", "products", "triton", "triton_cf"}
    assert not any("failed" in r for r in rows)
    assert max(r["max_error"] for r in rows if r["way"] == "triton") < 1e-2


@pytest.mark.parametrize("arch", ["sequnet", "wavenet"])
def test_fused_lookup_under_bf16_autocast_matches_embedding_bag(arch):
    """As the trainer runs the first convolution: the Triton lookup's bf16 output is embedding_bag's float32 sums
    rounded once (within a unit, should the two sum in another order), and the weight and bias gradients from the
    same bf16 output gradient agree to float32 rounding (the table's gradient summed over the positions sorted by
    id, in float32)."""
    model, ids, _ = _paper_piano(batch=2, arch=arch)
    conv = model.body.in_conv if arch == "sequnet" else model.body.start
    assert id_lookup.fusable(ids, conv.weight, torch.bfloat16)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ref, got = input_conv(conv, ids), input_conv(conv, ids, fused=True)
    assert got.dtype == ref.dtype == torch.bfloat16 and got.stride() == ref.stride()
    torch.testing.assert_close(got.float(), ref.float(), rtol=2 ** -7, atol=0)
    grad = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ref, [conv.weight, conv.bias], grad),
                    torch.autograd.grad(got, [conv.weight, conv.bias], grad)):
        assert _relative_error(b, a) < 1e-5, _relative_error(b, a)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_lookup_backward_on_a_channels_first_gradient_matches_channels_last(dtype):
    """The compiled step hands the lookup's backward a channels-first gradient (Inductor's code: strides (c * n, n,
    1)). At the piano Seq-U-Net's input shape at batch 2 (five chunks of positions), on the piano audio's ids: the
    same table gradient, to float32 rounding, as from the same values channels-last."""
    from test_benchmarks import benchmark_module

    lb = benchmark_module("lookup_backward")
    ids = lb.piano_ids(2, 36857).to(CUDA)
    _, grad = lb.make_inputs(2, 36857, 192, 5, 256, 0.3, CUDA, dtype)
    first = grad.contiguous()
    assert first.stride(2) == 1 and grad.stride(1) == 1
    got, expected = id_lookup.table_grad_sorted(ids, first, 5, 256), id_lookup.table_grad_sorted(ids, grad, 5, 256)
    assert _relative_error(got, expected) < 1e-5, _relative_error(got, expected)


def test_lookup_backward_by_partial_sums_repeats_itself_and_matches_the_atomic_adds():
    """The table gradient with the pieces' sums stored and added class by class (``reduce="partials"``), at the
    piano Seq-U-Net's input shape at batch 2 on the piano audio's ids, channels-first as compiled: bit for bit the
    same in two calls, and the atomic adds' result to float32 rounding."""
    from test_benchmarks import benchmark_module

    lb = benchmark_module("lookup_backward")
    ids = lb.piano_ids(2, 36857).to(CUDA)
    _, grad = lb.make_inputs(2, 36857, 192, 5, 256, 0.3, CUDA, torch.bfloat16)
    grad = grad.contiguous()
    got = [id_lookup.table_grad_sorted(ids, grad, 5, 256, reduce="partials") for _ in range(2)]
    assert torch.equal(got[0], got[1])
    expected = id_lookup.table_grad_sorted(ids, grad, 5, 256, reduce="atomic")
    assert _relative_error(got[0], expected) < 1e-5, _relative_error(got[0], expected)


def test_padded_paper_piano_model_trains_the_same(exact_float32):
    """The trainer's layout (channels padded 180 -> 192, channels-last, fused gate) against the plain float32
    model: the same loss, the same gradients for the paper's parameters, exactly zero ones for the padding."""
    from sequnet.core.models.padding import _load_hook, logical_tensors, pad_channels
    model, ids, target = _paper_piano(batch=1)
    twin = use_fused_gate(use_channels_last(pad_channels(copy.deepcopy(model), 64)))
    assert twin.body.stored_features == 192
    results = []
    for m in (model, twin):
        loss = F.cross_entropy(m(ids)[..., -target.shape[-1]:], target)
        results.append((loss, dict(zip([n for n, _ in m.named_parameters()],
                                       torch.autograd.grad(loss, list(m.parameters()))))))
    (loss, grads), (loss2, padded) = results
    torch.testing.assert_close(loss2, loss, rtol=1e-5, atol=0)
    logical = logical_tensors(twin, padded)                     # the padded gradients cut back to the paper's shapes
    real = {name: torch.ones_like(g) for name, g in grads.items()}
    _load_hook(twin.body, real, "body.")                        # 1 where a padded tensor holds a paper parameter
    for name, g in grads.items():
        assert _relative_error(logical[name], g) < 1e-4, (name, _relative_error(logical[name], g))
        assert not padded[name][real[name] == 0].any(), f"{name}: the padding has a gradient"


# The fast step against the plain float32 model (sequnet.analysis.step_numerics): the loss's relative error, all
# gradients' relative error as one vector and the least cosine of a parameter's gradient with the reference's.
# Measured at this shape on an H100 (2026-12-06, 87bf3d0, benchmarks/step_numerics.py,
# results/bench/step-numerics*-h100.json; both models, eager and the Seq-U-Net compiled, with and without the
# products' weight gradients): losses within 1.1e-6 in both modes; gradients 0.0093-0.0121 in TF32 (WaveNet's
# highest) and 0.035-0.067 in bf16; least cosines 0.99976 and 0.99399 (WaveNet's dilated weights in bf16). The
# bounds give the gradients and cosines 2.3 to 4 times their measured worst, the losses a hundred. A wrong tap,
# channel or time offset anywhere gives errors of order 1. (Set ahead of that measurement, the TF32 gradients'
# bound was 1e-2, which WaveNet exceeded.)
NUMERICS_BOUNDS = {"tf32": (1e-4, 3e-2, 0.999), "bf16": (1e-4, 0.15, 0.985)}


# The products' weight gradients compiled are left out: the trainer compiles with cuDNN's only, that case took 116 s
# of the H100's suite (932025f), and benchmarks/step_numerics.py measures it.
@pytest.mark.parametrize("mm, compile_", [(False, False), (False, True), (True, False)],
                         ids=["cudnn-wgrad-eager", "cudnn-wgrad-compiled", "mm-wgrad-eager"])
@pytest.mark.parametrize("arch", ["sequnet", "wavenet"])
def test_fast_piano_step_stays_near_the_plain_float32_model(arch, mm, compile_):
    if compile_ and arch == "wavenet":
        pytest.skip("WaveNet's two compiles take minutes: benchmarks/step_numerics.py measures it compiled")
    model, ids, target = _paper_piano(batch=1, arch=arch)
    errors = fast_step_errors(model, ids, target, lambda lg, t: F.cross_entropy(lg[..., -t.shape[-1]:], t),
                              compile_=compile_, mm_weight_grad=mm)
    for mode, (loss_bound, grad_bound, cos_bound) in NUMERICS_BOUNDS.items():
        e = errors[mode]
        assert e["loss_relative_error"] < loss_bound, (mode, e)
        assert e["gradient_relative_error"] < grad_bound, (mode, e)
        assert e["least_cosine"] > cos_bound, (mode, e)


def test_channels_last_layout_holds_on_the_gpu():
    model = use_channels_last(_resnet().to(CUDA))
    seen = _layout_probe(model)
    ids = torch.randint(0, model.classes, (2, model.body.plan.input_length), device=CUDA)
    model(ids).float().square().sum().backward()
    bad = [(where, strides) for where, ok, strides in seen if not ok]
    assert seen and not bad, bad


@pytest.mark.parametrize("batch", [1, 16])
def test_channels_last_piano_step_drops_the_layout_conversions(batch, default_tf32):
    """Measured on an H200 (cuDNN 9, torch 2.11): under bf16 autocast the switched model runs no conversion at
    all (the plain one about 540); in fp32 with TF32 convolutions (the trainer's default) cuDNN still picks NCHW
    kernels for a few shapes (18 to 53 conversions against about 430 to 530). The TF32 state is set here rather
    than inherited from whichever test ran before, since cuDNN's kernel choice depends on it."""
    plain, ids, target = _paper_piano(batch)
    switched = use_fused_gate(use_channels_last(copy.deepcopy(plain)))
    with torch.autocast("cuda", torch.bfloat16):
        assert not layout_conversions(switched, ids, target)
        assert layout_conversions(plain, ids, target)
    assert len(layout_conversions(switched, ids, target)) * 5 < len(layout_conversions(plain, ids, target))


@pytest.mark.parametrize("lookup", [False, True], ids=["embedding-bag", "lookup"])
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_captured_training_step_with_the_switches_equals_eager(bf16, lookup, exact_float32):
    """The switched model's steps replayed from a CUDA graph follow the eager steps; with the Triton lookup, whose
    backward sorts the ids on the device, which must capture."""
    setting = sequnet.paper_setting("piano_audio", "sequnet").replace(hidden=32, levels=6)
    inputs, outputs = setting.input_output
    g = torch.Generator(device=CUDA).manual_seed(3)
    ids = torch.randint(0, 256, (4, inputs), generator=g, device=CUDA)
    target = torch.randint(0, 256, (4, outputs), generator=g, device=CUDA)

    def losses(cuda_graph: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = use_fused_gate(use_channels_last(sequnet.build_model(setting))).to(CUDA).train()
        use_fused_lookup(model, lookup)
        step = training_step(model, ids, target, lambda logits, t: F.cross_entropy(logits[..., -t.shape[-1]:], t),
                             bf16=bf16, cuda_graph=cuda_graph)
        return torch.stack([step()[0].clone() for _ in range(8)])

    eager, graphed = losses(False), losses(True)
    assert torch.isfinite(graphed).all() and graphed[-1] < graphed[0], graphed
    torch.testing.assert_close(graphed, eager, rtol=1e-2 if bf16 else 1e-4, atol=0)


def test_trainer_trains_the_audio_models_with_the_switches(tmp_path):
    from sequnet.experiment import training
    from sequnet.experiment.scales import resolve

    config = resolve("piano_audio", "sequnet", "smoke", device="cuda", epochs=1, max_steps_per_epoch=6)
    for arch in ("sequnet", "wavenet"):                 # both models of the pair get both switches
        model, _ = training.build(resolve("piano_audio", arch, "smoke", device="cuda"), CUDA)
        assert all(m.channels_last for m in model.modules() if hasattr(type(m), "channels_last"))
        assert all(m.fused_gate for m in model.modules() if hasattr(type(m), "fused_gate"))
        # uncompiled, float32 as bf16, the first convolution is the Triton lookup (sequnet.experiment.training)
        assert all(m.fused_lookup for m in model.modules() if hasattr(type(m), "fused_lookup"))
        # WaveNet's skips are cropped to the output (the Seq-U-Net has no such switch)
        assert all(m.crop_skips for m in model.modules() if hasattr(type(m), "crop_skips"))
        assert any(hasattr(type(m), "crop_skips") for m in model.modules()) == (arch == "wavenet")
    fast = training.train(config, out_dir=tmp_path / "fast", log=None)
    plain = training.train(config.replace(fast_kernels=False), out_dir=tmp_path / "plain", log=None)
    assert fast.record.status == plain.record.status == "ok"
    assert fast.record.config["fast_kernels"] is True
    assert "GPU path: channels padded to a multiple of 64, channels-last" in fast.record.notes
    assert "GPU path" not in plain.record.notes
    # same maths, other rounding (and TF32 convolutions in both)
    assert fast.record.metrics["test"] == pytest.approx(plain.record.metrics["test"], rel=0.02)


def test_trainer_compiles_both_audio_models_on_the_fast_path(tmp_path):
    """torch.compile for both models of the piano pair, with bf16, channels-last, WaveNet's cropped skips and CUDA
    graphs (Inductor fuses the gate itself, so the Triton gate is off): the test loss follows the uncompiled fast
    path's, and the steps did run through the compiler. On a few seconds of tones written here, so that the piano
    run's check (benchmarks/piano_gpu_call.sh, whose data mirror has no registered recordings) can run it."""
    import numpy as np
    import soundfile
    from torch._dynamo.utils import counters

    from sequnet.experiment import training
    from sequnet.experiment.scales import resolve
    from sequnet.experiment.tasks import audio_task

    t = np.arange(4 * 16000) / 16000
    for split in ("train", "test"):
        (tmp_path / "audio" / split).mkdir(parents=True)
        for i in range(2):
            tone = 0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t) * np.exp(-3 * (t % 1))
            soundfile.write(tmp_path / "audio" / split / f"{split}{i}.flac", tone.astype(np.float32), 16000)
    for arch in ("sequnet", "wavenet"):
        config = resolve("piano_audio", arch, "smoke", device="cuda", epochs=1, max_steps_per_epoch=6, bf16=True)
        model, _ = training.build(config.replace(compile=True), CUDA)
        assert not any(m.fused_gate for m in model.modules() if hasattr(type(m), "fused_gate"))
        # compiled, in bf16 and in TF32 alike, the first convolution is the Triton lookup (it saved time in every
        # mode timed with its sorted backward: sequnet.experiment.training)
        assert all(m.fused_lookup for m in model.modules() if hasattr(type(m), "fused_lookup"))
        assert any(hasattr(type(m), "fused_lookup") for m in model.modules())
        assert all(m.channels_last for m in model.modules() if hasattr(type(m), "channels_last"))
        float32, _ = training.build(config.replace(compile=True, bf16=False), CUDA)
        assert all(m.fused_lookup for m in float32.modules() if hasattr(type(m), "fused_lookup"))
        runs = {}
        for compiled in (True, False):
            task = audio_task(config.setting, config.batch_size, tmp_path / "audio")
            counters.clear()
            runs[compiled] = training.train(config.replace(compile=compiled), task=task, log=None,
                                            out_dir=tmp_path / arch / str(compiled))
            assert (counters["stats"]["unique_graphs"] >= 1) == compiled, "compiled steps ran through the compiler"
        assert runs[True].record.status == runs[False].record.status == "ok"
        assert runs[True].record.config["compile"] and runs[True].record.config["fast_kernels"]
        assert runs[True].record.metrics["test"] == pytest.approx(runs[False].record.metrics["test"], rel=0.02)
