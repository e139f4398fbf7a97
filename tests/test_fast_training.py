"""Issue 7's opt-in speed-ups of the audio models' training step, on the CPU: the lookup's dtype under autocast,
channels-last activations and the fused gated residual must compute what the plain models compute.

The GPU side (the Triton kernels, CUDA graphs, cuDNN's layouts) is in ``test_fast_training_cuda.py``."""
from __future__ import annotations

import copy

import pytest
import torch

import sequnet
from sequnet.core.models import (OneHotModel, ResSeqUNet, ResSeqUNetConfig, WaveNet, WaveNetConfig,
                                 use_mm_weight_grad)
from sequnet.core.models.fused_gate import _time_major as _is_time_major
from sequnet.core.models.fused_gate import fused_gate, gated_residual, use_fused_gate
from sequnet.core.models.layers import (autocast_dtype, crop_front, gate, input_conv, to_channels_last,
                                   use_channels_last)
from sequnet.core.models.sequnet_res import GatedLayer
from sequnet.core.models.wavenet import WaveNetLayer, use_cropped_skips


def test_lookup_returns_the_autocast_dtype_rounded_once():
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(256, 12, 5)
    ids = torch.randint(0, 256, (2, 40))
    exact = input_conv(conv, ids)
    assert exact.dtype == torch.float32 and autocast_dtype("cpu") is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert autocast_dtype("cpu") == torch.bfloat16
        low = input_conv(conv, ids)
        # float64 models keep their exact sums: autocast leaves float64 alone
        assert input_conv(torch.nn.Conv1d(256, 3, 2).double(), ids).dtype == torch.float64
    assert low.dtype == torch.bfloat16 and low.stride() == exact.stride()
    torch.testing.assert_close(low, exact.bfloat16(), rtol=0, atol=0)
    weight, bias = torch.autograd.grad(low.float().square().sum(), [conv.weight, conv.bias])
    assert weight.dtype == bias.dtype == torch.float32 and bias.abs().sum() > 0


def _resnet(k: int = 5) -> OneHotModel:
    return OneHotModel(ResSeqUNet(ResSeqUNetConfig(16, 6, 4, 16, k, 2)), 16)


def _wavenet() -> OneHotModel:
    return OneHotModel(WaveNet(WaveNetConfig(16, 2, 4, 2, 6, 10, 10, 16)), 16)


def _switched_copies(build, *switches):
    """A float64 model and a copy of it with ``switch(copy)`` applied for each switch."""
    torch.manual_seed(0)
    model = build().double()
    twin = copy.deepcopy(model)
    for switch in switches:
        switch(twin)
    return model, twin


def _output_and_grads(model, x, weights):
    out = model(x)
    loss = (out * weights).sum()
    names, params = zip(*model.named_parameters())
    return out, dict(zip(names, torch.autograd.grad(loss, params)))


def _assert_same_maths(model, twin, x):
    torch.manual_seed(1)
    weights = torch.randn(model(x).shape, dtype=torch.float64)
    out, grads = _output_and_grads(model, x, weights)
    out2, grads2 = _output_and_grads(twin, x, weights)
    torch.testing.assert_close(out2, out, rtol=1e-10, atol=1e-12)
    assert grads.keys() == grads2.keys()
    for name in grads:
        torch.testing.assert_close(grads2[name], grads[name], rtol=1e-9, atol=1e-11, msg=name)
    return out2


def _input(model, float_input: bool):
    length = model.body.plan.input_length if isinstance(model.body, ResSeqUNet) else 40
    ids = torch.randint(0, model.classes, (2, length), generator=torch.Generator().manual_seed(2))
    return model.embed(ids) if float_input else ids


@pytest.mark.parametrize("build", [_resnet, _wavenet], ids=["sequnet", "wavenet"])
@pytest.mark.parametrize("float_input", [False, True], ids=["ids", "one-hot"])
def test_channels_last_models_compute_the_same(build, float_input):
    model, twin = _switched_copies(build, use_channels_last)
    x = _input(model, float_input)
    out = _assert_same_maths(model.body, twin.body, x)
    assert out.stride(1) == 1, "channels-last logits"
    use_channels_last(twin, False)
    assert all(p.is_contiguous() for p in twin.parameters())
    torch.testing.assert_close(twin(x if not float_input else x), model(x), rtol=1e-10, atol=1e-12)


