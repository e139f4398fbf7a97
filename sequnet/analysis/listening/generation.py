"""Writing listening items: from two trained models (``make_items``: real primes from the test audio, both models'
continuations) and from audio (``write_items``: random clip names, a manifest that names no model, the key).

The paper's test (§5.2): 20 items, each a 1.5 s excerpt of real piano drawn at random from the test set, followed
by two continuations, one per model, sampled at temperature 0.95 and each starting with the real excerpt.
"""
from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import soundfile
import torch

from sequnet.analysis.listening.common import MODELS, ListeningError, atomic_write
from sequnet.analysis.listening.items import (AUDIO_FORMATS, ITEMS_MANIFEST, ITEMS_SCHEMA_TAG, MODEL_WORDS, Item,
                                              ItemSet, load_items)
from sequnet.analysis.listening.key import write_key
from sequnet.core.generation import generate
from sequnet.data.audio import mu_law_decode

# Mixed into the seed: the listening items' primes and samples differ from the piano chapter's.
LISTENING_SALT = 0x4C49535445


def make_items(models: Mapping[str, torch.nn.Module], test_audio: Any, n_items: int = 20, *,
               out_dir: str | os.PathLike, prime_seconds: float = 1.5, continuation_seconds: float = 5.0,
               temperature: float = 0.95, seed: int = 0, progress: bool = False) -> ItemSet:
    """Make a blinded listening-item folder ``out_dir`` from two trained models.

    ``models`` maps "sequnet" and "wavenet" to trained models (on any device; a CUDA model generates with CUDA
    graphs). ``test_audio`` is the piano run's ``AudioTask`` (``sequnet.experiment.tasks``), or anything with its
    ``sr`` and ``test_excerpts(n, length, seed)``: ``n_items`` primes of ``prime_seconds`` come from its held-out
    test pieces, the pieces taking turns, each at a random position away from pauses. Each model then continues
    every prime by ``continuation_seconds`` at ``temperature`` (all primes in one batch), and ``write_items``
    writes the primes, both clips (prime + continuation) under random names, ``items.json`` and the key
    ``listening_key.json`` (kept out of the book). Returns the item set.

    The positions and the sampling are seeded from ``seed`` salted for the listening test, so the items are never
    the excerpts that the piano chapter draws and plays under model labels with the same seed.
    """
    if not isinstance(models, Mapping) or sorted(models) != sorted(MODELS):
        raise ListeningError(f"models: expected a dict with exactly the keys {', '.join(MODELS)}, got "
                             f"{sorted(models) if isinstance(models, Mapping) else type(models).__name__}")
    if not (callable(getattr(test_audio, "test_excerpts", None)) and isinstance(getattr(test_audio, "sr", None), int)):
        raise ListeningError(f"test_audio: expected the piano run's AudioTask (with sr and test_excerpts), got "
                             f"{type(test_audio).__name__}")
    if isinstance(n_items, bool) or not isinstance(n_items, int) or n_items < 1:
        raise ListeningError(f"n_items={n_items!r}: expected a positive integer")
    for name, value in (("prime_seconds", prime_seconds), ("continuation_seconds", continuation_seconds),
                        ("temperature", temperature)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ListeningError(f"{name}={value!r}: expected a positive number")
    sr = test_audio.sr
    salted = int(np.random.SeedSequence([seed, LISTENING_SALT]).generate_state(1)[0])
    primes, sources = test_audio.test_excerpts(n_items, round(prime_seconds * sr), seed=salted)
    clips = {}
    for model_name in MODELS:
        model = models[model_name].eval()
        dev = next(model.parameters()).device
        ids = generate(model, primes, round(continuation_seconds * sr), temperature=temperature, progress=progress,
                       generator=torch.Generator(dev).manual_seed(salted), cuda_graphs=dev.type == "cuda")
        clips[model_name] = [mu_law_decode(row.cpu()).numpy() for row in ids]
    generation = {"prime_seconds": prime_seconds, "continuation_seconds": continuation_seconds,
                  "temperature": temperature, "seed": seed, "n_items": n_items}
    return write_items(out_dir, [mu_law_decode(p).numpy() for p in primes], clips, sr, sources=sources,
                       generation=generation)


def _mono(signal: Any, what: str) -> np.ndarray:
    if hasattr(signal, "detach"):   # a torch tensor
        signal = signal.detach().cpu().numpy()
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ListeningError(f"{what}: expected a non-empty 1-D array of samples, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ListeningError(f"{what}: contains NaN or infinite samples")
    return x


def _check_input(primes: Sequence[Any], continuations_by_model: Mapping[str, Sequence[Any]], sr: int, fmt: str,
                 sources: Sequence[str] | None) -> None:
    if fmt not in AUDIO_FORMATS:
        raise ListeningError(f"fmt={fmt!r}: choose one of {', '.join(AUDIO_FORMATS)}")
    if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
        raise ListeningError(f"sr={sr!r}: expected a positive integer sample rate")
    if sorted(continuations_by_model) != sorted(MODELS):
        raise ListeningError(f"continuations_by_model has keys {sorted(continuations_by_model)}; expected exactly "
                             f"{', '.join(MODELS)}")
    if len(primes) == 0:
        raise ListeningError("primes is empty: a listening test needs at least one item")
    for model, clips in continuations_by_model.items():
        if len(clips) != len(primes):
            raise ListeningError(f"{model}: {len(clips)} continuations for {len(primes)} primes")
    if sources is not None and len(sources) != len(primes):
        raise ListeningError(f"sources: {len(sources)} entries for {len(primes)} primes")


def write_items(out_dir: str | os.PathLike, primes: Sequence[Any],
                continuations_by_model: Mapping[str, Sequence[Any]], sr: int, *, prime_included: bool = True,
                fmt: str = "flac", sources: Sequence[str] | None = None,
                generation: Mapping[str, Any] | None = None) -> ItemSet:
    """Write a blinded listening-item folder from audio: per item a prime and two clips with random names,
    ``items.json`` (no model named) and the key ``listening_key.json`` (which clip is which model).

    ``primes[i]`` is the real excerpt of item i (1-D float samples in [-1, 1], numpy or torch);
    ``continuations_by_model`` maps "sequnet" and "wavenet" to one continuation per prime. With ``prime_included``
    (the default, as the paper's samples) each continuation already starts with its prime; otherwise the prime
    is put in front of it here. ``sources`` (optional, one string per item) records where each prime comes from,
    ``generation`` how the continuations were made (both go into the manifest: they must name no model). Files of
    an earlier item set in the folder that the new manifest does not list are removed, so the folder never mixes
    two sets. ``make_items`` (module ``generation``) makes the continuations from trained models and calls this.
    """
    _check_input(primes, continuations_by_model, sr, fmt, sources)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    old = _old_files(out)
    chance = secrets.SystemRandom()
    width = max(2, len(str(len(primes))))
    items, lengths, key = [], [], {}
    for i in range(len(primes)):
        item_id = f"item{i + 1:0{width}d}"
        prime = _mono(primes[i], f"primes[{i}]")
        names = {}
        for model in MODELS:
            clip = _mono(continuations_by_model[model][i], f"continuations_by_model[{model!r}][{i}]")
            if not prime_included:
                clip = np.concatenate([prime, clip])
            elif len(clip) <= len(prime):
                raise ListeningError(f"{model} continuation {i} has {len(clip)} samples, no more than its prime "
                                     f"({len(prime)}); with prime_included=True it must start with the prime and "
                                     f"go on")
            names[model] = _fresh_name(out, fmt, old)
            _write_audio(out / names[model], clip, sr)
        prime_name = f"{item_id}_prime.{fmt}"
        _write_audio(out / prime_name, prime, sr)
        clips = list(names.values())
        chance.shuffle(clips)
        items.append(Item(item_id, prime_name, (clips[0], clips[1]), str(sources[i]) if sources is not None else ""))
        key[item_id] = {name: model for model, name in names.items()}
        lengths.append(len(prime))
    info = dict(generation or {})
    if any(word in json.dumps([info, [it.source for it in items]]).lower() for word in MODEL_WORDS):
        raise ListeningError("sources and generation go into the published manifest: they must name no model")
    item_set = ItemSet(out, sr, round(float(np.median(lengths)) / sr, 4), tuple(items), info)
    # The key first: a manifest is never without its key, and a rerun that fails leaves the old pair readable.
    write_key(item_set, key)
    manifest = {"schema": ITEMS_SCHEMA_TAG, "sample_rate": sr, "prime_seconds": item_set.prime_seconds,
                "generation": info,
                "items": [{"id": it.id, "prime": it.prime, "clips": list(it.clips), "source": it.source}
                          for it in items]}
    atomic_write(out / ITEMS_MANIFEST, json.dumps(manifest, indent=2) + "\n")
    for name in old - set(item_set.audio_files()):
        (out / name).unlink(missing_ok=True)
    return load_items(out)


def _fresh_name(folder: Path, fmt: str, taken: set[str]) -> str:
    """A random clip file name not in use in ``folder`` (a letter first, so it is never a number)."""
    while True:
        name = f"c{secrets.token_hex(6)}.{fmt}"
        if name not in taken and not (folder / name).exists():
            taken.add(name)
            return name


def _old_files(folder: Path) -> set[str]:
    """The audio files an existing manifest in ``folder`` lists (none when there is no readable manifest)."""
    try:
        return set(load_items(folder).audio_files())
    except (ListeningError, FileNotFoundError):
        return set()


def _write_audio(path: Path, samples: np.ndarray, sr: int) -> None:
    # 16-bit PCM: what the paper's 8-bit mu-law output needs, and what every browser plays in WAV and FLAC.
    fmt = path.suffix.lstrip(".").upper()
    soundfile.write(path, np.clip(samples, -1.0, 1.0).astype(np.float32), sr, subtype="PCM_16", format=fmt)
