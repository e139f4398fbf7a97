"""Fast step-wise (cached) autoregressive generation for the Seq-U-Nets and the WaveNet baseline.

    state = init_state(model, prime)          # the "save" pass: one normal forward over the prime
    state.logits                              # (batch, classes): the next element after the prime
    logits = state.step(ids)                  # feed one element per sequence (teacher forcing)
    ids = state.generate(1000)                # or sample a continuation, (batch, 1000)

    ids = generate(model, prime, 16000, temperature=0.95)   # prime + continuation, (batch, T + n)

Everything a generation carries between steps lives in the state object; the model is only read. Two states of
one model are independent, and a new state always starts in the right phase of the Seq-U-Net's clock (the
official code kept the clock on the module and never reset it).

Piano rolls (the music models) go through ``generate_rolls`` (``rolls``); the TCN baseline has no cached state and
recomputes its receptive field at every step (``recompute``), for ids and rolls alike.

A Seq-U-Net step updates only the levels whose clock ticks, on average fewer than two
(``state.mean_levels_per_step``); a WaveNet step updates all its layers. See ``sequnet_state`` and
``wavenet_state`` for how the windows are kept, and ``state`` for the sampling and CUDA-graph driver.
"""
from __future__ import annotations

import copy

import numbers

import torch
import torch.nn as nn

from sequnet.core import sizes
from sequnet.core.generation.recompute import RecomputeState, tcn_window
from sequnet.core.generation.rolls import generate_rolls, init_roll_state, sample_frames
from sequnet.core.generation.sequnet_state import SeqUNetState
from sequnet.core.generation.priming import check_prime, prime_window
from sequnet.core.generation.state import InferenceState
from sequnet.core.generation.wavenet_state import WaveNetState
from sequnet.core.models.layers import OneHotModel, TokenModel
from sequnet.core.models.sequnet import SeqUNet
from sequnet.core.models.sequnet_res import ResSeqUNet
from sequnet.core.models.tcn import TCN
from sequnet.core.models.wavenet import WaveNet

__all__ = ["generate", "generate_rolls", "init_state", "init_roll_state", "sample_frames", "minimal_window",
           "default_pad_id", "InferenceState", "RecomputeState", "SeqUNetState", "WaveNetState"]


def minimal_window(model: nn.Module) -> int:
    """The shortest input the save pass can take: a residual/base Seq-U-Net's smallest allowed length (one cycle
    of outputs for the residual net), WaveNet's receptive field, or the window a TCN recomputes."""
    body = getattr(model, "body", None)
    if isinstance(body, ResSeqUNet):
        return body.plan.input_length
    if isinstance(body, SeqUNet) and not body.config.padded:
        return sizes.sequnet_valid_io(body.config.levels, body.config.kernel_size)[0]
    if isinstance(body, WaveNet):
        return body.history + 1
    if isinstance(body, TCN):
        return tcn_window(body)
    raise NotImplementedError(f"step-wise generation supports OneHotModel/TokenModel around ResSeqUNet, a "
                              f"valid-mode SeqUNet, WaveNet or a TCN (music models: generate_rolls); got "
                              f"{type(model).__name__} around {type(body).__name__}")


def default_pad_id(model: nn.Module) -> int:
    """Front padding for short primes: mu-law silence (classes // 2, i.e. 128 of 256) for one-hot audio models,
    as the official code; id 0 for token models (pass ``pad_id``, e.g. the id of ``<eos>``, to choose)."""
    return model.classes // 2 if isinstance(model, OneHotModel) else 0


def init_state(model: nn.Module, prime: torch.Tensor, pad_id: int | None = None,
               dtype: torch.dtype | None = None, kernel: str = "auto") -> InferenceState:
    """Build the inference state with one forward over the last ``minimal_window(model)`` ids of ``prime``
    (batch, T), front-padded with ``pad_id`` when T is shorter. Any allowed window ending at the prime's last
    element gives the same state, so the shortest is used. ``dtype`` (default: the model's) sets the precision
    of the cached weights and windows; the save pass runs in the model's own precision. ``kernel`` pins the
    products' implementation (``kernels.KERNELS``; "auto": by batch size; ``tuning.fastest_kernel`` times them;
    for WaveNet also "chain": all its dilated layers in one launch, ``wavenet_chain``).
    The prime is checked first (``check_prime``): at least one sequence of at least one id, every id in the
    model's vocabulary."""
    if not isinstance(model, (OneHotModel, TokenModel)):
        raise TypeError(f"expected a OneHotModel or TokenModel (see sequnet.build_model), got {type(model).__name__}")
    if getattr(model.body, "channel_padding", 0):
        # the state reads each layer's weights: give it the paper's shapes, not the training layout's zero padding
        from sequnet.core.models.padding import unpad_channels
        model = unpad_channels(copy.deepcopy(model))
    length = minimal_window(model)
    pad = default_pad_id(model) if pad_id is None else pad_id
    check_prime(prime, model.vocab if isinstance(model, TokenModel) else model.classes, pad)
    window = prime_window(prime, length, pad, next(model.parameters()).device)
    if isinstance(model.body, TCN):
        if kernel != "auto":
            raise ValueError(f"kernel={kernel!r}: a TCN has no cached state (it recomputes its window with the "
                             f"model's own forward); use kernel='auto'")
        return RecomputeState(model, window)
    cls = WaveNetState if isinstance(model.body, WaveNet) else SeqUNetState
    return cls(model, window, dtype, kernel)


def generate(model: nn.Module, prime: torch.Tensor, n_samples: int, temperature: float = 1.0, greedy: bool = False,
             generator: torch.Generator | None = None, progress: bool = True, cuda_graphs: bool = False,
             pad_id: int | None = None, dtype: torch.dtype | None = None, kernel: str = "auto") -> torch.Tensor:
    """Continue each sequence of ``prime`` (batch, T) by ``n_samples`` ids; return prime + continuation,
    (batch, T + n_samples), on the model's device.

    ``temperature`` divides the logits (the paper samples audio at 0.95); ``greedy`` takes the argmax;
    ``generator`` (a torch.Generator on any device) makes sampling reproducible. ``cuda_graphs=True`` replays
    one captured CUDA graph per update pattern (L + 1 for a Seq-U-Net with L levels, 1 for WaveNet) instead of
    launching every kernel from Python; the results are identical. On a CPU model it warns and runs eagerly.
    ``progress`` shows a tqdm bar. ``kernel`` as for ``init_state``.

    Every argument is checked before anything runs on the model's device; a bad one raises a ValueError (a
    TypeError for a prime that is not integer ids) naming it.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer (ids to generate per sequence), got {n_samples!r}")
    if not greedy and not (isinstance(temperature, numbers.Real) and temperature > 0):
        raise ValueError(f"temperature must be a positive number (got {temperature!r}); use greedy=True for the "
                         f"argmax")
    state = init_state(model, prime, pad_id=pad_id, dtype=dtype, kernel=kernel)
    new = state.generate(int(n_samples), temperature=temperature, greedy=greedy, generator=generator,
                         progress=progress, cuda_graphs=cuda_graphs)
    return torch.cat([prime.to(device=new.device, dtype=torch.long), new], dim=1)
