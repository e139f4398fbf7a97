"""The base Seq-U-Net: a causal 1-D U-Net with strided convolutions down and transposed convolutions up.

Per level i < L-1 a down block (conv -> shortcut, stride-2 conv -> next level), a bottleneck conv at level L-1,
and per level an up block (stride-2 transposed conv, front-cropped shortcut concatenated, conv), then a 1x1
output conv. Every conv but the output conv is followed by LeakyReLU(0.01) and dropout.

Two length modes, as in the official code:
* valid (``padded=False``, the language models): no padding anywhere; the input must be one of the planned
  lengths ``I(b)`` and the output is its last ``I - history`` positions, ``history = (k-1)(5 * 2^(L-1) - 4)``.
* zero-padded (``padded=True``, the music models): every conv front-pads k-1 zeros, the input is front-padded to
  ``2^(L-1) m + 1`` samples, and the output has the input's length (``history = 0``).
Channels are given per level; the official language models make the last (bottleneck) one ``emsize`` wide.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from sequnet.core import sizes
from sequnet.core.models.layers import LengthError, crop_front, nearest_allowed


@dataclass
class SeqUNetConfig:
    num_inputs: int
    channels: tuple[int, ...]           # one entry per level; len(channels) = L
    num_outputs: int
    kernel_size: int = 3
    dropout: float = 0.0
    padded: bool = False                # zero-padded "same" mode (music) instead of valid convolutions

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if len(self.channels) < 2:
            raise ValueError("a Seq-U-Net needs at least 2 levels")
        if self.kernel_size % 2 == 0:
            # An even kernel would misalign the stride-2 grid with the newest sample (the official code asserts).
            raise ValueError(f"kernel_size={self.kernel_size}: the base Seq-U-Net needs an odd kernel")

    @property
    def levels(self) -> int:
        return len(self.channels)


class ConvBlock(nn.Module):
    """Conv (or stride-2 transposed conv) -> LeakyReLU -> dropout, with optional causal zero padding."""

    def __init__(self, n_in: int, n_out: int, k: int, stride: int, dropout: float, padded: bool,
                 transpose: bool = False):
        super().__init__()
        self.k, self.padded, self.transpose = k, padded, transpose
        cls = nn.ConvTranspose1d if transpose else nn.Conv1d
        self.conv = cls(n_in, n_out, k, stride=stride)
        self.act = nn.LeakyReLU(0.01)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transpose:
            y = self.conv(x)
            # 2(N-1)+k samples: drop k-1 at the back (they would see the future) and, in valid mode, k-1 at the
            # front (they see the zero boundary); the padded mode keeps them so that N coarse -> 2N-1 fine.
            front = 0 if self.padded else self.k - 1
            y = y[..., front: y.shape[-1] - (self.k - 1)]
        else:
            if self.padded:
                x = F.pad(x, (self.k - 1, 0))
            y = self.conv(x)
        return self.drop(self.act(y))


class DownBlock(nn.Module):
    def __init__(self, n_in: int, n_out: int, k: int, dropout: float, padded: bool):
        super().__init__()
        self.conv1 = ConvBlock(n_in, n_out, k, 1, dropout, padded)
        self.conv2 = ConvBlock(n_out, n_out, k, 2, dropout, padded)

    def forward(self, x):
        shortcut = self.conv1(x)
        return self.conv2(shortcut), shortcut


class UpBlock(nn.Module):
    def __init__(self, n_in: int, n_out: int, n_short: int, k: int, dropout: float, padded: bool):
        super().__init__()
        self.upconv = ConvBlock(n_in, n_in, k, 2, dropout, padded, transpose=True)
        self.conv = ConvBlock(n_in + n_short, n_out, k, 1, dropout, padded)

    def forward(self, x, shortcut):
        up = self.upconv(x)
        return self.conv(torch.cat([up, crop_front(shortcut, up.shape[-1])], dim=1))


class SeqUNet(nn.Module):
    def __init__(self, config: SeqUNetConfig):
        super().__init__()
        self.config = c = config
        k, p, ch = c.kernel_size, c.dropout, c.channels
        L = c.levels
        self.down = nn.ModuleList(
            DownBlock(c.num_inputs if i == 0 else ch[i - 1], ch[i], k, p, c.padded) for i in range(L - 1))
        self.bottleneck = ConvBlock(ch[L - 2], ch[L - 1], k, 1, p, c.padded)
        # up[i] works at level i; it runs deepest first.
        self.up = nn.ModuleList(UpBlock(ch[i + 1], ch[i], ch[i], k, p, c.padded) for i in range(L - 1))
        self.out = nn.Conv1d(ch[0], c.num_outputs, 1)
        if not c.padded:
            self._first, self._first_out = sizes.sequnet_valid_io(L, k)

    @property
    def history(self) -> int:
        """Leading input positions that get no output (max RF - 1 in valid mode, 0 when zero-padded)."""
        return 0 if self.config.padded else self._first - self._first_out

    @property
    def cycle(self) -> int:
        return 2 ** (self.config.levels - 1)

    def check_length(self, length: int) -> int:
        """Return the number of outputs for an input of ``length`` samples, or raise LengthError."""
        if self.config.padded:
            if length < 1:
                raise LengthError(f"input length {length}: need at least one sample")
            return length
        if length < self._first or (length - self._first) % self.cycle:
            raise LengthError(f"input length {length} is not allowed for this valid-mode Seq-U-Net; "
                              + nearest_allowed(length, self._first, self.cycle))
        return length - self.history

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, num_inputs, T) -> (batch, num_outputs, T - history)."""
        n_out = self.check_length(x.shape[-1])
        if self.config.padded:
            internal = sizes.sequnet_padded_internal_length(x.shape[-1], self.config.levels)
            x = F.pad(x, (internal - x.shape[-1], 0))
        shortcuts = []
        for block in self.down:
            x, s = block(x)
            shortcuts.append(s)
        x = self.bottleneck(x)
        for block, s in zip(reversed(self.up), reversed(shortcuts)):
            x = block(x, s)
        return crop_front(self.out(x), n_out)
