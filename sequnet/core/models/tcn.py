"""The Temporal Convolutional Network baseline (Bai, Kolter and Koltun, 2018), as the official code uses it.

Per level i a temporal block with dilation 2^i: [weight-normalised causal conv -> ReLU -> dropout] x 2 plus a
residual (a 1x1 conv where the width changes), then ReLU. Causal padding is applied at the front, which is
what the reference's pad-both-sides-then-chomp computes.

``history`` is the number of leading inputs whose outputs are not returned (not scored): 80 for the char model
(400 inputs, 320 scored), 72 for the word model, 0 for music.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from sequnet.core import sizes
from sequnet.core.models.layers import LengthError, crop_front


@dataclass
class TCNConfig:
    num_inputs: int
    channels: tuple[int, ...]
    kernel_size: int = 3
    dropout: float = 0.0
    num_outputs: int | None = None      # adds Linear(channels[-1], num_outputs) (music); None: features out (LM)
    history: int = 0

    def __post_init__(self):
        self.channels = tuple(self.channels)


class TemporalBlock(nn.Module):
    def __init__(self, n_in: int, n_out: int, k: int, dilation: int, dropout: float):
        super().__init__()
        self.pad = (k - 1) * dilation
        self.conv1 = weight_norm(nn.Conv1d(n_in, n_out, k, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(n_out, n_out, k, dilation=dilation))
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.downsample = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else None
        if self.downsample is not None:
            # The reference also draws the two convs from N(0, 0.01), but weight norm recomputes their weights
            # from g and v on every forward, so only this 1x1 conv is affected.
            nn.init.normal_(self.downsample.weight, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(F.relu(self.conv1(F.pad(x, (self.pad, 0)))))
        h = self.drop(F.relu(self.conv2(F.pad(h, (self.pad, 0)))))
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(h + res)


class TCN(nn.Module):
    def __init__(self, config: TCNConfig):
        super().__init__()
        self.config = c = config
        self.blocks = nn.ModuleList(
            TemporalBlock(c.num_inputs if i == 0 else c.channels[i - 1], c.channels[i], c.kernel_size, 2 ** i,
                          c.dropout)
            for i in range(len(c.channels)))
        self.linear = nn.Linear(c.channels[-1], c.num_outputs) if c.num_outputs else None

    @property
    def history(self) -> int:
        return self.config.history

    @property
    def receptive_field(self) -> int:
        return sizes.tcn_rf(len(self.config.channels), self.config.kernel_size)

    def check_length(self, length: int) -> int:
        if length <= self.history:
            raise LengthError(f"input length {length} is too short: this TCN scores the positions after its first "
                              f"{self.history}, so the shortest allowed length is {self.history + 1}")
        return length - self.history

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, num_inputs, T) -> (batch, channels[-1] or num_outputs, T - history)."""
        n_out = self.check_length(x.shape[-1])
        for block in self.blocks:
            x = block(x)
        x = crop_front(x, n_out)
        if self.linear is not None:
            x = self.linear(x.transpose(1, 2)).transpose(1, 2)
        return x