def _layout_probe(model):
    """Hooks recording, for the input and the output of every convolution and gated layer and the gradients of
    those outputs, whether it is channels-last (stride 1 along channels)."""
    seen = []

    def check(where):
        def record(t):
            seen.append((where, t.stride(1) == 1, tuple(t.stride())))
        return record

    def probe(name):
        def hook(module, args, out):
            check(f"{name} input")(args[0])
            out = out[0] if isinstance(out, tuple) else out
            check(f"{name} output")(out)
            out.register_hook(check(f"{name} output gradient"))
        return hook

    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d, GatedLayer, WaveNetLayer)):
            m.register_forward_hook(probe(name))
    return seen


@pytest.mark.parametrize("build, switches", [(_resnet, []), (_wavenet, []), (_wavenet, [use_cropped_skips])],
                         ids=["sequnet", "wavenet", "wavenet-cropped"])
def test_channels_last_layout_holds_through_the_layers_and_their_gradients(build, switches):
    _, model = _switched_copies(build, use_channels_last, *switches)
    seen = _layout_probe(model)
    model(_input(model, float_input=False)).square().sum().backward()
    kinds = {where.rsplit(" ", 1)[-1] if "gradient" not in where else "gradient" for where, _, _ in seen}
    assert kinds == {"input", "output", "gradient"}
    bad = [(where, strides) for where, ok, strides in seen if not ok]
    assert not bad, bad
    assert all(p.grad.stride() == p.stride() for p in model.parameters() if p.dim() == 3)


def test_switches_refuse_a_model_without_them():
    tcn = sequnet.build_model(sequnet.paper_setting("jsb", "tcn").replace(hidden=8, levels=2))
    with pytest.raises(ValueError, match="channels_last"):
        use_channels_last(tcn)


# -- fused gated residual -------------------------------------------------------------------------------------------

# (name, y length, start, n, x length, step, repeat) as the three kinds of layer produce them with k = 3
GEOMETRIES = [
    ("stride 1", 9, 0, 9, 11, 1, 1),
    ("stride 2, odd input", 5, 0, 5, 13, 2, 1),
    ("stride 2, even input", 4, 0, 4, 12, 2, 1),
    ("transposed", 2 * (6 - 1) + 3, 2, 2 * (6 - 1) + 3 - 2 - 2, 6, 1, 2),
    ("transposed, pad_front 1", 2 * (6 - 1) + 3, 1, 2 * (6 - 1) + 3 - 2 - 1, 6, 1, 2),
]


def _layout(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return to_channels_last(t) if channels_last else t.contiguous()


def _gate_inputs(geometry, y_last: bool, x_last: bool, channels: int = 3, dtype=torch.float64):
    _, ly, start, n, lx, step, repeat = geometry
    g = torch.Generator().manual_seed(3)
    y = _layout(torch.randn(2, 2 * channels, ly, generator=g, dtype=dtype), y_last).requires_grad_()
    x = _layout(torch.randn(2, channels, lx, generator=g, dtype=dtype), x_last).requires_grad_()
    return y, x, (start, n, step, repeat)


def _dense(t: torch.Tensor) -> bool:
    return (t.transpose(1, 2) if _is_time_major(t) else t).is_contiguous()


def _unfused(y, x, start, n, step, repeat):
    """The plain expression of GatedLayer: the identity materialised, the window sliced."""
    if repeat == 2:
        identity = x.repeat_interleave(2, dim=-1)[..., :-1]
    elif step == 2:
        identity = x[..., (x.shape[-1] - 1) % 2::2]
    else:
        identity = x
    return crop_front(identity, n) + gate(y[..., start:start + n])


LAYOUTS = [(False, False), (True, True), (True, False)]
LAYOUT_IDS = ["ncl", "nlc", "nlc-y-ncl-x"]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=[g[0] for g in GEOMETRIES])
@pytest.mark.parametrize("y_last,x_last", LAYOUTS, ids=LAYOUT_IDS)
def test_fused_gate_equals_the_unfused_expression(geometry, y_last, x_last):
    y, x, args = _gate_inputs(geometry, y_last, x_last)
    out = gated_residual(y, x, *args)
    ref = _unfused(y, x, *args)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert _is_time_major(out) == y_last, "the result takes the layout of the convolution's output"
    # a gradient with odd strides, as a cat's backward hands on
    grad = torch.randn(out.shape[0], out.shape[2], 2 * out.shape[1], dtype=out.dtype)[..., ::2].transpose(1, 2)
    grad_y, grad_x = torch.autograd.grad(out, (y, x), grad)
    ref_y, ref_x = torch.autograd.grad(ref, (y, x), grad)
    torch.testing.assert_close(grad_y, ref_y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_x, ref_x, rtol=1e-12, atol=1e-12)
    assert _is_time_major(grad_y) == y_last and _is_time_major(grad_x) == x_last
    assert _dense(grad_y) and _dense(grad_x)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=[g[0] for g in GEOMETRIES])
