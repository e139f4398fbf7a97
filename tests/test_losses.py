"""The models' cross-entropy in the layout of their logits (``sequnet.core.losses``)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sequnet.core import losses
from sequnet.core.models.layers import to_channels_last


@pytest.fixture
def scored_dims(monkeypatch):
    """The number of dimensions of every input ``losses.cross_entropy`` hands to ``F.cross_entropy``."""
    seen, original = [], F.cross_entropy

    def recording(input, *args, **kwargs):
        seen.append(input.dim())
        return original(input, *args, **kwargs)

    monkeypatch.setattr(losses.F, "cross_entropy", recording)
    return seen


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("cut", [None, 20], ids=["whole", "last-20"])
def test_channels_last_logits_are_scored_as_rows(scored_dims, reduction, dtype, cut):
    """Logits with the classes adjacent in memory (channels-last, as the audio models give them on a GPU) are
    scored as (batch * T, classes) rows, also when the scored positions are the last ones only: the loss and the
    logits' gradient are F.cross_entropy's over the (batch, classes, T) tensor, in float32, up to the order of the
    reduction's sum."""
    torch.manual_seed(0)
    logits = to_channels_last(torch.randn(3, 256, 50).to(dtype)).requires_grad_()
    assert logits.stride(1) == 1
    target = torch.randint(0, 256, (3, cut or 50))
    scored = logits[..., -cut:] if cut else logits
    expected = F.cross_entropy(scored.float().contiguous(), target, reduction=reduction)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    scored_dims.clear()
    got = losses.cross_entropy(scored, target, reduction)
    (got_grad,) = torch.autograd.grad(got, logits)
    assert scored_dims == [2] and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    # bf16 logits get their gradient rounded to bf16: a float32 difference may round to the next value
    tol = 2 ** -7 if dtype == torch.bfloat16 else 1e-6
    torch.testing.assert_close(got_grad, expected_grad, rtol=tol, atol=1e-9)


def test_other_logits_go_to_f_cross_entropy_as_they_are(scored_dims):
    """Logits in (batch, classes, T) order, and (batch, classes) ones, are F.cross_entropy's own business: the
    same loss bit for bit, through its own path."""
    torch.manual_seed(1)
    for logits, target, dims in ((torch.randn(2, 10, 30), torch.randint(0, 10, (2, 30)), 3),
                                 (torch.randn(4, 10).double(), torch.randint(0, 10, (4,)), 2)):
        expected = F.cross_entropy(logits.float(), target)
        scored_dims.clear()
        assert torch.equal(losses.cross_entropy(logits, target), expected)
        assert scored_dims == [dims]
