"""What a state is built from: the prime, checked and cut to the window the save pass reads, the save pass itself
(the model's own forward, with hooks that record the layers' inputs), and the folded maps of the first and the
last layers (the input embedding, the head)."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from sequnet.core.models.layers import OneHotModel, TokenModel


def embedding_matrix(model: nn.Module) -> torch.Tensor:
    """(classes, channels) input features per id: the embedding of a TokenModel, the identity for one-hot."""
    if isinstance(model, TokenModel):
        return model.encoder.weight.detach().double()
    if isinstance(model, OneHotModel):
        return torch.eye(model.classes, dtype=torch.float64, device=next(model.parameters()).device)
    raise TypeError(f"expected a TokenModel or OneHotModel, got {type(model).__name__}")


def fold_head(model: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Compose the body's last linear map (weight (out, in), bias) with the model's head (float64)."""
    weight, bias = weight.detach().double(), bias.detach().double()
    if isinstance(model, TokenModel):
        dec_w, dec_b = model.decoder.weight.detach().double(), model.decoder.bias.detach().double()
        return dec_w @ weight, dec_w @ bias + dec_b
    return weight, bias


def save_pass(model: nn.Module, window: torch.Tensor, hooks: dict[nn.Module, Callable]) -> torch.Tensor:
    """Run the model's own forward over ``window`` in eval mode, with cuDNN's deterministic algorithms and with
    forward pre-hooks that record the layers' inputs; return the logits of the last position. Hooks, training
    flags and cuDNN's flag are restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    handles = [m.register_forward_pre_hook(fn, with_kwargs=True) for m, fn in hooks.items()]
    deterministic = torch.backends.cudnn.deterministic
    # For a transposed convolution cuDNN may pick a data-gradient algorithm that sums in an arbitrary order: two
    # states built alike from one prime differed by 1 float32 ulp in the windows of the Seq-U-Net's transposed
    # layers of levels 5-9 (H100, batch 28, 2026-12-06), so a seeded generation could differ between runs.
    torch.backends.cudnn.deterministic = True
    model.eval()
    try:
        with torch.no_grad():
            logits = model(window)
    finally:
        torch.backends.cudnn.deterministic = deterministic
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return logits[:, :, -1]


def check_prime(prime: torch.Tensor, classes: int, pad_id: int) -> None:
    """Refuse a prime that the model cannot read, before anything runs on its device: an id outside the
    vocabulary would otherwise fail deep inside an embedding ("index out of range in self"), or as a device-side
    assert that breaks the CUDA context, and an empty prime would silently generate from padding alone."""
    if not isinstance(prime, torch.Tensor):
        raise TypeError(f"prime must be a torch.Tensor of integer ids, shape (batch, time); got {type(prime).__name__}")
    if prime.is_floating_point() or prime.is_complex() or prime.dtype == torch.bool:
        raise TypeError(f"prime must hold integer ids (e.g. torch.long), got dtype {prime.dtype}")
    if prime.dim() != 2:
        raise ValueError(f"prime must be (batch, time) integer ids, got shape {tuple(prime.shape)}; "
                         f"use prime.unsqueeze(0) for a single sequence")
    if prime.shape[0] < 1:
        raise ValueError(f"prime has a batch of {prime.shape[0]} sequences, shape {tuple(prime.shape)}; "
                         f"give at least one sequence")
    if prime.shape[1] < 1:
        raise ValueError(f"prime is empty (shape {tuple(prime.shape)}): give at least one id per sequence to "
                         f"continue from; for an unconditional start use one padding id, e.g. "
                         f"torch.full(({prime.shape[0]}, 1), {pad_id})")
    low, high = int(prime.min()), int(prime.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise ValueError(f"prime holds id {bad}, outside the model's vocabulary 0..{classes - 1} "
                         f"(ids found: {low}..{high}); map the input through the model's vocabulary first")
    if not 0 <= pad_id < classes:
        raise ValueError(f"pad_id={pad_id} is outside the model's vocabulary 0..{classes - 1}")


def prime_window(prime: torch.Tensor, length: int, pad_id: int, device: torch.device) -> torch.Tensor:
    """The last ``length`` ids of the prime, front-padded with ``pad_id`` when the prime is shorter (a prime
    already accepted by ``check_prime``)."""
    prime = prime.to(device=device, dtype=torch.long)
    if prime.shape[1] >= length:
        return prime[:, prime.shape[1] - length:]
    pad = torch.full((prime.shape[0], length - prime.shape[1]), pad_id, dtype=torch.long, device=device)
    return torch.cat([pad, prime], dim=1)
