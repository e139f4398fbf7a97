"""Channel padding (``sequnet.core.models.padding``): the padded residual Seq-U-Net is the same model, trains the
same, and looks the same from outside (state dict, parameter count, generation)."""
from __future__ import annotations

import copy

import pytest
import torch

from sequnet.core.configs import count_parameters
from sequnet.core.generation import generate, minimal_window
from sequnet.core.models import OneHotModel, ResSeqUNet, ResSeqUNetConfig, WaveNet, WaveNetConfig
from sequnet.core.models import use_channels_last, use_fused_gate
from sequnet.core.models.padding import pad_channels, unpad_channels


def model(features=6, levels=3, k=3, depth=2):
    torch.manual_seed(0)
    return OneHotModel(ResSeqUNet(ResSeqUNetConfig(7, features, levels, 7, k, depth)), 7).double()


def ids(m, batch=2, extra=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 7, (batch, m.body.plan.input_length + extra), generator=g)


def pairs(plain, padded):
    """(plain parameter, padded parameter) by name."""
    stored = dict(padded.named_parameters())
    return [(name, p, stored[name]) for name, p in plain.named_parameters()]


@pytest.mark.parametrize("multiple", [4, 8])
@pytest.mark.parametrize("switches", [(), ("channels_last",), ("channels_last", "fused_gate")])
def test_padded_model_computes_and_trains_the_same(multiple, switches):
    plain = model()
    padded = pad_channels(copy.deepcopy(plain), multiple)
    assert padded.body.stored_features == -(-6 // multiple) * multiple
    for m in (plain, padded):
        if "channels_last" in switches:
            use_channels_last(m)
        if "fused_gate" in switches:
            use_fused_gate(m)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in (plain, padded)]
    for step in range(3):
        x = ids(plain, seed=step)
        target = torch.randint(0, 7, (2, plain.body.check_length(x.shape[-1])))
        losses = []
        for m, opt in zip((plain, padded), opts):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(m(x), target)
            loss.backward()
            losses.append(loss)
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-12, atol=1e-12)
        for name, p, q in pairs(plain, padded):
            logical = padded.state_dict()[name]
            assert logical.shape == p.shape, name
            # the padded entries' gradients are exactly zero, so Adam never moves them
            assert q.grad.abs().sum() == pytest.approx(float(p.grad.abs().sum()), rel=1e-9), name
        for opt in opts:
            opt.step()
        for name, p, q in pairs(plain, padded):
            torch.testing.assert_close(padded.state_dict()[name], p.detach(), rtol=1e-12, atol=1e-12)
            assert float(q.detach().abs().sum()) == pytest.approx(float(p.detach().abs().sum()), rel=1e-9), f"{name}: padding moved"


def test_padded_model_looks_like_the_paper_model_from_outside():
    plain = model(features=5)
    padded = pad_channels(copy.deepcopy(plain), 8)
    assert sum(p.numel() for p in padded.parameters()) > count_parameters(padded) == count_parameters(plain)
    state = padded.state_dict()
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in plain.state_dict().items()}
    # a checkpoint of the plain model loads into the padded one, and back
    other = pad_channels(model(features=5), 8)
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(0.5)
    other.load_state_dict(plain.state_dict())
    x = ids(plain)
    torch.testing.assert_close(other(x), plain(x), rtol=1e-12, atol=1e-12)
    plain2 = model(features=5)
    plain2.load_state_dict(other.state_dict())
    torch.testing.assert_close(plain2(x), plain(x), rtol=1e-12, atol=1e-12)
    # generation reads the unpadded model; unpadding restores the plain layout
    prime = torch.randint(0, 7, (2, minimal_window(plain)))
    assert torch.equal(generate(other, prime, 9, greedy=True, progress=False),
                       generate(plain, prime, 9, greedy=True, progress=False))
    unpad_channels(other)
    assert other.body.channel_padding == 0 and count_parameters(other) == sum(p.numel() for p in other.parameters())
    torch.testing.assert_close(other(x), plain(x), rtol=1e-12, atol=1e-12)


def test_padding_is_refused_where_it_does_not_apply():
    wn = OneHotModel(WaveNet(WaveNetConfig(7, blocks=1, layers=2, residual_channels=4, skip_channels=4,
                                           end_channels=4, num_outputs=7)), 7)
    with pytest.raises(ValueError, match="residual Seq-U-Net, not WaveNet"):
        pad_channels(wn)
    m = pad_channels(model(), 8)
    with pytest.raises(ValueError, match="padded already"):
        pad_channels(m, 8)
    for bad in (0, -8, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            pad_channels(model(), bad)
