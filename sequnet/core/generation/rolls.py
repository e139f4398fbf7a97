"""Generation for the music models: piano rolls in, one frame of 88 independent keys out per step.

    frames = generate_rolls(model, prime, 64, temperature=1.0)     # (batch, 88, T + 64), prime included

The music Seq-U-Net (zero-padded, ``SeqUNetConfig(padded=True)``) runs the cached ``SeqUNetState`` over frames;
the TCN recomputes its receptive field each step (``recompute``). A key sounds in the next frame with probability
``sigmoid(logit / temperature)``, each key drawn independently as the models are trained (binary cross-entropy
per key); ``greedy`` takes every key whose probability is above one half (logit > 0), the "argmax" of a frame.
"""
from __future__ import annotations

import numbers

import torch
import torch.nn as nn

from sequnet.core.generation.recompute import RecomputeState, steps
from sequnet.core.generation.sequnet_state import SeqUNetState
from sequnet.core.models.sequnet import SeqUNet
from sequnet.core.models.tcn import TCN


class RollModel(nn.Module):
    """A bare music model seen as the generator's model: ``body`` and ``classes`` (the keys it predicts)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body
        self.classes = body.config.num_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def check_roll_prime(model: nn.Module, prime: torch.Tensor) -> None:
    """Refuse a prime the music model cannot read: (batch, keys, T) with T >= 1 and values in {0, 1}."""
    if not isinstance(model, (SeqUNet, TCN)) or not getattr(model.config, "num_outputs", None):
        raise TypeError(f"expected a music model (a zero-padded SeqUNet or a TCN with num_outputs), got "
                        f"{type(model).__name__}")
    keys = model.config.num_inputs
    if not isinstance(prime, torch.Tensor) or prime.dim() != 3 or prime.shape[1] != keys:
        shape = tuple(prime.shape) if isinstance(prime, torch.Tensor) else type(prime).__name__
        raise ValueError(f"prime must be a piano roll of shape (batch, {keys}, time), got {shape}; use "
                         f"roll.unsqueeze(0) for a single ({keys}, time) roll")
    if prime.shape[0] < 1 or prime.shape[2] < 1:
        raise ValueError(f"prime is empty (shape {tuple(prime.shape)}): give at least one frame of one sequence")
    if not bool(((prime == 0) | (prime == 1)).all()):
        raise ValueError("prime must be a binary piano roll (every value 0 or 1)")


def init_roll_state(model: nn.Module, prime: torch.Tensor, dtype: torch.dtype | None = None):
    """The state after the prime (batch, keys, T): one forward over the whole prime (Seq-U-Net; its save pass;
    a single frame is preceded by the 2^(L-1) silent frames the model pads it with) or over its last receptive
    field (TCN). ``state.logits`` (batch, keys) predict the frame after the prime;
    ``state.step_frame(frame)`` feeds the next one."""
    check_roll_prime(model, prime)
    param = next(model.parameters())
    prime = prime.to(param.device, param.dtype)
    if isinstance(model, TCN):
        return RecomputeState(model, prime)
    if not model.config.padded:
        raise NotImplementedError("a music Seq-U-Net is zero-padded (SeqUNetConfig(padded=True)); a valid-mode "
                                  "one takes ids through a TokenModel (see init_state)")
    if prime.shape[2] == 1:
        # The model runs on at least 2^(L-1) + 1 frames and front-pads one frame with 2^(L-1) silent ones; a
        # sequence continuing it would need none. Writing them out keeps the generation that of one sequence:
        # silence, then the prime and what follows.
        prime = torch.cat([prime.new_zeros(prime.shape[0], prime.shape[1], model.cycle), prime], dim=2)
    return SeqUNetState(RollModel(model), prime, dtype)


@torch.no_grad()
def sample_frames(state, n: int, temperature: float = 1.0, greedy: bool = False,
                  generator: torch.Generator | None = None, progress: bool = True) -> torch.Tensor:
    """Continue a roll state by ``n`` frames, (batch, keys, n) float in {0, 1}; each frame is fed before the next
    is drawn, so the state is ready for another call."""
    out = torch.empty(state.batch, state.logits.shape[1], n, device=state.device)
    with steps(n, progress) as bar:
        _sample(state, out, temperature, greedy, generator, bar)
    return out


def _sample(state, out, temperature, greedy, generator, bar) -> None:
    for s in range(out.shape[2]):
        logits = state.logits.float()
        if greedy:
            frame = (logits > 0).float()
        else:
            dev = generator.device if generator is not None else state.device
            u = torch.rand(logits.shape, generator=generator, device=dev).to(state.device)
            frame = (u < torch.sigmoid(logits / temperature)).float()
        out[:, :, s] = frame
        state.step_frame(frame)
        if bar is not None:
            bar.update(1)


def generate_rolls(model: nn.Module, prime: torch.Tensor, n_frames: int, temperature: float = 1.0,
                   greedy: bool = False, generator: torch.Generator | None = None, progress: bool = True,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """Continue each roll of ``prime`` (batch, keys, T) by ``n_frames``; return prime + continuation, (batch,
    keys, T + n_frames) float32 on the model's device. Arguments are checked before the model runs."""
    if isinstance(n_frames, bool) or not isinstance(n_frames, numbers.Integral) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer (frames to generate), got {n_frames!r}")
    if not greedy and not (isinstance(temperature, numbers.Real) and temperature > 0):
        raise ValueError(f"temperature must be a positive number (got {temperature!r}); use greedy=True for the "
                         f"most likely keys")
    state = init_roll_state(model, prime, dtype)
    new = sample_frames(state, int(n_frames), temperature, greedy, generator, progress)
    return torch.cat([prime.to(new.device, torch.float32), new], dim=2)
