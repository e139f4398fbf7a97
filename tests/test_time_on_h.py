"""The channels-last convolutions with time on the height axis (``sequnet.core.models.use_time_on_h``) on the CPU:
the same sums, gradients and layout as with time on the width, in every geometry the audio models have, switched
into whole models and compiled. The GPU side is in ``test_fast_training_cuda.py``; what it buys, in
``benchmarks/piano_step.py``'s ``time_h``."""
from __future__ import annotations

import copy

import pytest
import torch

import sequnet
from sequnet.core.models import use_channels_last, use_cropped_skips, use_time_on_h
from sequnet.core.models import layers
from sequnet.core.models.layers import to_channels_last
from test_fast_training import _assert_same_maths, _input, _resnet, _switched_copies, _wavenet
from test_weight_grad import GEOMETRIES, GEOMETRY_IDS, assert_compiled_switch_follows_eager


def _channels_last(t: torch.Tensor) -> bool:
    return t.transpose(1, 2).is_contiguous()


@pytest.mark.parametrize("cls, kwargs", GEOMETRIES, ids=GEOMETRY_IDS)
def test_a_convolution_on_the_height_gives_the_widths_results_and_layout(monkeypatch, cls, kwargs):
    torch.manual_seed(0)
    conv = use_channels_last(cls(6, 8, **kwargs).double())
    twin = use_time_on_h(copy.deepcopy(conv))
    x = to_channels_last(torch.randn(3, 6, 41, dtype=torch.float64)).requires_grad_()
    shapes = []        # the 4-D inputs the layers hand to torch: (.., .., 1, time), then (.., .., time, 1)
    for name in ("conv2d", "conv_transpose2d"):
        def spy(t, *args, real=getattr(layers.F, name), **kwargs):
            shapes.append(t.shape[2:])
            return real(t, *args, **kwargs)
        monkeypatch.setattr(layers.F, name, spy)
    results = []
    for m in (conv, twin):
        y = m(x)
        grad = to_channels_last(torch.randn(y.shape, generator=torch.Generator().manual_seed(1),
                                            dtype=torch.float64))
        results.append((y, torch.autograd.grad(y, [x, m.weight, m.bias], grad)))
    (y, grads), (y2, grads2) = results
    assert shapes == [(1, 41), (41, 1)]
    torch.testing.assert_close(y2, y, rtol=1e-12, atol=1e-12)
    assert _channels_last(y2), "the output keeps the channels-last layout"
    for name, a, b in zip(["input", "weight", "bias"], grads2, grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)
    # no conversion on the way back either: the input's and the weight's gradients come channels-last
    assert _channels_last(grads2[0]) and _channels_last(grads2[1])


@pytest.mark.parametrize("build, switches", [(_resnet, []), (_wavenet, []), (_wavenet, [use_cropped_skips])],
                         ids=["sequnet", "wavenet", "wavenet-cropped"])
@pytest.mark.parametrize("float_input", [False, True], ids=["ids", "one-hot"])
def test_models_on_the_height_compute_the_same(build, switches, float_input):
    model, twin = _switched_copies(build, use_channels_last, use_time_on_h, *switches)
    use_channels_last(model)
    for switch in switches:
        switch(model)
    x = _input(model, float_input)
    out = _assert_same_maths(model.body, twin.body, x)
    assert out.stride(1) == 1, "channels-last logits"


def test_the_switch_acts_only_on_channels_last_models_and_refuses_a_model_without_it():
    model, twin = _switched_copies(_resnet, use_time_on_h)
    _assert_same_maths(model.body, twin.body, _input(model, False))
    tcn = sequnet.build_model(sequnet.paper_setting("jsb", "tcn").replace(hidden=8, levels=2))
    with pytest.raises(ValueError, match="time_on_h"):
        use_time_on_h(tcn)


def test_compiled_model_on_the_height_follows_the_eager_one():
    assert_compiled_switch_follows_eager(use_time_on_h)
