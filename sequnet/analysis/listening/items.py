"""Listening items: a folder of blinded audio (``make_items``, ``load_items``) and the order in which each
participant hears it (``presentation``).

An *item* is a real piano excerpt (the prime, 1.5 s in the paper) and two continuations of it, one by Seq-U-Net
and one by WaveNet, each starting with the prime. ``make_items`` writes a folder of audio files and a manifest
``items.json``. The continuation files get neutral names (``item03_x.flac``, ``item03_y.flac``) and which model is
``x`` is drawn at random per item, so a file name says nothing about the model; only the manifest knows.

Each participant hears each item's continuations as "A" and "B" in an order drawn from a hash of their name and
the item id, and the items in an order drawn the same way. The hash is written twice, here and in the page's
JavaScript (``page.js``), so a participant gets the same order in Jupyter and on the static page.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import soundfile

from sequnet.analysis.listening.common import (ITEM_ID_PATTERN, MODELS, JSONLimitError, ListeningError,
                                               atomic_write, check_participant, read_json)

ITEMS_MANIFEST = "items.json"
ITEMS_SCHEMA_TAG = "sequnet-listening-items/1"
# Where the piano notebook writes its items: <its out_dir>/listening_items. In a `sequnet run` the kernel's cwd is
# the run folder and each notebook's out_dir is a folder named after it, so from the listening notebook's cwd the
# items are at piano_audio/listening_items (or ./listening_items when both notebooks ran with out_dir=".").
ITEMS_SUBDIR = "listening_items"
DEFAULT_ITEMS_DIR = Path("piano_audio") / ITEMS_SUBDIR
AUDIO_FORMATS = ("flac", "wav")
# A manifest lists a few hundred bytes per item; these limits only keep a damaged file from exhausting memory or
# the parser's recursion.
MAX_MANIFEST_BYTES = 16 * 2 ** 20
MAX_MANIFEST_DEPTH = 8


@dataclasses.dataclass(frozen=True)
class Item:
    id: str
    prime: str                  # file names relative to the item folder
    x: str
    y: str
    models: Mapping[str, str]   # {"x": model, "y": the other model}
    source: str = ""            # where the prime comes from (piece, offset), for the record

    def file(self, key: str) -> str:
        return {"prime": self.prime, "x": self.x, "y": self.y}[key]


@dataclasses.dataclass(frozen=True)
class ItemSet:
    folder: Path
    sample_rate: int
    prime_seconds: float
    items: tuple[Item, ...]

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(item.id for item in self.items)

    def audio_files(self) -> list[str]:
        return [item.file(k) for item in self.items for k in ("prime", "x", "y")]


def _mono(signal: Any, what: str) -> np.ndarray:
    if hasattr(signal, "detach"):   # a torch tensor
        signal = signal.detach().cpu().numpy()
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ListeningError(f"{what}: expected a non-empty 1-D array of samples, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ListeningError(f"{what}: contains NaN or infinite samples")
    return x


def make_items(out_dir: str | os.PathLike, primes: Sequence[Any], continuations_by_model: Mapping[str, Sequence[Any]],
               sr: int, *, prime_included: bool = True, fmt: str = "flac", seed: int = 0,
               sources: Sequence[str] | None = None) -> ItemSet:
    """Write a listening-item folder: ``itemNN_prime``, ``itemNN_x``, ``itemNN_y`` audio files and ``items.json``.

    ``primes[i]`` is the real excerpt of item i (1-D float samples in [-1, 1], numpy or torch);
    ``continuations_by_model`` maps "sequnet" and "wavenet" to one continuation per prime. With ``prime_included``
    (the default, as the paper's samples) each continuation already starts with its prime; otherwise the prime
    is put in front of it here. Which model becomes ``x`` is drawn per item from ``seed``. ``sources`` (optional,
    one string per item) records where each prime comes from. Files of an earlier item set in the folder that the
    new manifest does not list are removed, so the folder never mixes two sets.
    """
    if fmt not in AUDIO_FORMATS:
        raise ListeningError(f"fmt={fmt!r}: choose one of {', '.join(AUDIO_FORMATS)}")
    if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
        raise ListeningError(f"sr={sr!r}: expected a positive integer sample rate")
    if sorted(continuations_by_model) != sorted(MODELS):
        raise ListeningError(f"continuations_by_model has keys {sorted(continuations_by_model)}; expected exactly "
                             f"{', '.join(MODELS)}")
    n = len(primes)
    if n == 0:
        raise ListeningError("primes is empty: a listening test needs at least one item")
    for model, clips in continuations_by_model.items():
        if len(clips) != n:
            raise ListeningError(f"{model}: {len(clips)} continuations for {n} primes")
    if sources is not None and len(sources) != n:
        raise ListeningError(f"sources: {len(sources)} entries for {n} primes")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    old = _old_files(out)
    rng = np.random.default_rng(seed)
    width = max(2, len(str(n)))
    items, lengths = [], []
    for i in range(n):
        item_id = f"item{i + 1:0{width}d}"
        prime = _mono(primes[i], f"primes[{i}]")
        clips = {}
        for model in MODELS:
            clip = _mono(continuations_by_model[model][i], f"continuations_by_model[{model!r}][{i}]")
            if not prime_included:
                clip = np.concatenate([prime, clip])
            elif len(clip) <= len(prime):
                raise ListeningError(f"{model} continuation {i} has {len(clip)} samples, no more than its prime "
                                     f"({len(prime)}); with prime_included=True it must start with the prime and "
                                     f"go on")
            clips[model] = clip
        x_model = MODELS[int(rng.integers(2))]
        models = {"x": x_model, "y": next(m for m in MODELS if m != x_model)}
        names = {key: f"{item_id}_{key}.{fmt}" for key in ("prime", "x", "y")}
        _write_audio(out / names["prime"], prime, sr)
        for key in ("x", "y"):
            _write_audio(out / names[key], clips[models[key]], sr)
        items.append(Item(item_id, names["prime"], names["x"], names["y"], models,
                          str(sources[i]) if sources is not None else ""))
        lengths.append(len(prime))
    manifest = {"schema": ITEMS_SCHEMA_TAG, "sample_rate": sr,
                "prime_seconds": round(float(np.median(lengths)) / sr, 4),
                "items": [{"id": it.id, "files": {"prime": it.prime, "x": it.x, "y": it.y},
                           "models": dict(it.models), "source": it.source} for it in items]}
    atomic_write(out / ITEMS_MANIFEST, json.dumps(manifest, indent=2) + "\n")
    for name in old - {f for it in items for f in (it.prime, it.x, it.y)}:
        (out / name).unlink(missing_ok=True)
    return load_items(out)


def find_items(items_dir: str | os.PathLike | None = None) -> Path | None:
    """``items_dir`` if given (it must hold a manifest), else the first of ``DEFAULT_ITEMS_DIR`` and
    ``./listening_items`` (relative to the working directory) that holds one, else None."""
    if items_dir is not None:
        if not (Path(items_dir) / ITEMS_MANIFEST).is_file():
            raise FileNotFoundError(f"items_dir={str(items_dir)!r} holds no {ITEMS_MANIFEST}; build it with "
                                    f"sequnet.analysis.listening.make_items")
        return Path(items_dir)
    return next((p for p in (DEFAULT_ITEMS_DIR, Path(ITEMS_SUBDIR)) if (p / ITEMS_MANIFEST).is_file()), None)


def _old_files(folder: Path) -> set[str]:
    """The audio files an existing manifest in ``folder`` lists (none when there is no readable manifest)."""
    try:
        return set(load_items(folder).audio_files())
    except (ListeningError, FileNotFoundError):
        return set()


def _write_audio(path: Path, samples: np.ndarray, sr: int) -> None:
    # 16-bit PCM: what the paper's 8-bit mu-law output needs, and what every browser plays in WAV and FLAC.
    soundfile.write(path, np.clip(samples, -1.0, 1.0).astype(np.float32), sr, subtype="PCM_16")


def load_items(items_dir: str | os.PathLike) -> ItemSet:
    """The item set of a folder written by ``make_items``, checked: manifest format, models, and that every
    audio file it names exists."""
    folder = Path(items_dir)
    manifest_path = folder / ITEMS_MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: build the items with sequnet.analysis.listening.make_items "
                                f"(the piano notebook writes them to {DEFAULT_ITEMS_DIR} in its run folder)")
    try:
        data = read_json(manifest_path, MAX_MANIFEST_BYTES, MAX_MANIFEST_DEPTH)
    except JSONLimitError as e:
        raise ListeningError(f"{manifest_path}: {e}") from None
    except ValueError as e:   # not UTF-8, not JSON
        raise ListeningError(f"{manifest_path}: not valid JSON ({e})") from None

    def bad(reason: str) -> ListeningError:
        return ListeningError(f"{manifest_path}: {reason}")

    if not isinstance(data, dict) or data.get("schema") != ITEMS_SCHEMA_TAG:
        raise bad(f"expected schema {ITEMS_SCHEMA_TAG!r}")
    sr = data.get("sample_rate")
    if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
        raise bad(f"sample_rate {sr!r} is not a positive integer")
    entries = data.get("items")
    if not isinstance(entries, list) or not entries:
        raise bad("no items")
    items, ids = [], set()
    for i, e in enumerate(entries):
        try:
            item_id, files, models = e["id"], e["files"], e["models"]
            item = Item(item_id, files["prime"], files["x"], files["y"], dict(models), str(e.get("source", "")))
        except (KeyError, TypeError):
            raise bad(f"items[{i}] needs id, files {{prime, x, y}} and models {{x, y}}") from None
        if not isinstance(item_id, str) or not re.match(ITEM_ID_PATTERN, item_id) or item_id in ids:
            raise bad(f"items[{i}]: id {item_id!r} is not a unique name matching {ITEM_ID_PATTERN}")
        if sorted(item.models) != ["x", "y"] or sorted(item.models.values()) != sorted(MODELS):
            raise bad(f"items[{i}]: models must map x and y to {' and '.join(MODELS)}, got {item.models}")
        for key in ("prime", "x", "y"):
            name = item.file(key)
            # Plain file names only: the page refers to them beside each other, and "x"/"y" must stay neutral.
            if not isinstance(name, str) or Path(name).name != name or any(m in name.lower() for m in MODELS):
                raise bad(f"items[{i}]: file {name!r} must be a plain file name that names no model")
            if not (folder / name).is_file():
                raise bad(f"items[{i}]: audio file {name} is missing")
        ids.add(item_id)
        items.append(item)
    return ItemSet(folder, sr, float(data.get("prime_seconds", 0.0)), tuple(items))


# Blinding: the same hash in Python and in the page's JavaScript (FNV-1a over UTF-8, then MurmurHash3's finaliser,
# whose low bits are well mixed, unlike FNV's own)

_M32 = 0xFFFFFFFF


def blind_hash(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & _M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h


@dataclasses.dataclass(frozen=True)
class Trial:
    """One item as one participant hears it: ``a`` is the key ("x" or "y") of the continuation played as A."""
    item: Item
    a: str

    @property
    def b(self) -> str:
        return "y" if self.a == "x" else "x"

    @property
    def a_model(self) -> str:
        return self.item.models[self.a]

    @property
    def b_model(self) -> str:
        return self.item.models[self.b]


def presentation(items: ItemSet, participant: str) -> list[Trial]:
    """The items in the order ``participant`` hears them, each with its A/B assignment; both drawn from the
    participant's name, so a participant who comes back gets the same test."""
    name = check_participant(participant)
    order = sorted(items.items, key=lambda it: (blind_hash(f"{name}\x00order\x00{it.id}"), it.id))
    return [Trial(it, "y" if blind_hash(f"{name}\x00ab\x00{it.id}") & 1 else "x") for it in order]


def publish_audio(items_dir: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Copy the items' audio (not the manifest, which names the models) into ``dest``; returns the copies."""
    items = load_items(items_dir)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in items.audio_files():
        target = dest / name
        if items.path(name).resolve() != target.resolve():
            shutil.copyfile(items.path(name), target)
        copies.append(target)
    return copies
