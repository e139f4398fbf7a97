"""What a piano run (:mod:`sequnet.experiment.piano_run`) reads and what it generates.

* Its audio: the six registered pieces or a folder of recordings, decoded once and cached as mu-law ids
  (:func:`load_corpus`), each model's ``AudioTask`` on it, and its extent (hours, pieces, renderer).
* Its generations: real primes from the test pieces continued by each model, one batch per set, with cached
  step-wise inference (CUDA graphs on a GPU), stored as mu-law ids in ``generations/<set>.npz`` beside the real
  continuation; and reading them back (:func:`load_generation`)."""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sequnet.core.generation import init_state
from sequnet.core.generation.tuning import fastest_kernel
from sequnet.data.audio import AudioCorpus, load_audio_corpus
from sequnet.experiment.tasks import AudioTask, audio_task

def audio_folder(audio_dir: str | None, run_dir: str | os.PathLike) -> Path | None:
    """A run's recordings: its ``audio_dir``, relative to the run folder unless absolute; None for the six
    registered pieces."""
    if audio_dir is None:
        return None
    return Path(audio_dir) if Path(audio_dir).is_absolute() else Path(run_dir) / audio_dir


def load_corpus(run, run_dir: str | os.PathLike):
    """The run's audio: None for the six registered pieces, else its folder's recordings, kept as mu-law ids in
    ``cache/corpus.pt`` of the run folder, keyed by the folder's file names, sizes and times, so that a later call
    of a run skips decoding hours of audio."""
    folder, cache = audio_folder(run.audio_dir, run_dir), Path(run_dir) / "cache" / "corpus.pt"
    if folder is None:
        return None
    key = sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else None
    if cache.is_file():
        saved = torch.load(cache, weights_only=True)
        if saved["key"] == json.dumps(key):
            return AudioCorpus(saved["sr"], saved["train"], saved["test"])
    corpus = load_audio_corpus(folder)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.partial")
    torch.save({"key": json.dumps(key), "sr": corpus.sr, "train": corpus.train, "test": corpus.test}, partial)
    os.replace(partial, cache)
    return corpus


def make_tasks(run, configs: dict, run_dir: str | os.PathLike) -> dict:
    """Each model's ``AudioTask`` on one copy of the run's audio (named by the folder's name, not its path)."""
    corpus = load_corpus(run, run_dir)
    if corpus is None:
        return {arch: audio_task(c.setting, c.batch_size) for arch, c in configs.items()}
    source = f"the recordings of {audio_folder(run.audio_dir, run_dir).resolve().name}/"
    return {arch: AudioTask(c.setting, corpus, c.batch_size, source=source) for arch, c in configs.items()}


def audio_extent(task, folder: Path | None) -> dict[str, Any]:
    """Hours and pieces of the task's audio, and the renderer and SoundFont named by ``folder/manifest.json``
    (written by ``python -m sequnet data render-piano``) where there is one."""
    corpus = task.corpus
    extent: dict[str, Any] = {f"{split}_audio_hours": sum(len(p) for p in pieces.values()) / corpus.sr / 3600
                              for split, pieces in (("train", corpus.train), ("test", corpus.test))}
    extent |= {"train_pieces": len(corpus.train), "test_pieces": len(corpus.test),
               "pieces": {"train": sorted(corpus.train), "test": sorted(corpus.test)}}
    manifest = None if folder is None else folder / "manifest.json"
    if manifest is not None and manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{manifest}: not a readable JSON manifest ({e}); fix or remove it") from e
        renderer, font = data.get("renderer"), data.get("soundfont")
        if isinstance(renderer, dict):          # render-piano's: {"name", "version", "settings"}
            renderer = f"{renderer.get('name', '?')} ({renderer.get('version', 'version unknown')})"
        if isinstance(font, dict):              # {"name", "bytes", "sha256", "registered_as"}
            font = f"{font.get('name', '?')} (sha256 {str(font.get('sha256', '?'))[:12]})"
        extent |= {k: v for k, v in (("renderer", renderer), ("soundfont", font)) if v is not None}
    return extent


@dataclasses.dataclass(frozen=True)
class GenerationSet:
    n: int                            # primes (one batch)
    prime_s: float                    # seconds of real piano per prime (the paper: 1.5)
    seconds: float                    # seconds generated after each prime


def generation_path(run_dir: Path, name: str) -> Path:
    return run_dir / "generations" / f"{name}.npz"


def generate_set(models: dict, task, gset: GenerationSet, temperature: float, seed: int,
                 deadline: float | None = None, progress: bool = False):
    """``gset.n`` excerpts of the test pieces (positions from ``seed``) and each model's continuation of their
    primes, all primes as one batch: ({"real": ids, arch: ids (prime included)}, metadata with the speed), or None
    when a model's first chunks show that it would not finish before ``deadline`` (a ``time.monotonic()``).
    Generated in chunks of 2 s (the deadline is checked between them) with the sampling noise from ``seed``; on
    a GPU with the products that a short trial found fastest for each model (``speed[arch]["kernel"]``)."""
    prime_len, new = round(gset.prime_s * task.sr), round(gset.seconds * task.sr)
    real, sources = task.test_excerpts(gset.n, prime_len + new, seed=seed)
    out, speed = {"real": real.to(torch.uint8).numpy()}, {}
    for arch, model in models.items():
        dev = next(model.parameters()).device
        # on a GPU, the products that run this model fastest at this batch, timed on its own prime
        kernel, trial = fastest_kernel(model, real[:, :prime_len].to(dev))
        start = time.perf_counter()
        state = init_state(model, real[:, :prime_len].to(dev), kernel=kernel)
        noise = torch.Generator(dev).manual_seed(seed)
        chunk, parts = max(1, min(new, task.sr * 2)), []
        while sum(p.shape[1] for p in parts) < new:
            n = min(chunk, new - sum(p.shape[1] for p in parts))
            parts.append(state.generate(n, temperature=temperature, generator=noise, progress=progress,
                                        cuda_graphs=dev.type == "cuda").cpu())
            done, elapsed = sum(p.shape[1] for p in parts), time.perf_counter() - start
            if deadline is not None and done < new and time.monotonic() + elapsed * (new - done) / done > deadline:
                return None
        seconds = time.perf_counter() - start
        out[arch] = torch.cat([real[:, :prime_len], torch.cat(parts, 1)], 1).to(torch.uint8).numpy()
        speed[arch] = {"batch": gset.n, "steps_per_s": new / seconds, "seconds": seconds, "device": str(dev),
                       "cuda_graphs": dev.type == "cuda", "kernel": state.kernel, "kernel_trial_steps_per_s": trial}
    meta = {"sr": task.sr, "prime_len": prime_len, "temperature": temperature, "sources": sources,
            "speed": speed, "seed": seed}
    return out, meta


def write_set(run_dir: Path, name: str, ids: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Store a generated set whole (written beside, then renamed)."""
    path = generation_path(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.npz")
    np.savez_compressed(partial, meta=np.array(json.dumps(meta)), **ids)
    os.replace(partial, path)
    return path


def load_generation(run_dir: str | os.PathLike, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A generation set: {"real", "wavenet", "sequnet"} mu-law ids (n, prime + continuation) and its metadata."""
    path = generation_path(Path(run_dir), name)
    with np.load(path) as data:
        ids = {k: data[k] for k in data.files if k != "meta"}
        meta = json.loads(str(data["meta"]))
    return ids, meta
