"""The generations of a piano run (:mod:`sequnet.experiment.piano_run`): real primes from the test pieces continued
by each model, one batch per set, with cached step-wise inference (CUDA graphs on a GPU), stored as mu-law ids in
``generations/<set>.npz`` beside the real continuation; and reading them back (:func:`listening_material` gives
the ``listening`` set in the form ``sequnet.analysis.listening.make_items`` takes)."""
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
from sequnet.data.audio import mu_law_decode

ARCHS = ("wavenet", "sequnet")


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
    Generated in chunks of 2 s (the deadline is checked between them) with the sampling noise from ``seed``."""
    prime_len, new = round(gset.prime_s * task.sr), round(gset.seconds * task.sr)
    real, sources = task.test_excerpts(gset.n, prime_len + new, seed=seed)
    out, speed = {"real": real.to(torch.uint8).numpy()}, {}
    for arch, model in models.items():
        dev = next(model.parameters()).device
        start = time.perf_counter()
        state = init_state(model, real[:, :prime_len].to(dev))
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
                       "cuda_graphs": dev.type == "cuda"}
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


def decode(ids: np.ndarray) -> list[np.ndarray]:
    """Rows of mu-law ids as float samples in [-1, 1]."""
    return [mu_law_decode(torch.from_numpy(row.astype(np.int64))).numpy() for row in ids]


def listening_material(run_dir: str | os.PathLike, name: str = "listening") -> dict[str, Any]:
    """The ``listening`` set as ``sequnet.analysis.listening.make_items`` takes it: ``primes`` (float samples),
    ``continuations`` ({model: prime + continuation, float samples}), ``sr`` and ``sources``."""
    ids, meta = load_generation(run_dir, name)
    return {"primes": decode(ids["real"][:, :meta["prime_len"]]), "sr": meta["sr"], "sources": meta["sources"],
            "continuations": {a: decode(ids[a]) for a in ARCHS}}
