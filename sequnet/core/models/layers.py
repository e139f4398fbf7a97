"""Small pieces shared by the models: cropping, length checks, and the task heads.

Every model in this package follows one convention: it maps an input window to next-step logits for the last
``T - history`` positions, shape ``(batch, classes, T - history)``. Output position j predicts the element after
input position ``history + j``. ``history`` is a property of the model (0 for the zero-padded music Seq-U-Net,
the receptive-field span for the valid-convolution models).

Channels-last activations (the audio models, :func:`use_channels_last`): tensors stay (batch, channels, time)
to every reader, with memory strides (time * channels, 1, channels). A 1-D convolution runs as a 2-D one on
(batch, channels, 1, time), which these strides make a channels-last 4-D tensor, so cuDNN takes its NHWC kernels
without converting inputs, outputs or gradients. What would lose the layout is done on the (batch, time,
channels) view instead: ``torch.cat`` and ``split`` of 3-D tensors (their backward is a cat) return contiguous
tensors, and slicing's backward zero-fills a contiguous gradient; on the transposed view both come out
channels-last. Compiled, the same holds for sums, gates and rectifiers: Inductor lays out a pointwise result
contiguously in its own shape (:func:`add_channels`).
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as checkpoint

from sequnet.core.models import conv_grads, id_lookup, weight_grad

# The channels-last convolutions' input and weight gradients through the operator of conv_grads (False: through
# PyTorch's own backward of the 2-D convolution, whose gradient Inductor may hand cuDNN in strides it copies).
# Off: on an H100 the compiled TF32 Seq-U-Net step took 55.17 ms with it against 56.68 (e0ff3ff), but the bf16 step
# the trainer runs 24.25 against 24.18 (d4e5af2; results/bench/piano-step-conv-grads-gate-*-h100.json)
OPAQUE_CONV_GRADS = False


def crop_front(x: torch.Tensor, length: int, channels_last: bool = False) -> torch.Tensor:
    """Keep the newest ``length`` samples: causal models align sequences at their ends."""
    if x.shape[-1] < length:
        raise ValueError(f"cannot crop a sequence of length {x.shape[-1]} to {length}")
    return time_slice(x, slice(x.shape[-1] - length, None), channels_last)


def time_slice(x: torch.Tensor, s: slice, channels_last: bool = False) -> torch.Tensor:
    """``x[..., s]``; channels-last, taken on the (batch, time, channels) view so that the backward's zero-filled
    gradient is channels-last too."""
    if channels_last:
        return x.transpose(1, 2)[:, s].transpose(1, 2)
    return x[..., s]


def cat_channels(xs: list[torch.Tensor], channels_last: bool = False) -> torch.Tensor:
    """``torch.cat(xs, dim=1)``, channels-last if asked (a 3-D cat otherwise returns a contiguous tensor)."""
    if channels_last:
        return torch.cat([x.transpose(1, 2) for x in xs], dim=2).transpose(1, 2)
    return torch.cat(xs, dim=1)


def add_channels(a: torch.Tensor, b: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """``a + b``; channels-last, added on the (batch, time, channels) views. Eager, the result is the same either
    way; compiled, Inductor lays out a sum it is free to place contiguously in its own shape, so on the
    (batch, channels, time) views it wrote the residual streams channels-first as well as the channels-last copy
    the next convolution reads (41 of the 109 kernels of the compiled bf16 piano Seq-U-Net's forward stored a sum
    twice, Inductor's code from an H100 at 1c69402)."""
    return _on_time_view(torch.add, a, b) if channels_last else a + b


def _on_time_view(fn, *xs: torch.Tensor) -> torch.Tensor:
    """``fn`` of the (batch, time, channels) views of ``xs``, viewed back as (batch, channels, time)."""
    return fn(*(x.transpose(1, 2) for x in xs)).transpose(1, 2)


def split_channels(x: torch.Tensor, sizes: list[int], channels_last: bool = False) -> tuple[torch.Tensor, ...]:
    """``x.split(sizes, dim=1)``; channels-last, split on the transposed view so that the backward's cat of the
    parts' gradients is channels-last too."""
    if channels_last:
        return tuple(part.transpose(1, 2) for part in x.transpose(1, 2).split(sizes, dim=2))
    return x.split(sizes, dim=1)


def gate(y: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """WaveNet's gated activation ``tanh(f) * sigmoid(g)`` of the two channel halves ``(f, g)`` of ``y``;
    channels-last, on the (batch, time, channels) views (see :func:`add_channels`)."""
    half = y.shape[1] // 2
    f, g = split_channels(y, [half, half], channels_last)
    product = lambda f, g: torch.tanh(f) * torch.sigmoid(g)      # noqa: E731
    return _on_time_view(product, f, g) if channels_last else product(f, g)


# Compiled (under torch.compile), the gate of a convolution's output is recomputed in the backward pass from the
# convolution's output before its bias (conv_gate); False stores tanh(f) and sigmoid(g) as the partitioner chooses
# to. Off: on an H100 the compiled TF32 Seq-U-Net step took 54.16 ms with it against 56.68 (e0ff3ff), but the bf16
# steps the trainer runs were slower, the Seq-U-Net's 27.92 ms against 24.18 and WaveNet's 99.68 against 91.94 with
# the operator too (d4e5af2)
RECOMPUTE_GATE = False


def conv_gate(conv: nn.Module, x: torch.Tensor, s: slice | None = None, kept: bool = False) -> torch.Tensor:
    """``gate(conv(x)[..., s])``, channels-last as ``conv`` is. With RECOMPUTE_GATE on, compiled and channels-last, the
    bias is added inside a checkpointed region (``torch.utils.checkpoint``), so that the backward pass keeps the
    convolution's own output (already in memory) and recomputes the gate from it. Otherwise AOTAutograd's partitioner
    kept tanh(f) and sigmoid(g), which the forward's gate kernel then wrote beside the gate's output: 3 values of the
    channels' width a sample instead of 1 (Inductor's code of the compiled piano Seq-U-Net, H100, 2026-12-05). ``kept``:
    the backward pass needs the gate's output itself (WaveNet's, the input of its 1x1 convolution), which is then kept,
    not recomputed (the partitioner, which counts bytes kept, would recompute it from the convolution's output, reading
    twice the bytes it writes)."""
    cl = conv.channels_last
    if not (RECOMPUTE_GATE and cl and conv.bias is not None and torch.compiler.is_compiling()):
        y = conv(x)
        return gate(time_slice(y, s, cl) if s is not None else y, cl)

    def biased_gate(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        # in the convolution's dtype, as the convolution adds it (under bf16 autocast a float32 bias made the
        # gates and every activation after them float32: the compiled bf16 Seq-U-Net step took 29.47 ms against
        # 24.35, H100, e0ff3ff)
        bias = bias.to(y.dtype)
        y = _on_time_view(lambda t: t + bias, y) if s is None else time_slice(y, s, cl).transpose(1, 2).add(bias)
        return gate(y if s is None else y.transpose(1, 2), cl)

    context = functools.partial(checkpoint.create_selective_checkpoint_contexts, _keep_product if kept else _none)
    return checkpoint.checkpoint(biased_gate, conv.conv(x, conv.weight, None), conv.bias, use_reentrant=False,
                                 context_fn=context)


def _keep_product(ctx, op, *args, **kwargs):
    """Keep the gate's product tanh(f) * sigmoid(g); recompute the rest (selective checkpointing's policy)."""
    policy = checkpoint.CheckpointPolicy
    return policy.MUST_SAVE if op is torch.ops.aten.mul.Tensor else policy.PREFER_RECOMPUTE


def _none(ctx, op, *args, **kwargs):
    return checkpoint.CheckpointPolicy.PREFER_RECOMPUTE


def relu(x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """``F.relu``; channels-last, on the (batch, time, channels) view (see :func:`add_channels`)."""
    return _on_time_view(F.relu, x) if channels_last else F.relu(x)


class ReLU(nn.ReLU):
    """``nn.ReLU`` with the channels-last switch of :class:`Conv1d` (:func:`relu`)."""

    channels_last = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu(x, self.channels_last)


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` that, switched channels-last, calls the 2-D convolution PyTorch runs for it itself.
    ``F.conv1d`` first makes a 3-D input contiguous (PyTorch's guard against permuted inputs), so a channels-last
    input would be copied to (batch, channels, time) there and back to channels-last for cuDNN's NHWC kernels."""

    channels_last = False
    mm_weight_grad = False             # see use_mm_weight_grad
    weight_grad_kernel = "products"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.weight, self.bias)

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """This convolution with ``weight`` and ``bias`` in place of its own (WaveNet's skip outputs use a slice of
        its output channels)."""
        if not self.channels_last or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return self._conv_forward(x, weight, bias)
        if self.mm_weight_grad and mm_applies(self):
            return weight_grad.conv(x, weight, bias, self.stride[0], self.dilation[0], False, self.weight_grad_kernel)
        if OPAQUE_CONV_GRADS and mm_applies(self):
            return conv_grads.conv(x, weight, bias, self.stride[0], self.dilation[0], False)
        return F.conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, *self.stride), (0, *self.padding),
                        (1, *self.dilation), self.groups).squeeze(2)


class ConvTranspose1d(nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` with the channels-last switch of :class:`Conv1d`."""

    channels_last = False
    mm_weight_grad = False             # see use_mm_weight_grad
    weight_grad_kernel = "products"

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if not self.channels_last or output_size is not None:
            return super().forward(x, output_size)
        return self.conv(x, self.weight, self.bias)

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """This channels-last convolution with ``weight`` and ``bias`` in place of its own (:func:`conv_gate`
        leaves the bias out)."""
        if not self.channels_last:
            return F.conv_transpose1d(x, weight, bias, self.stride, self.padding, self.output_padding, self.groups,
                                      self.dilation)
        if self.mm_weight_grad and mm_applies(self):
            return weight_grad.conv(x, weight, bias, self.stride[0], self.dilation[0], True, self.weight_grad_kernel)
        if OPAQUE_CONV_GRADS and mm_applies(self):
            return conv_grads.conv(x, weight, bias, self.stride[0], self.dilation[0], True)
        return F.conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, *self.stride), (0, *self.padding),
                                  (0, *self.output_padding), self.groups, (1, *self.dilation)).squeeze(2)


def mm_applies(conv: nn.Module) -> bool:
    """Whether ``conv``'s weight gradient can be taken by ``weight_grad``'s products: valid and ungrouped."""
    return (conv.padding == (0,) and conv.groups == 1
            and (not isinstance(conv, nn.ConvTranspose1d) or conv.output_padding == (0,)))


def use_mm_weight_grad(model: nn.Module, flag: bool = True, kernel: str = "products") -> nn.Module:
    """Switch the channels-last convolutions of ``model`` (the audio models) to weight gradients by ``kernel``
    (``weight_grad.KERNELS``: cuBLAS's batched products, one Triton launch a convolution on a GPU, or cuDNN's from
    channels-first copies) instead of cuDNN's kernels on the channels-last activations
    (``sequnet.core.models.weight_grad``): the same gradients up to rounding. Raises for a model without the switch
    or an unknown kernel; acts only where channels-last is on."""
    if kernel not in weight_grad.KERNELS:
        raise ValueError(f"kernel={kernel!r}: expected one of {weight_grad.KERNELS}")
    set_switch(model, "mm_weight_grad", flag)
    for m in _switched(model, "mm_weight_grad"):
        m.weight_grad_kernel = kernel
    return model


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` (batch, channels, time) with strides (time * channels, 1, channels); no copy if it has them."""
    return x.transpose(1, 2).contiguous().transpose(1, 2)


def use_channels_last(model: nn.Module, flag: bool = True) -> nn.Module:
    """Switch ``model``'s channels-last activations on or off (see the module's docstring). The convolutions'
    weights move to the matching layout (cuDNN would otherwise convert them, and their gradients, every step):
    switch before building the optimizer. Raises for a model without the switch.

    Only the models built from this module's :class:`Conv1d` and :class:`ConvTranspose1d` keep the layout
    throughout (the audio models); a plain ``nn.Conv1d`` still computes the same, with copies."""
    set_switch(model, "channels_last", flag)
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
            m.weight.data = to_channels_last(m.weight.data) if flag else m.weight.data.contiguous()
    return model


def _switched(model: nn.Module, name: str) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(getattr(type(m), name, None), bool)]


def has_switch(model: nn.Module, name: str) -> bool:
    """Whether some submodule of ``model`` has the boolean switch ``name`` ("channels_last", "fused_gate")."""
    return bool(_switched(model, name))


def set_switch(model: nn.Module, name: str, flag: bool) -> None:
    """Set the boolean attribute ``name`` of every submodule that has one; raise if none has."""
    modules = _switched(model, name)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no {name!r} switch")
    for m in modules:
        setattr(m, name, bool(flag))


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast gives convolutions on ``device_type`` ("cuda", "cpu"), or None where it is off."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def use_fused_lookup(model: nn.Module, flag: bool = True) -> nn.Module:
    """Switch the first convolution over ids of ``model``'s audio body to the Triton lookup of
    ``sequnet.core.models.id_lookup`` (on a GPU), or back to ``embedding_bag``. Raises for a model without one."""
    set_switch(model, "fused_lookup", flag)
    return model


def input_conv(conv: nn.Conv1d, x: torch.Tensor, fused: bool = False) -> torch.Tensor:
    """A body's first convolution over ``x``: features (batch, channels, T), or integer ids (batch, T) standing
    for their one-hot encoding over ``conv.in_channels`` classes (``fused``: through the Triton lookup where it
    can run, see ``sequnet.core.models.id_lookup``).

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
    taps = torch.arange(k, device=x.device)
    table = conv.weight.permute(1, 2, 0)                                  # (class, tap, out)
    if conv.bias is not None:
        # every bag holds exactly one tap-0 row, so a bias on those rows is added once per output, inside the
        # lookup rather than in a pass over the (large) result; its gradient is summed over the small table
        table = table + conv.bias * (taps == 0)[:, None]
    table = table.reshape(classes * k, conv.out_channels)
    dtype = autocast_dtype(x.device.type)
    if fused and id_lookup.fusable(x, table, dtype or table.dtype):
        return id_lookup.lookup(x, table, k, dtype or table.dtype)
    # bag of output t: ids[t + j] * k + j for the taps j (rows of the weight laid out as (class, tap))
    bags = x.unfold(1, k, 1) * k + taps                                   # (batch, n, k)
    out = F.embedding_bag(bags.reshape(batch * n, k), table, mode="sum")
    out = out.view(batch, n, -1).transpose(1, 2)
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
