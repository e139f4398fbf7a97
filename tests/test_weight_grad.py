"""The convolutions' weight gradients by batched matrix products (``sequnet.core.models.weight_grad``) on the CPU:
the same maths as autograd's convolution backward, in every geometry the audio models have, switched into whole
models, under bf16 autocast and compiled. The GPU side is in ``test_fast_training_cuda.py``."""
from __future__ import annotations

import copy

import pytest
import torch

import sequnet
from sequnet.core.models import use_channels_last, use_cropped_skips, use_mm_weight_grad
from sequnet.core.models.layers import Conv1d, ConvTranspose1d, to_channels_last
from test_fast_training import _assert_same_maths, _input, _resnet, _switched_copies, _wavenet

# (module, keyword arguments): the Seq-U-Net's k = 5 layers (stride 1 and 2, transposed), WaveNet's dilated k = 2
# ones and the 1x1 convolutions of both
GEOMETRIES = [
    (Conv1d, {"kernel_size": 5}), (Conv1d, {"kernel_size": 5, "stride": 2}),
    (Conv1d, {"kernel_size": 2, "dilation": 4}), (Conv1d, {"kernel_size": 1}),
    (ConvTranspose1d, {"kernel_size": 5, "stride": 2}),
]
GEOMETRY_IDS = ["k5", "k5-stride2", "k2-dilation4", "1x1", "transposed-k5-stride2"]


def _mm_backward_nodes(out: torch.Tensor) -> int:
    """How many of the products' backward nodes the graph behind ``out`` holds."""
    seen, stack, count = set(), [out.grad_fn], 0
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        count += "ConvMMWeightGrad" in type(node).__name__
        stack.extend(next_node for next_node, _ in node.next_functions)
    return count


@pytest.mark.parametrize("kernel", ["products", "cudnn_cf"])
@pytest.mark.parametrize("cls, kwargs", GEOMETRIES, ids=GEOMETRY_IDS)
def test_products_give_the_convolutions_gradients(cls, kwargs, kernel):
    """The products, and the convolution's own backward from channels-first copies (``"cudnn_cf"``)."""
    torch.manual_seed(0)
    conv = use_channels_last(cls(6, 8, **kwargs).double())
    twin = use_mm_weight_grad(copy.deepcopy(conv), kernel=kernel)
    x = to_channels_last(torch.randn(3, 6, 41, dtype=torch.float64)).requires_grad_()
    results = []
    for m in (conv, twin):
        y = m(x)
        grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        results.append((y, torch.autograd.grad(y, [x, m.weight, m.bias], grad)))
    (y, grads), (y2, grads2) = results
    assert _mm_backward_nodes(y2) == 1 and _mm_backward_nodes(y) == 0
    torch.testing.assert_close(y2, y, rtol=0, atol=0)
    for name, a, b in zip(["input", "weight", "bias"], grads2, grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)
    # the weight's gradient comes with the weight's channels-last strides (a size-1 dimension's stride is free)
    assert grads2[1].transpose(1, 2).is_contiguous() and twin.weight.transpose(1, 2).is_contiguous()


@pytest.mark.parametrize("build, switches", [(_resnet, []), (_wavenet, []), (_wavenet, [use_cropped_skips])],
                         ids=["sequnet", "wavenet", "wavenet-cropped"])
@pytest.mark.parametrize("float_input", [False, True], ids=["ids", "one-hot"])
def test_models_with_the_products_compute_the_same(build, switches, float_input):
    model, twin = _switched_copies(build, use_channels_last, use_mm_weight_grad, *switches)
    for switch in switches:
        switch(model)
    x = _input(model, float_input)
    out = _assert_same_maths(model.body, twin.body, x)
    convs = [m for m in twin.modules() if isinstance(m, (Conv1d, ConvTranspose1d))]
    # every convolution but the first, which the ids' lookup replaces (on one-hot inputs it is one more)
    assert _mm_backward_nodes(out) >= len(convs) - 1 > 0


def test_the_products_act_only_on_channels_last_models():
    model, twin = _switched_copies(_resnet, use_mm_weight_grad)
    x = _input(model, False)
    assert _mm_backward_nodes(twin(x)) == 0
    _assert_same_maths(model.body, twin.body, x)


