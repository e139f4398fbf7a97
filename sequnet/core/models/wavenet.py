"""The WaveNet baseline of the paper's audio experiment: 4 stacks x 13 dilated gated layers, kernel 2.

As the official code: a 1x1 start conv, per layer ``z = tanh(W_f * x) sigmoid(W_g * x)`` (dilation 2^j), a 1x1
skip conv into a running skip sum and a 1x1 residual conv added to the front-cropped input, then
ReLU -> 1x1 -> ReLU -> 1x1 on the skip sum. Valid convolutions: ``history = RF - 1 = 32764``.

Filter and gate share one convolution, and skip and residual 1x1 convs share one, with the official parameter
count (8,141,184). The official last layer's residual output is unused; it is kept so the parameter count
matches, and it is simply not added anywhere (its gradient is zero).

Cropped skips (``use_cropped_skips``, a switch of the trainer's fast path): the output is the head of the skip
sum at the newest ``T - history`` samples only, so each layer's skip convolution is needed there only, not over
the layer's whole length (on average 24,000 samples against 5,000 in the paper's training step). Computed there
alone, the same outputs and gradients cost 35 % fewer FLOPs, and the running skip sum (512 channels) stays 5,000
samples long. The official code, and the model without the switch, compute every skip sample and crop at the end.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from sequnet.core import sizes
from sequnet.core.models.fused_gate import fused_gate
from sequnet.core.models.layers import (Conv1d, LengthError, add_channels, conv_gate, crop_front, input_conv, relu,
                                        set_switch, split_channels, to_channels_last)


@dataclass
class WaveNetConfig:
    num_inputs: int = 256
    blocks: int = 4
    layers: int = 13
    kernel_size: int = 2
    residual_channels: int = 128
    skip_channels: int = 512
    end_channels: int = 512
    num_outputs: int = 256

    @property
    def dilations(self) -> list[int]:
        return [2 ** j for _ in range(self.blocks) for j in range(self.layers)]


class WaveNetLayer(nn.Module):
    channels_last = False              # see sequnet.core.models.layers.use_channels_last
    fused_gate = False                 # see sequnet.core.models.fused_gate.use_fused_gate
    crop_skips = False                 # see use_cropped_skips

    def __init__(self, channels: int, skip: int, k: int, dilation: int):
        super().__init__()
        self.dilation, self.k, self.channels = dilation, k, channels
        self.dil_conv = Conv1d(channels, 2 * channels, k, dilation=dilation)
        self.out_conv = Conv1d(channels, skip + channels, 1)

    def gated(self, x: torch.Tensor) -> torch.Tensor:
        # the same maths either way; fused (or compiled with layers.RECOMPUTE_GATE on, conv_gate), only the
        # convolution's output and the gate's product are kept for the backward pass
        return fused_gate(self.dil_conv(x)) if self.fused_gate else conv_gate(self.dil_conv, x, kept=True)

    def forward(self, x: torch.Tensor, keep: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (residual output, skip contribution), both ``dilation * (k-1)`` shorter than x; switched to
        cropped skips and given ``keep``, the skip contribution at the newest ``keep`` samples only."""
        z = self.gated(x)
        cl, n_skip = self.channels_last, self.out_conv.out_channels - self.channels
        if self.crop_skips and keep is not None and keep < z.shape[-1]:
            w, b = self.out_conv.weight, self.out_conv.bias
            skip = self.out_conv.conv(crop_front(z, keep, cl), w[:n_skip], b[:n_skip])
            res = self.out_conv.conv(z, w[n_skip:], b[n_skip:])
        else:
            skip, res = split_channels(self.out_conv(z), [n_skip, self.channels], cl)
        return add_channels(res, crop_front(x, res.shape[-1], cl), cl), skip


class WaveNet(nn.Module):
    takes_ids = True                   # forward also takes (batch, T) integer ids for one-hot inputs
    channels_last = False              # see sequnet.core.models.layers.use_channels_last
    fused_lookup = False               # see sequnet.core.models.layers.use_fused_lookup

    def __init__(self, config: WaveNetConfig):
        super().__init__()
        self.config = c = config
        self.start = Conv1d(c.num_inputs, c.residual_channels, 1)
        self.layers = nn.ModuleList(WaveNetLayer(c.residual_channels, c.skip_channels, c.kernel_size, d)
                                    for d in c.dilations)
        self.end1 = Conv1d(c.skip_channels, c.end_channels, 1)
        self.end2 = Conv1d(c.end_channels, c.num_outputs, 1)

    @property
    def receptive_field(self) -> int:
        return sizes.wavenet_rf(self.config.blocks, self.config.layers, self.config.kernel_size)

    @property
    def history(self) -> int:
        return self.receptive_field - 1

    def check_length(self, length: int) -> int:
        if length <= self.history:
            raise LengthError(f"input length {length} is too short for this WaveNet; the shortest allowed "
                              f"length is {self.history + 1} (any longer length is allowed)")
        return length - self.history

    def head(self, skip: torch.Tensor) -> torch.Tensor:
        cl = self.channels_last
        return self.end2(relu(self.end1(relu(skip, cl)), cl))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, num_inputs, T), or (batch, T) ids of one-hot inputs -> (batch, num_outputs, T - history)."""
        n_out = self.check_length(x.shape[-1])
        cl = self.channels_last
        x = input_conv(self.start, x, self.fused_lookup)
        if cl:
            x = to_channels_last(x)                             # the ids' lookup gives that layout already
        skip = 0
        for layer in self.layers:
            x, s = layer(x, keep=n_out)
            skip = add_channels(s, crop_front(skip, s.shape[-1], cl), cl) if torch.is_tensor(skip) else s
        return crop_front(self.head(skip), n_out, cl)


def use_cropped_skips(model: nn.Module, flag: bool = True) -> nn.Module:
    """Switch a WaveNet's layers to compute their skip outputs only where the model's output reads them (see the
    module's docstring): the same outputs and gradients, fewer FLOPs and less memory. Raises for a model without
    WaveNet layers."""
    set_switch(model, "crop_skips", flag)
    return model
