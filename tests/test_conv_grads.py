"""The channels-last convolutions' backward through one operator (sequnet.core.models.conv_grads), and the gates
recomputed in the compiled backward pass (sequnet.core.models.layers.conv_gate)."""
import re

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sequnet.core.models import conv_grads, layers


def channels_last_strides(t: torch.Tensor) -> bool:
    """PyTorch's test of a 4-D tensor's strides for channels-last (c10's is_channels_last_strides_2d), which
    ``cudnn_convolution_backward`` applies to the output gradient: where it fails, cuDNN is handed a copy."""
    if t.stride(1) == 0:
        return False
    least = 0
    for d in (1, 3, 2, 0):
        if t.shape[d] == 0 or t.stride(d) < least or (d == 0 and least == t.stride(1)):
            return False
        least = t.stride(d) * max(t.shape[d], 1)
    return True


def test_the_channels_last_rule_is_pytorchs():
    """The rule above against PyTorch's own, which ``.to(memory_format=...)`` applies (it copies only where the
    rule fails), on the layouts that matter here: a size-1 axis with a real stride and with stride 0."""
    x = torch.randn(2, 6, 1, 5).contiguous(memory_format=torch.channels_last)
    zero = x.as_strided(x.shape, (x.stride(0), 1, 0, x.stride(3)))
    for t, expected in ((x, True), (zero, False), (x.contiguous(), False)):
        assert channels_last_strides(t) is expected
        assert (t.to(memory_format=torch.channels_last).data_ptr() == t.data_ptr()) is expected


class ConvBackwardCalls(TorchDispatchMode):
    """The output gradients handed to ``aten.convolution_backward`` and to the operator (which, seen here, runs
    without this mode: its own calls are not seen)."""

    def __init__(self):
        super().__init__()
        self.grads, self.ops = [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution_backward.default:
            self.grads.append(args[0])
        if func is torch.ops.sequnet.conv_grads.default:
            self.ops.append(args[0])
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("compiled", [False, True])
def test_the_operator_gives_pytorchs_gradients(transposed, compiled):
    """Input, weight and bias gradients through the operator equal PyTorch's own backward of the 2-D convolution
    on channels-last tensors, eager and compiled (the compiled backward calls the operator); float64, so that
    only the order of sums could differ."""
    torch.manual_seed(0)
    x = layers.to_channels_last(torch.randn(3, 6, 40, dtype=torch.float64)).requires_grad_()
    shape = (6, 8, 5) if transposed else (8, 6, 5)
    weight = layers.to_channels_last(torch.randn(*shape, dtype=torch.float64)).requires_grad_()
    bias = torch.randn(8, dtype=torch.float64, requires_grad=True)

    def loss(f):
        y = f(x, weight, bias, 2 if transposed else 1, 1, transposed)
        return (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).square().sum()

    fn = torch.compile(conv_grads.conv, dynamic=False) if compiled else conv_grads.conv
    calls = ConvBackwardCalls()
    y = loss(fn)
    with calls:
        ours = torch.autograd.grad(y, (x, weight, bias))
    theirs = torch.autograd.grad(loss(conv_grads.forward), (x, weight, bias))
    # compiled, the backward calls the operator with the 3-D gradient; eager, the function behind it, which hands
    # cuDNN a gradient with channels-last strides
    assert [g.dim() for g in calls.ops] == ([3] if compiled else [])
    assert len(calls.grads) == (0 if compiled else 1) and all(channels_last_strides(g) for g in calls.grads)
    for a, b in zip(ours, theirs):
        assert a.stride() == b.stride() or a.dim() == 1
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_operator_computes_only_the_gradients_asked_for():
    """A convolution whose input needs no gradient (the audio models' first, over the lookup's table) asks the
    operator for the weight's only, and the other way round."""
    x = layers.to_channels_last(torch.randn(2, 4, 12))
    w = layers.to_channels_last(torch.randn(5, 4, 3))
    g = layers.to_channels_last(torch.randn(2, 5, 10))
    (gw,) = conv_grads.grads(g, x, w, 1, 1, False, False, True)
    (gx,) = conv_grads.grads(g, x, w, 1, 1, False, True, False)
    assert gw.shape == w.shape and gw.stride() == w.stride() and gx.shape == x.shape and gx.stride() == x.stride()


@pytest.mark.parametrize("arch", ["sequnet", "wavenet"])
def test_compiled_models_call_the_operator_and_recompute_their_gates(arch, monkeypatch):
    """Compiled, the audio models' backward passes reach cuDNN only through the operator, which is handed 3-D
    gradients (on an H100 the 4-D view Inductor handed PyTorch's own backward had stride 0 on the size-1 axis
    for one convolution a level, and cuDNN's backward copied it). With the gates recomputed, the forward pass
    writes less (it no longer stores tanh and sigmoid), and the gradients are the same."""
    from torch._inductor.utils import run_and_get_code

    from sequnet.core.models import (OneHotModel, ResSeqUNet, ResSeqUNetConfig, WaveNet, WaveNetConfig,
                                     use_channels_last)

    def build():
        torch.manual_seed(0)
        if arch == "sequnet":
            model = OneHotModel(ResSeqUNet(ResSeqUNetConfig(16, 32, 3, 32, 5, 2)), 16)
            return use_channels_last(model).train(), model.body.plan.input_length
        model = OneHotModel(WaveNet(WaveNetConfig(16, 2, 4, 2, 6, 10, 10, 16)), 16)
        return use_channels_last(model).train(), model.body.receptive_field + 20

    written, grads = {}, {}
    monkeypatch.setattr(layers, "OPAQUE_CONV_GRADS", True)
    for recompute in (False, True):
        monkeypatch.setattr(layers, "RECOMPUTE_GATE", recompute)
        torch._dynamo.reset()
        model, length = build()
        ids = torch.randint(0, 16, (2, length), generator=torch.Generator().manual_seed(1))
        compiled = torch.compile(model, dynamic=False)
        _, (forward, backward) = run_and_get_code(lambda: compiled(ids).float().square().mean().backward())
        assert "sequnet.conv_grads" not in forward and "aten.convolution_backward" not in backward
        assert backward.count("torch.ops.sequnet.conv_grads.default(") >= 10
        sizes = re.findall(r"empty_strided_cpu\(\((\d+(?:, \d+)*)\)", forward)
        written[recompute] = sum(torch.Size(map(int, s.split(", "))).numel() for s in sizes)
        grads[recompute] = [p.grad.clone() for p in model.parameters()]
    assert written[True] < 0.8 * written[False], written
    for a, b in zip(grads[True], grads[False]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_compiled_gates_keep_autocasts_dtype(monkeypatch):
    """Under bf16 autocast the recomputed gate adds the bias in the convolution's dtype, as the convolution would:
    a float32 bias had made the gates, and every activation after them, float32 (the compiled bf16 Seq-U-Net
    step took 29.47 ms against 24.35 on an H100 at e0ff3ff)."""
    monkeypatch.setattr(layers, "RECOMPUTE_GATE", True)
    torch._dynamo.reset()
    torch.manual_seed(0)
    conv = layers.Conv1d(4, 8, 3)
    conv.channels_last = True
    conv.weight.data = layers.to_channels_last(conv.weight.data)
    x = layers.to_channels_last(torch.randn(2, 4, 20))
    f = torch.compile(lambda x: layers.conv_gate(conv, x), dynamic=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, plain = f(x), layers.gate(conv(x), True)
    assert out.dtype == plain.dtype == torch.bfloat16
    torch.testing.assert_close(out, plain, rtol=2e-2, atol=2e-2)