@pytest.mark.parametrize("build", [_resnet, _wavenet], ids=["sequnet", "wavenet"])
def test_products_under_bf16_autocast_match_the_convolutions_backward(build):
    """Autocast's casts are the products' too: the same bf16 forward, and weight gradients that differ from the
    convolution backward's by float32 summation order only."""
    torch.manual_seed(0)
    model = use_channels_last(build())
    twin = use_mm_weight_grad(copy.deepcopy(model))
    x = _input(model, False)
    results = []
    for m in (model, twin):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(x)
        loss = out.float().square().mean()
        results.append((out, torch.autograd.grad(loss, list(m.parameters()))))
    (out, grads), (out2, grads2) = results
    assert out2.dtype == out.dtype == torch.bfloat16
    torch.testing.assert_close(out2, out, rtol=0, atol=0)
    for (name, p), a, b in zip(model.named_parameters(), grads2, grads):
        assert a.dtype == p.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)


def test_compiled_model_with_the_products_follows_the_eager_one():
    """The channels-last residual Seq-U-Net, and a copy with the products' weight gradients compiled: the same loss
    and gradients, to float32 rounding."""
    torch.manual_seed(0)
    model = use_channels_last(_resnet())
    twin = use_mm_weight_grad(copy.deepcopy(model))
    compiled = torch.compile(twin, dynamic=False)
    x = _input(model, False)
    results = []
    for m, params in ((model, model.parameters()), (compiled, twin.parameters())):
        loss = m(x).square().mean()
        results.append((loss, torch.autograd.grad(loss, list(params))))
    (loss, grads), (loss2, grads2) = results
    torch.testing.assert_close(loss2, loss, rtol=1e-5, atol=0)
    for (name, _), a, b in zip(model.named_parameters(), grads2, grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_the_switch_refuses_a_model_without_it():
    tcn = sequnet.build_model(sequnet.paper_setting("jsb", "tcn").replace(hidden=8, levels=2))
    with pytest.raises(ValueError, match="mm_weight_grad"):
        use_mm_weight_grad(tcn)


def test_the_triton_kernel_is_a_named_choice_that_falls_back_to_the_products_without_triton():
    """``use_mm_weight_grad(model, kernel="triton")`` marks every switched convolution; where Triton does not run
    (a CPU, float64) the products take its place, so the gradients are the convolution's. An unknown kernel is
    refused by name. (The kernel itself: tests/test_kernels_interpreted.py and, on a GPU, test_fast_training_cuda.)"""
    torch.manual_seed(0)
    conv = use_channels_last(Conv1d(6, 8, kernel_size=5).double())
    twin = use_mm_weight_grad(copy.deepcopy(conv), kernel="triton")
    assert twin.weight_grad_kernel == "triton" and conv.weight_grad_kernel == "products"
    x = to_channels_last(torch.randn(3, 6, 41, dtype=torch.float64))
    grads = [torch.autograd.grad(m(x).square().sum(), m.weight)[0] for m in (conv, twin)]
    assert _mm_backward_nodes(twin(x)) == 1
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="kernel='cublas': expected one of"):
        use_mm_weight_grad(conv, kernel="cublas")


def test_the_triton_kernel_cuts_sequences_into_shares_that_fill_whole_waves():
    """``shares_for``: the piano Seq-U-Net's widest layers at batch 16 on an H100 (132 programs at once, 18 output
    tiles a sequence) in 5 shares, 11 waves full to 99 %, where one share would leave the third wave 82 % idle;
    a sequence too short for two shares of 4 tiles stays whole, and one output tile of a long sequence takes one
    wave of 132 shares. A convolution of more taps than the kernel's accumulators is refused before any launch."""
    from sequnet.core.models.weight_grad import MAX_TAPS, shares_for, weight_grad_triton
    assert shares_for(18 * 16, 36849, 32, 132) == 5
    assert shares_for(18 * 16, 255, 32, 132) == 1 and shares_for(18 * 16, 256, 32, 132) == 2
    assert shares_for(1, 10 ** 6, 32, 132) == 132
    x = torch.zeros(2, 40, 8)
    with pytest.raises(ValueError, match=f"{MAX_TAPS + 1} taps: the Triton weight gradient takes 1 to {MAX_TAPS}"):
        weight_grad_triton(x, x, MAX_TAPS + 1, 1, 1)
