"""Listening items from trained models (``make_items``): real primes from the test audio, both models' continuations,
written blinded by ``write_items``.

The paper's test (§5.2): 20 items, each a 1.5 s excerpt of real piano drawn at random from the test set, followed
by two continuations, one per model, sampled at temperature 0.95 and each starting with the real excerpt.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping

import numpy as np
import torch

from sequnet.analysis.listening.common import MODELS, ListeningError
from sequnet.analysis.listening.items import ItemSet, write_items
from sequnet.core.generation import generate
from sequnet.data.audio import SAMPLE_RATE, mu_law_decode, mu_law_encode


def make_items(models: Mapping[str, torch.nn.Module], test_audio: Mapping[str, Any], n_items: int = 20, *,
               out_dir: str | os.PathLike, sr: int = SAMPLE_RATE, prime_seconds: float = 1.5,
               continuation_seconds: float = 5.0, temperature: float = 0.95, seed: int = 0,
               min_rms_db: float = -35.0, progress: bool = False) -> ItemSet:
    """Make a blinded listening-item folder ``out_dir`` from two trained models.

    ``models`` maps "sequnet" and "wavenet" to trained models (on any device; a CUDA model generates with CUDA
    graphs). ``test_audio`` maps the name of each held-out piece to its audio at ``sr``: 1-D mu-law class ids
    (integers, as ``AudioCorpus.test`` holds them) or samples in [-1, 1] (floats). ``n_items`` primes of
    ``prime_seconds`` are drawn from it, the pieces taking turns, each at a position drawn from ``seed`` and
    redrawn up to 20 times while quieter than ``min_rms_db`` dBFS (a pause makes a poor prime). Each model then
    continues every prime by ``continuation_seconds`` at ``temperature`` (all primes in one batch, sampling seeded
    by ``seed``), and ``write_items`` writes the prime, both clips (prime + continuation) under random names,
    ``items.json`` and the key ``listening_key.json`` (kept out of the book). Returns the item set.
    """
    if not isinstance(models, Mapping) or sorted(models) != sorted(MODELS):
        raise ListeningError(f"models: expected a dict with exactly the keys {', '.join(MODELS)}, got "
                             f"{sorted(models) if isinstance(models, Mapping) else type(models).__name__}")
    if isinstance(n_items, bool) or not isinstance(n_items, int) or n_items < 1:
        raise ListeningError(f"n_items={n_items!r}: expected a positive integer")
    for name, value in (("prime_seconds", prime_seconds), ("continuation_seconds", continuation_seconds),
                        ("temperature", temperature)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ListeningError(f"{name}={value!r}: expected a positive number")
    prime_len, n_new = round(prime_seconds * sr), round(continuation_seconds * sr)
    primes, sources = _draw_primes(test_audio, n_items, prime_len, sr, seed, min_rms_db)
    clips = {}
    for model_name in MODELS:
        model = models[model_name].eval()
        dev = next(model.parameters()).device
        ids = generate(model, primes, n_new, temperature=temperature, progress=progress, cuda_graphs=dev.type == "cuda",
                       generator=torch.Generator(dev).manual_seed(seed))
        clips[model_name] = [mu_law_decode(row.cpu()).numpy() for row in ids]
    generation = {"prime_seconds": prime_seconds, "continuation_seconds": continuation_seconds,
                  "temperature": temperature, "seed": seed, "n_items": n_items}
    return write_items(out_dir, [mu_law_decode(p).numpy() for p in primes], clips, sr, sources=sources,
                       generation=generation)


def _ids(name: str, audio: Any) -> torch.Tensor:
    """A piece as mu-law ids: integer input is taken as ids, float input as samples in [-1, 1]."""
    x = torch.as_tensor(np.asarray(audio)) if not isinstance(audio, torch.Tensor) else audio.detach().cpu()
    if x.ndim != 1 or x.numel() == 0:
        raise ListeningError(f"test_audio[{name!r}]: expected a non-empty 1-D array, got shape {tuple(x.shape)}")
    if x.is_floating_point():
        if not bool(torch.isfinite(x).all()) or float(x.abs().max()) > 1.0:
            raise ListeningError(f"test_audio[{name!r}]: float samples must be finite and within [-1, 1]")
        return mu_law_encode(x.float()).long()
    if int(x.min()) < 0 or int(x.max()) > 255:
        raise ListeningError(f"test_audio[{name!r}]: integer input must be mu-law ids in 0..255")
    return x.long()


def _draw_primes(test_audio: Mapping[str, Any], n: int, length: int, sr: int, seed: int,
                 min_rms_db: float, tries: int = 20) -> tuple[torch.Tensor, list[str]]:
    if not isinstance(test_audio, Mapping) or not test_audio:
        raise ListeningError("test_audio: expected a non-empty dict of piece name -> audio (the test pieces)")
    pieces = {name: _ids(name, audio) for name, audio in sorted(test_audio.items())}
    names = [name for name, ids in pieces.items() if len(ids) >= length]
    if not names:
        raise ListeningError(f"test_audio: no piece is as long as a prime ({length / sr:g} s)")
    rng = np.random.default_rng(seed)
    primes, sources = [], []
    for i in range(n):
        name = names[i % len(names)]
        piece, best = pieces[name], None
        for _ in range(tries):
            start = int(rng.integers(0, len(piece) - length + 1))
            ids = piece[start:start + length]
            rms = 10 * math.log10(float(mu_law_decode(ids).pow(2).mean()) + 1e-20)
            if best is None or rms > best[0]:
                best = (rms, start, ids)
            if rms >= min_rms_db:
                break
        primes.append(best[2])
        sources.append(f"{name} @ {best[1] / sr:.2f} s")
    return torch.stack(primes), sources
