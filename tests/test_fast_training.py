"""Issue 7's opt-in speed-ups of the audio models' training step, on the CPU: the lookup's dtype under autocast,
channels-last activations and the fused gated residual must compute what the plain models compute.

The GPU side (the Triton kernels, CUDA graphs, cuDNN's layouts) is in ``test_fast_training_cuda.py``."""
from __future__ import annotations

import pytest
import torch

from sequnet.models.layers import autocast_dtype, input_conv


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
