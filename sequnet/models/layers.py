"""Small pieces shared by the models: cropping, length checks, and the task heads.

Every model in this package follows one convention: it maps an input window to next-step logits for the last
``T - history`` positions, shape ``(batch, classes, T - history)``. Output position j predicts the element after
input position ``history + j``. ``history`` is a property of the model (0 for the zero-padded music Seq-U-Net,
the receptive-field span for the valid-convolution models).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def crop_front(x: torch.Tensor, length: int) -> torch.Tensor:
    """Keep the newest ``length`` samples: causal models align sequences at their ends."""
    if x.shape[-1] < length:
        raise ValueError(f"cannot crop a sequence of length {x.shape[-1]} to {length}")
    return x[..., x.shape[-1] - length:]


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast gives convolutions on ``device_type`` ("cuda", "cpu"), or None where it is off."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def input_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A body's first convolution over ``x``: features (batch, channels, T), or integer ids (batch, T) standing
    for their one-hot encoding over ``conv.in_channels`` classes.

    For ids the result equals ``conv(one_hot(ids))`` without building the one-hot tensor: output t sums, over the
    taps j, column ``ids[t + j]`` of tap j's weight, one ``embedding_bag`` lookup. At the piano model's training
    shape (batch 16, 36,857 samples, 256 classes) the one-hot input alone is 604 MB, kept for the backward pass,
    and its convolution is one of the largest in the network; the lookup keeps only the ids. The sums are exact
    (the convolution would round the weights to TF32 on a GPU). The result is laid out (batch, T, channels) in
    memory, channels-last.

    Under autocast the ids' result comes in autocast's dtype, as a convolution's would: summed exactly in float32
    and rounded once. Left in float32 it would promote every residual sum after it, so that each following
    convolution would cast its input down again.
    """
    if x.is_floating_point():
        return conv(x)
    if conv.stride != (1,) or conv.dilation != (1,) or conv.padding != (0,) or conv.groups != 1:
        raise ValueError("the one-hot lookup implements a plain valid convolution (stride, dilation 1, no padding)")
    k, classes = conv.kernel_size[0], conv.in_channels
    batch, length = x.shape
    n = length - (k - 1)
    # bag of output t: ids[t + j] * k + j for the taps j (rows of the weight laid out as (class, tap))
    taps = torch.arange(k, device=x.device)
    bags = x.unfold(1, k, 1) * k + taps                                   # (batch, n, k)
    table = conv.weight.permute(1, 2, 0)                                  # (class, tap, out)
    if conv.bias is not None:
        # every bag holds exactly one tap-0 row, so a bias on those rows is added once per output, inside the
        # lookup rather than in a pass over the (large) result; its gradient is summed over the small table
        table = table + conv.bias * (taps == 0)[:, None]
    out = F.embedding_bag(bags.reshape(batch * n, k), table.reshape(classes * k, conv.out_channels), mode="sum")
    out = out.view(batch, n, -1).transpose(1, 2)
    dtype = autocast_dtype(x.device.type)
    return out.to(dtype) if dtype is not None and out.dtype == torch.float32 else out


class LengthError(ValueError):
    """An input length the model cannot take; the message names the nearest allowed lengths."""


def nearest_allowed(length: int, first: int, period: int) -> str:
    """Describe the allowed lengths ``first + m * period`` (m >= 0) nearest to ``length``."""
    if length < first:
        return f"the shortest allowed length is {first}"
    m = (length - first) // period
    below, above = first + m * period, first + (m + 1) * period
    return f"the nearest allowed lengths are {below} and {above} ({first} + a multiple of {period})"


class IdModel(nn.Module):
    """A body behind an input stage for integer ids (``embed``) and an output stage (``head``): the wrapper has
    the body's length rules, and the step-wise generator drives ``embed``, the body's layers and ``head``."""

    @property
    def history(self) -> int:
        return self.body.history

    def check_length(self, length: int) -> int:
        return self.body.check_length(length)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.embed(ids)))


class TokenModel(IdModel):
    """Embedding -> dropout -> convolutional body -> decoder tied to the embedding (the language models).

    The body maps ``emsize`` channels to ``emsize`` channels; tying the decoder to the embedding is why the last
    layer of the official language-model bodies is ``emsize`` wide.
    """

    def __init__(self, body: nn.Module, vocab: int, emsize: int, emb_dropout: float, tied: bool = True,
                 init: str = "uniform"):
        super().__init__()
        self.vocab, self.emsize = vocab, emsize
        self.encoder = nn.Embedding(vocab, emsize)
        self.drop = nn.Dropout(emb_dropout)
        self.body = body
        self.decoder = nn.Linear(emsize, vocab)
        if tied:
            self.decoder.weight = self.encoder.weight
        # The official char model draws U(-0.1, 0.1), the word model N(0, 0.01); decoder bias starts at zero.
        if init == "uniform":
            nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        elif init == "normal":
            nn.init.normal_(self.encoder.weight, 0.0, 0.01)
        else:
            raise ValueError(f"init={init!r}: expected 'uniform' or 'normal'")
        nn.init.zeros_(self.decoder.bias)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(batch, time) ids -> (batch, emsize, time) features for the body."""
        return self.drop(self.encoder(ids)).transpose(1, 2)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """(batch, emsize, time) body output -> (batch, vocab, time) logits."""
        return self.decoder(h.transpose(1, 2)).transpose(1, 2)


class OneHotModel(IdModel):
    """Integer ids -> one-hot channels -> body (the raw-audio models take 256-way mu-law one-hot inputs).

    A body whose first layer runs through :func:`input_conv` (``takes_ids = True``) gets the ids themselves and
    never builds the one-hot tensor; ``embed`` still gives the one-hot channels (the generator and the probes)."""

    def __init__(self, body: nn.Module, classes: int):
        super().__init__()
        self.classes = classes
        self.body = body

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        dtype = next(self.body.parameters()).dtype
        return F.one_hot(ids, self.classes).to(dtype).transpose(1, 2)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if getattr(self.body, "takes_ids", False):
            return self.head(self.body(ids))
        return self.head(self.body(self.embed(ids)))
