"""Generation for the TCN baseline, which has no cached state here: every step runs the model's own forward over
the newest ``window`` elements (the receptive field, or the TCN's scored-window minimum if that is longer).

A TCN is time-invariant and causal, with zero padding at the start of the sequence in every layer, so the last
output of a window of at least its receptive field equals the output of one forward over the whole sequence; a
prime shorter than the window is used whole (piano rolls: the layers' zero padding is the sequence's start) or,
for ids, front-padded as ``init_state`` pads it. Exact by construction, at O(window) per step instead of the
O(layers) of a cached state.

Sampling is the same as ``InferenceState.generate``'s: Gumbel-max for ids, ``argmax(logits / T + G)``; piano rolls
are sampled by ``sequnet.core.generation.rolls``.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from torch.nn.utils import parametrize

from sequnet.core.generation.state import _progress
from sequnet.core.models.layers import IdModel, OneHotModel, TokenModel
from sequnet.core.models.tcn import TCN


@contextlib.contextmanager
def steps(n: int, progress: bool):
    """The progress bar of ``n`` generated steps (None when off), with weight-normalised weights (the TCN's)
    computed once for all of them rather than at every step."""
    bar = _progress(n, progress)
    try:
        with parametrize.cached():
            yield bar
    finally:
        if bar is not None:
            bar.close()


def tcn_window(model: nn.Module) -> int:
    """The input window a step recomputes: the receptive field, and at least one scored output."""
    body = getattr(model, "body", model)
    if not isinstance(body, TCN):
        raise TypeError(f"expected a TCN or a model around one, got {type(body).__name__}")
    return max(body.receptive_field, body.history + 1)


class RecomputeState:
    """The interface of ``InferenceState`` (``logits``, ``step``, ``generate``) for a TCN over ids, and
    ``step_frame`` for a TCN over piano rolls. ``seq`` is the prime's last ``window`` elements (ids already
    padded to the window), (batch, T) ids or (batch, keys, T) frames."""

    def __init__(self, model: nn.Module, seq: torch.Tensor):
        self.model = model
        self.window = tcn_window(model)
        self.roll = seq.dim() == 3
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.seq = seq.to(self.device, self.dtype if self.roll else torch.long)[..., -self.window:]
        self.batch = seq.shape[0]
        self.classes = model.vocab if isinstance(model, TokenModel) else (
            model.classes if isinstance(model, OneHotModel) else model.config.num_outputs)
        self.steps = 0
        self.logits = self._last_logits()

    @torch.no_grad()
    def _last_logits(self) -> torch.Tensor:
        """The model's logits at the window's last position, in eval mode (training flags restored after). The
        head runs on that position alone: word-PTB's decoder has 10,000 outputs per position."""
        model = self.model
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            if isinstance(model, IdModel):
                return model.head(model.body(model.embed(self.seq))[..., -1:])[..., 0]
            return model(self.seq)[..., -1]
        finally:
            for m, mode in modes:
                m.training = mode

    @torch.no_grad()
    def _feed(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.seq.dtype).reshape(*self.seq.shape[:-1], 1)
        self.seq = torch.cat([self.seq[..., 1:] if self.seq.shape[-1] >= self.window else self.seq, x], dim=-1)
        self.logits = self._last_logits()
        self.steps += 1
        return self.logits.clone()

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed one id per sequence, (batch,); return the logits for the next element."""
        return self._feed(torch.as_tensor(ids))

    def step_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """Feed one frame per sequence, (batch, keys); return the logits for the next frame."""
        return self._feed(frame)

    @torch.no_grad()
    def generate(self, n: int, temperature: float = 1.0, greedy: bool = False,
                 generator: torch.Generator | None = None, progress: bool = True,
                 cuda_graphs: bool = False) -> torch.Tensor:
        """Sample ``n`` ids per sequence (batch, n), continuing from the state; each is fed before the next is
        drawn. ``cuda_graphs`` is accepted for the common interface and has no effect here."""
        if not greedy and not temperature > 0:
            raise ValueError(f"temperature must be positive (got {temperature}); use greedy=True for the argmax")
        out = torch.empty(self.batch, n, dtype=torch.long, device=self.device)
        with steps(n, progress) as bar:
            self._sample(out, temperature, greedy, generator, bar)
        return out

    def _sample(self, out, temperature, greedy, generator, bar) -> None:
        for s in range(out.shape[1]):
            scores = self.logits.float()
            if not greedy:
                dev = generator.device if generator is not None else self.device
                e = torch.empty(scores.shape, device=dev).exponential_(generator=generator)
                scores = scores + e.log_().mul_(-temperature).to(self.device)
            out[:, s] = scores.argmax(-1)
            self._feed(out[:, s])
            if bar is not None:
                bar.update(1)
