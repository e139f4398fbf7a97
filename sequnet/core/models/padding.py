"""Channel padding for the residual Seq-U-Net: the same model, stored with tensor-core-friendly channel counts.

The paper's piano model has 180 features per layer. cuDNN's NHWC tensor-core convolutions want channel counts
that are multiples of 8, so for 180 channels it pads every input, weight and gradient itself, on every call
(``nhwcAddPaddingKernel``: 11 % of the bf16 training step's GPU time on an H200, benchmarks/piano_step.py).
:func:`pad_channels` instead stores each layer's channels padded with zeros once: every convolution gets zero
output rows and zero input columns for the padding, so the padded channels of every activation are exactly 0
(the gate of a zero pre-activation is tanh(0) * sigmoid(0) = 0, and the identity carries the zeros on). The
gradients of the padded weights are then exactly 0 too (each is a product with a zero activation or a zero
downstream weight), so Adam never moves them: the padded model computes, and trains, the 180-channel model.

The module stays the paper's model to everything outside the training step: ``state_dict`` gives, and
``load_state_dict`` takes, the unpadded shapes (so checkpoints are interchangeable), ``count_parameters`` counts
the unpadded parameters, and :func:`unpad_channels` restores the plain layout (for generation, or export).
WaveNet needs none of this: its channel counts (128, 256, 512, 640) are multiples of 64 already.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from sequnet.core.models.layers import OneHotModel
from sequnet.core.models.sequnet_res import GatedLayer, ResSeqUNet


def _body(model: nn.Module) -> ResSeqUNet:
    body = model.body if isinstance(model, OneHotModel) else model
    if not isinstance(body, ResSeqUNet):
        raise ValueError(f"channel padding applies to the residual Seq-U-Net, not {type(body).__name__}")
    return body


Plan = list[tuple[str, nn.Module, "list[int] | None", "list[int] | None"]]


def _plan(body: ResSeqUNet) -> Plan:
    """(name, conv, logical out-channel blocks, logical in-channel blocks) of every convolution; None for a
    dimension that is not padded (the 256 mu-law classes). A gated layer's output is [filter, gate]; an up layer's
    input is [x, upsampled], the others' is x."""
    F = body.config.features
    up = {id(layer) for block in body.up for layer in block}
    plan: Plan = [("in_conv", body.in_conv, [F], None)]
    for name, m in body.named_modules():
        if isinstance(m, GatedLayer):
            plan.append((f"{name}.conv", m.conv, [F, F], [F, F] if id(m) in up else [F]))
    plan.append(("out.1", body.out[1], None, [F]))
    return plan


def _resize(t: torch.Tensor, dim: int, blocks: list[int] | None, stored: int, grow: bool) -> torch.Tensor:
    """Each logical block of ``t`` along ``dim`` padded with zeros to ``stored`` (grow), or cut back to its logical
    size (not grow)."""
    if blocks is None:
        return t
    out = []
    for part, b in zip(t.split(blocks if grow else [stored] * len(blocks), dim), blocks):
        if grow:
            shape = list(part.shape)
            shape[dim] = stored - b
            out += [part, part.new_zeros(shape)]
        else:
            out.append(part.narrow(dim, 0, b))
    return torch.cat(out, dim)


def _convert(t: torch.Tensor, conv: nn.Module, out_blocks, in_blocks, stored: int, grow: bool,
             bias: bool = False) -> torch.Tensor:
    """A weight (or bias) of ``conv`` padded to ``stored`` channels per block, or unpadded."""
    if bias:
        return t if out_blocks is None else _resize(t, 0, out_blocks, stored, grow)
    od, idim = (1, 0) if isinstance(conv, nn.ConvTranspose1d) else (0, 1)
    return _resize(_resize(t, od, out_blocks, stored, grow), idim, in_blocks, stored, grow)