@pytest.mark.parametrize("y_last,x_last", LAYOUTS, ids=LAYOUT_IDS)
def test_fused_gate_gradcheck(geometry, y_last, x_last):
    y, x, args = _gate_inputs(geometry, y_last, x_last, channels=2)
    assert torch.autograd.gradcheck(lambda y, x: gated_residual(y, x, *args), (y, x))


def test_fused_gate_keeps_only_the_convolution_output():
    y, x, args = _gate_inputs(GEOMETRIES[3], True, True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        gated_residual(y, x, *args)
    assert len(saved) == 1 and saved[0] is y


def test_fused_gate_checks_its_geometry():
    y, x, _ = _gate_inputs(GEOMETRIES[0], False, False)
    with pytest.raises(ValueError, match="window"):
        gated_residual(y, x, 1, 9)                      # past the end of y
    with pytest.raises(ValueError, match="window"):
        gated_residual(y, x[..., :5], 0, 9)             # an identity shorter than the output
    with pytest.raises(ValueError, match="does not match"):
        gated_residual(y[:, :5], x, 0, 9)
    with pytest.raises(ValueError, match="step"):
        gated_residual(y, x, 0, 3, step=2, repeat=2)


@pytest.mark.parametrize("kind", ["stride 1", "stride 2", "transposed", "transposed, pad_front 1", "up"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncl", "nlc"])
def test_fused_gated_layer_equals_the_plain_one(kind, channels_last):
    torch.manual_seed(0)
    n_in = 8 if kind == "up" else 4
    layer = GatedLayer(n_in, 4, 3, stride=2 if kind == "stride 2" else 1, transpose=kind.startswith("transposed"))
    layer = layer.double()
    fused = copy.deepcopy(layer)
    use_fused_gate(fused)
    if channels_last:
        use_channels_last(layer)
        use_channels_last(fused)
    x = _layout(torch.randn(2, 4, 15, dtype=torch.float64), channels_last).requires_grad_()
    kwargs = {"pad_front": 1} if kind.endswith("pad_front 1") else {}
    if kind == "up":
        kwargs["cond"] = _layout(torch.randn(2, 4, 17, dtype=torch.float64), channels_last).requires_grad_()
    out, ref = fused(x, **kwargs), layer(x, **kwargs)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert _is_time_major(out) == channels_last
    grads = torch.autograd.grad(out.square().sum(), [x, *fused.parameters()])
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *layer.parameters()])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("switches", [[use_fused_gate], [use_channels_last, use_fused_gate]],
                         ids=["fused", "channels-last+fused"])
@pytest.mark.parametrize("float_input", [False, True], ids=["ids", "one-hot"])
def test_fused_gate_model_computes_the_same(switches, float_input):
    model, twin = _switched_copies(_resnet, *switches)
    x = _input(model, float_input)
    out = _assert_same_maths(model.body, twin.body, x)
    assert _is_time_major(out) == (use_channels_last in switches)


@pytest.mark.parametrize("switches", [[use_fused_gate], [use_channels_last, use_fused_gate]],
                         ids=["fused", "channels-last+fused"])
def test_fused_gate_wavenet_computes_the_same(switches):
    """WaveNet gets the same fused gate as the Seq-U-Net (a fair comparison): same maths in float64."""
    model, twin = _switched_copies(_wavenet, *switches)
    assert all(m.fused_gate for m in twin.modules() if isinstance(m, WaveNetLayer))
    out = _assert_same_maths(model.body, twin.body, _input(model, float_input=False))
    assert _is_time_major(out) == (use_channels_last in switches)


@pytest.mark.parametrize("switches", [[use_cropped_skips], [use_channels_last, use_fused_gate, use_cropped_skips]],
                         ids=["cropped", "all-switches"])
@pytest.mark.parametrize("float_input", [False, True], ids=["ids", "one-hot"])
def test_wavenet_with_cropped_skips_computes_the_same(switches, float_input):
    """Skips computed only at the output's samples: the same outputs and gradients (float64), and each layer's
    skip is as long as the output, not as the layer."""
    model, twin = _switched_copies(_wavenet, *switches)
    x = _input(model, float_input)
    out = _assert_same_maths(model.body, twin.body, x)
    assert out.shape[-1] == 10 and all(m.crop_skips for m in twin.modules() if isinstance(m, WaveNetLayer))
    cl = use_channels_last in switches
    layer, plain_layer = twin.body.layers[0], model.body.layers[0]
    h = twin.body.start(x.double() if float_input else model.embed(x))
    h = to_channels_last(h) if cl else h
    res, skip = layer(h, keep=10)
    ref_res, ref_skip = plain_layer(h.contiguous(), keep=10)        # unswitched: keep changes nothing
    assert skip.shape[-1] == 10 and ref_skip.shape[-1] == res.shape[-1] == h.shape[-1] - 1
    torch.testing.assert_close(skip, crop_front(ref_skip, 10), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res, ref_res, rtol=1e-12, atol=1e-12)
    assert (skip.stride(1) == 1) == cl                              # the layout holds
    with pytest.raises(ValueError, match="crop_skips"):
        use_cropped_skips(_resnet())


@pytest.mark.parametrize("time_major", [False, True], ids=["ncl", "nlc"])
def test_wavenet_gate_alone_equals_the_unfused_gate(time_major):
    torch.manual_seed(0)
    y = _layout(torch.randn(2, 6, 11, dtype=torch.float64), time_major).requires_grad_()
    out = fused_gate(y)
    torch.testing.assert_close(out, gate(y), rtol=1e-12, atol=1e-12)
    assert _is_time_major(out) == time_major and out.dtype == y.dtype
    assert torch.autograd.gradcheck(fused_gate, (y,))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fused_gate(y)
    assert len(saved) == 1 and saved[0] is y
    with pytest.raises(ValueError, match="2 \\* channels"):
        fused_gate(y[:, :5])


def test_fused_gate_refuses_a_model_without_gated_layers():
    tcn = sequnet.build_model(sequnet.paper_setting("jsb", "tcn").replace(levels=2, hidden=4))
    with pytest.raises(ValueError, match="fused_gate"):
        use_fused_gate(tcn)


@pytest.mark.parametrize("switches", [[], [use_fused_gate], [use_channels_last, use_fused_gate]],
                         ids=["plain", "fused", "channels-last+fused"])
def test_residual_chain_stays_in_the_autocast_dtype(switches):
    torch.manual_seed(0)
    model = _resnet()
    for switch in switches:
        switch(model)
    dtypes = []
    for m in model.modules():
        if isinstance(m, GatedLayer):
            m.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(_input(model, float_input=False))
    logits.float().square().mean().backward()
    assert set(dtypes) == {torch.bfloat16} and logits.dtype == torch.bfloat16
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_generation_from_a_switched_model_is_unchanged():
    from sequnet.core.generation import init_state, minimal_window

    model, twin = _switched_copies(_resnet, use_channels_last, use_fused_gate)
    g = torch.Generator().manual_seed(4)
    seq = torch.randint(0, model.classes, (2, minimal_window(model) + 12), generator=g)
    plain, switched = init_state(model, seq[:, :-10]), init_state(twin, seq[:, :-10])
    torch.testing.assert_close(switched.logits, plain.logits, rtol=0, atol=1e-12)
    for s in range(10):
        ids = seq[:, -10 + s]
        torch.testing.assert_close(switched.step(ids), plain.step(ids), rtol=0, atol=1e-12)


def test_trainer_switches_only_audio_models_on_a_gpu():
    from sequnet.experiment import fast_path, training
    from sequnet.experiment.scales import deviations, resolve

    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    piano = resolve("piano_audio", "sequnet", "smoke", device="cpu")
    wavenet = resolve("piano_audio", "wavenet", "smoke", device="cpu")
    char = resolve("char_ptb", "sequnet", "smoke", device="cpu")
    models = {c.arch + c.task: sequnet.build_model(c.setting) for c in (piano, wavenet, char)}
    assert fast_path.uses_fast_kernels(piano, gpu, models["sequnetpiano_audio"])
    assert fast_path.uses_fast_kernels(wavenet, gpu, models["wavenetpiano_audio"])
    assert not fast_path.uses_fast_kernels(piano, cpu, models["sequnetpiano_audio"])
    assert not fast_path.uses_fast_kernels(char, gpu, models["sequnetchar_ptb"])
    assert not fast_path.uses_fast_kernels(piano.replace(fast_kernels=False), gpu, models["sequnetpiano_audio"])
    # on the CPU the trainer builds the plain model
    model, _ = training.build(piano, cpu)
    assert not any(getattr(m, "channels_last", False) or getattr(m, "fused_gate", False) for m in model.modules())
    with pytest.raises(ValueError, match="fast_kernels='no'"):
        resolve("piano_audio", "sequnet", "smoke", fast_kernels="no")
    assert "fast_kernels" not in deviations(resolve("piano_audio", "sequnet", "paper", fast_kernels=False))


def test_the_gpu_path_keeps_cudnns_weight_gradients():
    """The GPU path's switches (fast_path.use_fast_kernels) leave every convolution's weight gradient to cuDNN,
    autotuned: on an H100 the products lost to it for both models in every mode once cuDNN's plans were autotuned
    (WaveNet uncompiled, where they had won against heuristic plans: 172.77 against 169.63 ms)."""
    from sequnet.experiment.fast_path import use_fast_kernels

    for arch in ("wavenet", "sequnet"):
        for compile_ in (False, True):
            model = use_fast_kernels(sequnet.paper_model("piano_audio", arch), compile_)
            switched = [m for m in model.modules() if hasattr(m, "mm_weight_grad")]
            assert switched and not any(m.mm_weight_grad for m in switched), (arch, compile_)


def test_the_record_names_the_gpu_paths_switches_in_effect():
    from sequnet.experiment.fast_path import describe, use_fast_kernels

    assert describe(sequnet.paper_model("piano_audio", "sequnet")) == ""
    assert describe(use_fast_kernels(sequnet.paper_model("piano_audio", "sequnet"))) == (
        "GPU path: channels padded to a multiple of 64, channels-last activations, the fused gate, "
        "the Triton lookup of the first convolution")
    assert describe(use_fast_kernels(sequnet.paper_model("piano_audio", "wavenet"), compile_=True)) == (
        "GPU path: channels-last activations, the Triton lookup of the first convolution, "
        "skips computed at the output's samples only")
    assert describe(use_fast_kernels(sequnet.paper_model("piano_audio", "wavenet"))).endswith(
        "skips computed at the output's samples only")
    # switched by hand (benchmarks/piano_step.py), the weight gradients' way is named, kernel included
    for kernel, text in (("products", "cuBLAS's batched products"), ("triton", "a Triton kernel"),
                         ("cudnn_cf", "cuDNN from channels-first copies")):
        model = use_mm_weight_grad(use_fast_kernels(sequnet.paper_model("piano_audio", "wavenet")), kernel=kernel)
        assert describe(model).endswith(f"skips computed at the output's samples only, weight gradients by {text}")


def test_cli_passes_fast_kernels_on():
    from sequnet.experiment import cli as train_cli
    from sequnet.cli import build_parser

    args = build_parser().parse_args(["train", "piano_audio", "sequnet", "--no-fast-kernels", "--nproc", "2"])
    assert train_cli._overrides(args)["fast_kernels"] is False
    assert "--no-fast-kernels" in train_cli._worker_argv(args)
