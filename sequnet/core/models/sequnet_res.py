"""The residual Seq-U-Net used for raw audio: gated residual layers at 2^i-times coarser rates.

Each layer computes ``y = I(x) + tanh(C_f u) * sigmoid(C_g u)`` where the identity ``I`` is the input itself
(stride 1), its decimation keeping the newest sample (stride 2), or each sample repeated twice (the stride-2
transposed layer, nearest-neighbour upsampling), always cropped at the front to the gated output's length.
In the up blocks the identity chain runs through the skip features; the upsampled coarse features enter only
through the gated convolutions (``u = [x, upsampled]``).

All convolutions are valid; the input length is planned so that the last output lines up with the last input
and the decimation grid keeps the newest sample (see ``sizes.res_sequnet_plan``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from sequnet.core import sizes
from sequnet.core.models.fused_gate import gated_residual
from sequnet.core.models.layers import (Conv1d, ConvTranspose1d, LengthError, ReLU, add_channels, cat_channels,
                                        conv_gate, crop_front, input_conv, nearest_allowed, time_slice,
                                        to_channels_last)


@dataclass
class ResSeqUNetConfig:
    num_inputs: int = 256
    features: int = 180
    levels: int = 11
    num_outputs: int = 256
    kernel_size: int = 5
    depth: int = 2

    def __post_init__(self):
        if self.levels < 2:
            raise ValueError("a Seq-U-Net needs at least 2 levels")
        if self.kernel_size < 2:
            raise ValueError("kernel_size must be at least 2")


class GatedLayer(nn.Module):
    """One gated residual layer. Filter and gate share one convolution with 2 * n_out output channels, which has
    exactly the parameters of the official two convolutions and runs as a single kernel."""

    channels_last = False              # see sequnet.core.models.layers.use_channels_last
    fused_gate = False                 # see sequnet.core.models.fused_gate.use_fused_gate

    def __init__(self, n_in: int, n_out: int, k: int, stride: int = 1, transpose: bool = False):
        super().__init__()
        self.k, self.stride, self.transpose = k, stride, transpose
        if transpose:
            self.conv = ConvTranspose1d(n_in, 2 * n_out, k, stride=2)
            # PyTorch derives a transposed conv's init bound from its *output* channels; keep the bound of the
            # official pair of n_out-channel convolutions.
            bound = 1 / math.sqrt(n_out * k)
            nn.init.uniform_(self.conv.weight, -bound, bound)
            nn.init.uniform_(self.conv.bias, -bound, bound)
        else:
            self.conv = Conv1d(n_in, 2 * n_out, k, stride=stride)

    def identity(self, x: torch.Tensor) -> torch.Tensor:
        cl = self.channels_last
        if self.transpose:                                      # 2N - 1 samples, causal nearest neighbour
            if cl:                                              # repeated on the (batch, time, channels) view
                return x.transpose(1, 2).repeat_interleave(2, dim=1)[:, :-1].transpose(1, 2)
            return x.repeat_interleave(2, dim=-1)[..., :-1]
        if self.stride == 2:
            return time_slice(x, slice((x.shape[-1] - 1) % 2, None, 2), cl)   # decimate, keeping the newest sample
        return x

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, pad_front: int = 0) -> torch.Tensor:
        cl = self.channels_last
        u = x if cond is None else cat_channels([x, crop_front(cond, x.shape[-1], cl)], cl)
        start, n = 0, self.conv_length(u.shape[-1])
        if self.transpose:
            # 2(N-1)+k samples; the last k-1 would see future coarse samples, and the front is cropped so that
            # the planned lengths come out (pad_front keeps one more sample where the plan needs it).
            start = self.k - 1 - pad_front
            n -= (self.k - 1) + start
        if self.fused_gate:
            step, repeat = (1, 2) if self.transpose else (self.stride, 1)
            return gated_residual(self.conv(u), x, start, n, step, repeat)
        r = conv_gate(self.conv, u, slice(start, start + n) if self.transpose else None)
        return add_channels(crop_front(self.identity(x), n, cl), r, cl)

    def conv_length(self, length: int) -> int:
        """The convolution's output length for an input of ``length`` samples (valid; transposed: 2(N-1)+k)."""
        if self.transpose:
            return 2 * (length - 1) + self.k
        return (length - self.k) // self.stride + 1


class ResSeqUNet(nn.Module):
    takes_ids = True                   # forward also takes (batch, T) integer ids for one-hot inputs
    channels_last = False              # see sequnet.core.models.layers.use_channels_last
    fused_lookup = False               # see sequnet.core.models.layers.use_fused_lookup
    channel_padding = 0                # channels stored padded to a multiple of this (sequnet.core.models.padding)
    padding_zeros = 0                  # the padding's parameters (always zero; not counted as the model's)
    padding_hooks = False

    def __init__(self, config: ResSeqUNetConfig):
        super().__init__()
        self.config = c = config
        k, F_, D, L = c.kernel_size, c.features, c.depth, c.levels
        self.in_conv = Conv1d(c.num_inputs, F_, k)
        self.down = nn.ModuleList(
            nn.ModuleList([GatedLayer(F_, F_, k) for _ in range(D)] + [GatedLayer(F_, F_, k, stride=2)])
            for _ in range(L - 1))
        self.bottleneck = nn.ModuleList(GatedLayer(F_, F_, k) for _ in range(D))
        self.upconv = nn.ModuleList(GatedLayer(F_, F_, k, transpose=True) for _ in range(L - 1))
        self.up = nn.ModuleList(nn.ModuleList(GatedLayer(2 * F_, F_, k) for _ in range(D)) for _ in range(L - 1))
        self.out = nn.Sequential(ReLU(), Conv1d(F_, c.num_outputs, 1))
        self.plan = sizes.res_sequnet_plan(L, k, D)

    @property
    def history(self) -> int:
        return self.plan.input_length - self.plan.output_length

    @property
    def stored_features(self) -> int:
        """Channels per layer as stored: the features, or padded to a multiple of ``channel_padding``."""
        m, f = self.channel_padding, self.config.features
        return -(-f // m) * m if m else f

    @property
    def cycle(self) -> int:
        return 2 ** (self.config.levels - 1)

    def check_length(self, length: int) -> int:
        first = self.plan.input_length
        if length < first or (length - first) % self.cycle:
            raise LengthError(f"input length {length} is not allowed for this residual Seq-U-Net; "
                              + nearest_allowed(length, first, self.cycle))
        return length - self.history

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, num_inputs, T), or (batch, T) ids of one-hot inputs -> (batch, num_outputs, T - history)."""
        n_out = self.check_length(x.shape[-1])
        x = input_conv(self.in_conv, x, self.fused_lookup)
        if self.channels_last:
            x = to_channels_last(x)                             # the ids' lookup gives that layout already
        shortcuts = []
        for block in self.down:
            for layer in block[:-1]:
                x = layer(x)
            shortcuts.append(x)
            x = block[-1](x)
        for layer in self.bottleneck:
            x = layer(x)
        for i in reversed(range(self.config.levels - 1)):
            up = self.upconv[i](x, pad_front=self.plan.pad_front[i])
            x = crop_front(shortcuts[i], up.shape[-1], self.channels_last)
            for layer in self.up[i]:
                x = layer(x, cond=up)
        y = self.out(x)
        assert y.shape[-1] == n_out, (y.shape, n_out)
        return y