def _logical(t: torch.Tensor, conv: nn.Module, out_blocks, bias: bool) -> bool:
    """Whether ``t`` (a weight or bias of ``conv``) has the unpadded shape."""
    od = 0 if bias or not isinstance(conv, nn.ConvTranspose1d) else 1
    return out_blocks is None or t.shape[od] == sum(out_blocks)


def _state_dict_hook(body: ResSeqUNet, state_dict: dict, prefix: str, local_metadata) -> None:
    """``state_dict`` of a padded model: the unpadded tensors (checkpoints stay the paper's shapes)."""
    if not body.channel_padding:
        return
    for name, conv, out_blocks, in_blocks in _plan(body):
        for kind in ("weight", "bias"):
            key = f"{prefix}{name}.{kind}"
            if key in state_dict:
                state_dict[key] = _convert(state_dict[key], conv, out_blocks, in_blocks, body.stored_features,
                                           False, kind == "bias")


def _load_hook(body: ResSeqUNet, state_dict: dict, prefix: str, *args) -> None:
    """``load_state_dict`` into a padded model takes the unpadded tensors and pads them."""
    if not body.channel_padding:
        return
    for name, conv, out_blocks, in_blocks in _plan(body):
        for kind in ("weight", "bias"):
            key = f"{prefix}{name}.{kind}"
            if key in state_dict and _logical(state_dict[key], conv, out_blocks, kind == "bias"):
                state_dict[key] = _convert(state_dict[key], conv, out_blocks, in_blocks, body.stored_features,
                                           True, kind == "bias")


def _restore(body: ResSeqUNet, stored: int, grow: bool) -> None:
    """Replace every convolution's parameters by their padded (grow) or unpadded versions."""
    with torch.no_grad():
        for name, conv, out_blocks, in_blocks in _plan(body):
            conv.weight = nn.Parameter(_convert(conv.weight.data, conv, out_blocks, in_blocks, stored, grow)
                                       .contiguous())
            if conv.bias is not None:
                conv.bias = nn.Parameter(_convert(conv.bias.data, conv, out_blocks, in_blocks, stored, grow, True))
            size = stored if grow else body.config.features
            if out_blocks is not None:
                conv.out_channels = size * len(out_blocks)
            if in_blocks is not None:
                conv.in_channels = size * len(in_blocks)


def pad_channels(model: nn.Module, multiple: int = 8) -> nn.Module:
    """Store the residual Seq-U-Net's channels padded with zeros to a multiple of ``multiple``, in place (see the
    module's docstring). Call it before :func:`~sequnet.core.models.layers.use_channels_last` and before building
    the optimizer. Returns ``model``."""
    body = _body(model)
    if body.channel_padding:
        raise ValueError(f"the model's channels are padded already (to a multiple of {body.channel_padding})")
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple={multiple!r}: channels pad to a multiple of a positive integer")
    if not body.padding_hooks:
        body.register_state_dict_post_hook(_state_dict_hook)
        body.register_load_state_dict_pre_hook(_load_hook)
        body.padding_hooks = True
    before = sum(p.numel() for p in body.parameters())
    body.channel_padding = multiple
    _restore(body, body.stored_features, True)
    body.padding_zeros = sum(p.numel() for p in body.parameters()) - before
    return model


def unpad_channels(model: nn.Module) -> nn.Module:
    """Undo :func:`pad_channels` in place, to the plain contiguous layout; a model without padding is returned
    as it is. Switch channels-last on again afterwards if wanted."""
    body = _body(model)
    if body.channel_padding:
        _restore(body, body.stored_features, False)
        body.channel_padding, body.padding_zeros = 0, 0
    return model


def logical_tensors(model: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` keyed by ``model``'s parameter names (its gradients, say) in the paper's unpadded shapes, as
    ``state_dict`` gives the parameters themselves; for a model without padding, ``tensors`` as they are."""
    out = dict(tensors)
    body = model.body if isinstance(model, OneHotModel) else model
    if isinstance(body, ResSeqUNet):
        _state_dict_hook(body, out, "body." if body is not model else "", None)
    return out
