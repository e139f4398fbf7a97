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
from typing import Any, Callable

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


def generate_sets(models: dict, task, sets: list[tuple[str, GenerationSet, int]], temperature: float, seed: int,
                  write: Callable[[str, dict, dict], Any], deadline: float | None = None,
                  progress: bool = False, chunk_s: float = 2.0, cut: bool = False,
                  kernels: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Continue the primes of several sets as one batch per model, and ``write(name, ids, meta)`` each set as
    soon as its continuations are long enough; returns the names written.

    ``sets``: (name, GenerationSet, seed of its excerpts), all with the same prime length: each set draws
    ``n`` excerpts of the test pieces (positions from its seed), and every model continues all primes at once for
    the longest set's seconds, the sampling noise from ``seed``. A set's ids are {"real": ids, arch: ids (prime
    included)} for its own rows, cut to its own length (a causal sample does not depend on what follows it).
    Cached step-wise generation is bound by the latency of a step, not by the batch (on an H200 the Seq-U-Net's
    split-K step took 134 us at batch 8 and 119 us at batch 20), so the listening items ride along with the long
    continuations nearly for free. The models take turns every ``chunk_s`` of audio, so a set is written once both have
    reached its length; with a ``deadline`` (a ``time.monotonic()``) the generation stops early when the next set
    would not be finished by then (the caller calls again). With ``cut`` (the last call a session can make) it
    goes on while another chunk fits, and then writes the unfinished sets as long as they got, their metadata
    saying so (``cut_from_s``: the seconds asked). ``kernels``: a model's kernel candidates (default "auto",
    the batch rule); several are timed on the joint batch first (``tuning.fastest_kernel``, its timings in the
    metadata), and the fastest generates."""
    sr = task.sr
    prime_len = {round(g.prime_s * sr) for _, g, _ in sets}
    if len(prime_len) != 1:
        raise ValueError(f"sets {[name for name, _, _ in sets]}: their primes must be equally long to be generated "
                         f"as one batch, got {sorted(p / sr for p in prime_len)} s")
    prime_len = prime_len.pop()
    asked = {name: g.seconds for name, g, _ in sets}
    lengths = {name: round(seconds * sr) for name, seconds in asked.items()}
    real, sources, rows, first = {}, {}, {}, 0
    for name, g, excerpt_seed in sets:
        real[name], sources[name] = task.test_excerpts(g.n, prime_len + lengths[name], seed=excerpt_seed)
        rows[name], first = slice(first, first + g.n), first + g.n
    primes = torch.cat([real[name][:, :prime_len] for name, _, _ in sets])
    states, noise, parts, spent = {}, {}, {arch: [] for arch in models}, dict.fromkeys(models, 0.0)
    trials = {}
    for arch, model in models.items():
        dev = next(model.parameters()).device
        kernel, *others = (kernels or {}).get(arch, ("auto",))
        if others:                          # timed before the clock starts: the trial is not generation
            kernel, trials[arch] = fastest_kernel(model, primes.to(dev), candidates=(kernel, *others))
        start = time.perf_counter()
        states[arch] = init_state(model, primes.to(dev), kernel=kernel)
        noise[arch] = torch.Generator(dev).manual_seed(seed)
        spent[arch] += time.perf_counter() - start
    new, made, written = max(lengths.values()), 0, []

    def emit(name: str) -> None:
        """Write one set out of the joint batch: its rows, cut to its length or to what was made (then its
        metadata says how long it was asked to be)."""
        length = min(lengths[name], made)
        ids = {"real": real[name][:, :prime_len + length].to(torch.uint8).numpy()}
        speed = {}
        for arch, state in states.items():
            generated = torch.cat(parts[arch], 1)[rows[name], :length]
            ids[arch] = torch.cat([real[name][:, :prime_len], generated], 1).to(torch.uint8).numpy()
            speed[arch] = {"batch": len(primes), "steps_per_s": made / spent[arch], "seconds": spent[arch],
                           "device": str(state.device), "cuda_graphs": state.device.type == "cuda",
                           "kernel": state.kernel} | ({"kernel_trial": trials[arch]} if arch in trials else {})
        meta = {"sr": sr, "prime_len": prime_len, "temperature": temperature, "sources": sources[name],
                "speed": speed, "seed": seed}
        if length < lengths[name]:
            meta["cut_from_s"] = asked[name]
        write(name, ids, meta)
        written.append(name)

    chunk = max(1, min(new, round(sr * chunk_s)))
    while made < new:
        n = min(chunk, new - made)
        for arch, state in states.items():
            start = time.perf_counter()
            parts[arch].append(state.generate(n, temperature=temperature, generator=noise[arch], progress=progress,
                                              cuda_graphs=state.device.type == "cuda").cpu())
            spent[arch] += time.perf_counter() - start
        made += n
        for name, _, _ in sets:
            if name not in written and made >= lengths[name]:
                emit(name)
        left = [lengths[name] for name, _, _ in sets if name not in written]
        if deadline is None or not left:
            continue
        per_step = sum(spent.values()) / made
        if cut and time.monotonic() + per_step * min(chunk, new - made) > deadline:
            for name in [n for n, _, _ in sets if n not in written]:
                emit(name)
            break
        if not cut and time.monotonic() + per_step * (min(left) - made) > deadline:
            break
    return written


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
