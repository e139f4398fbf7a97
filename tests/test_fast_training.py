"""Issue 7's opt-in speed-ups of the audio models' training step, on the CPU: the lookup's dtype under autocast,
channels-last activations and the fused gated residual must compute what the plain models compute.

The GPU side (the Triton kernels, CUDA graphs, cuDNN's layouts) is in ``test_fast_training_cuda.py``."""
from __future__ import annotations

import copy

import pytest
import torch

import sequnet
from sequnet.models import OneHotModel, ResSeqUNet, ResSeqUNetConfig, WaveNet, WaveNetConfig
from sequnet.models.layers import autocast_dtype, input_conv, use_channels_last
from sequnet.models.sequnet_res import GatedLayer
from sequnet.models.wavenet import WaveNetLayer


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


@pytest.mark.parametrize("build", [_resnet, _wavenet], ids=["sequnet", "wavenet"])
def test_channels_last_layout_holds_through_the_layers_and_their_gradients(build):
    _, model = _switched_copies(build, use_channels_last)
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
