"""Listening items: reading a folder of blinded audio (``load_items``) and the order in which each
participant hears it (``presentation``).

An *item* is a real piano excerpt (the prime, 1.5 s in the paper) and two continuations of it, one by Seq-U-Net
and one by WaveNet, each starting with the prime. ``write_items`` writes a folder of audio files, a manifest
``items.json`` and the key ``listening_key.json`` (module ``key``); ``write_items`` and ``make_items`` live in
module ``generation``. Each continuation gets a random file name
(``c3f9a0e71b2d.flac``) drawn from the operating system's randomness (``secrets``), and the manifest lists an
item's two clips in an order drawn the same way. A seed would not do: the seed of a run is published with its
records, and anyone could redraw the assignment from it. So the manifest and the audio, everything the book
copies into its site, say nothing about which clip is which model; only the key does, and the book build never
copies it (``sequnet.publish.book``).

Each participant hears the items in an order drawn from a hash of their name, and each item's two clips as "A"
and "B" in an order drawn the same way. The hash is written twice, here and in the page's JavaScript
(``page.js``), so a participant gets the same order in Jupyter and on the static page. The response records which
clip was A, so the analysis maps every answer to a model through the key.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Mapping

from sequnet.analysis.listening.common import (ITEM_ID_PATTERN, MODELS, ListeningError, check_participant,
                                               read_data_file)

ITEMS_MANIFEST = "items.json"
ITEMS_SCHEMA_TAG = "sequnet-listening-items/2"
# Where the piano run writes its items: <its out_dir>/listening_items. In a `sequnet run` the kernel's cwd is the
# run folder and each notebook's out_dir is a folder named after it, so from the listening notebook's cwd the
# items are at piano_audio/listening_items (or ./listening_items when both notebooks ran with out_dir=".").
ITEMS_SUBDIR = "listening_items"
DEFAULT_ITEMS_DIR = Path("piano_audio") / ITEMS_SUBDIR
# FLAC: lossless, a third of WAV's size for piano, and Chromium, Firefox and Safari play it in <audio>.
AUDIO_FORMATS = ("flac", "wav")
# A file name of the folder: what the page refers to and what a response records as A and B.
CLIP_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# A manifest lists a few hundred bytes per item; these limits only keep a damaged file from exhausting memory or
# the parser's recursion.
MAX_MANIFEST_BYTES = 16 * 2 ** 20
MAX_MANIFEST_DEPTH = 8
MODEL_WORDS = MODELS + ("seq-u-net", "seq_u_net")


@dataclasses.dataclass(frozen=True)
class Item:
    id: str
    prime: str                  # file names relative to the item folder
    clips: tuple[str, str]      # the two continuations, in an order that says nothing about the models
    source: str = ""            # where the prime comes from (piece, offset), for the record

    def other(self, clip: str) -> str:
        """The clip of this item that is not ``clip``."""
        return self.clips[1] if clip == self.clips[0] else self.clips[0]


@dataclasses.dataclass(frozen=True)
class ItemSet:
    folder: Path
    sample_rate: int
    prime_seconds: float
    items: tuple[Item, ...]
    generation: Mapping[str, Any] = dataclasses.field(default_factory=dict)   # how the clips were made

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(item.id for item in self.items)

    def item(self, item_id: str) -> Item:
        return next(it for it in self.items if it.id == item_id)

    def audio_files(self) -> list[str]:
        return [name for item in self.items for name in (item.prime, *item.clips)]

    def describe(self) -> str:
        """The set in one Markdown sentence: items, prime, how the clips were made, where the primes are from."""
        gen = self.generation
        made = (f"continued by {gen['continuation_seconds']:g} s at temperature {gen['temperature']}"
                if "continuation_seconds" in gen else "then both continuations")
        pieces = ", ".join(sorted({it.source.split(" @ ")[0] for it in self.items if it.source}))
        return (f"**{len(self.items)} items** (the paper: 20): {self.prime_seconds:g} s of real piano each, {made}, "
                f"at {self.sample_rate} Hz." + (f" Primes from: {pieces}." if pieces else ""))

    @property
    def set_id(self) -> str:
        """A fingerprint of the items and their clips: a response names the set it answers, so that a response
        to another set (another run's items) is told apart even where item ids coincide."""
        listing = [[it.id, it.prime, *it.clips] for it in self.items]
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


def find_items(items_dir: str | os.PathLike | None = None) -> Path | None:
    """``items_dir`` if given (it must hold a manifest), else the first of ``DEFAULT_ITEMS_DIR`` and
    ``./listening_items`` (relative to the working directory) that holds one, else None."""
    if items_dir is not None:
        if not (Path(items_dir) / ITEMS_MANIFEST).is_file():
            raise FileNotFoundError(f"items_dir={str(items_dir)!r} holds no {ITEMS_MANIFEST}; build it with "
                                    f"sequnet.analysis.listening.make_items")
        return Path(items_dir)
    return next((p for p in (DEFAULT_ITEMS_DIR, Path(ITEMS_SUBDIR)) if (p / ITEMS_MANIFEST).is_file()), None)


def load_items(items_dir: str | os.PathLike) -> ItemSet:
    """The item set of a folder written by ``write_items``, checked: manifest format, that no file name names a
    model, and that every audio file it lists exists."""
    folder = Path(items_dir)
    manifest_path = folder / ITEMS_MANIFEST
    data = read_data_file(manifest_path, MAX_MANIFEST_BYTES, MAX_MANIFEST_DEPTH,
                          f"build the items with sequnet.analysis.listening.make_items (the piano run writes them "
                          f"to {DEFAULT_ITEMS_DIR} in its run folder)")

    def bad(reason: str) -> ListeningError:
        return ListeningError(f"{manifest_path}: {reason}")

    if not isinstance(data, dict) or data.get("schema") != ITEMS_SCHEMA_TAG:
        found = data.get("schema") if isinstance(data, dict) else None
        raise bad(f"expected schema {ITEMS_SCHEMA_TAG!r}, found {found!r}" + (
            "; an item set of the earlier, unblinded format: make it again with make_items" if found else ""))
    sr = data.get("sample_rate")
    if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
        raise bad(f"sample_rate {sr!r} is not a positive integer")
    entries = data.get("items")
    if not isinstance(entries, list) or not entries:
        raise bad("no items")
    items, ids = [], set()
    for i, e in enumerate(entries):
        try:
            item_id, prime, clips = e["id"], e["prime"], e["clips"]
            item = Item(item_id, prime, (clips[0], clips[1]), str(e.get("source", "")))
        except (KeyError, TypeError, IndexError):
            raise bad(f"items[{i}] needs id, prime and two clips") from None
        if not isinstance(item_id, str) or not re.match(ITEM_ID_PATTERN, item_id) or item_id in ids:
            raise bad(f"items[{i}]: id {item_id!r} is not a unique name matching {ITEM_ID_PATTERN}")
        if len(clips) != 2 or clips[0] == clips[1]:
            raise bad(f"items[{i}]: needs two different clips, got {clips!r}")
        for name in (item.prime, *item.clips):
            # Plain file names only: the page refers to them beside each other, and they must stay neutral.
            if (not isinstance(name, str) or not re.match(CLIP_NAME_PATTERN, name)
                    or any(m in name.lower() for m in MODEL_WORDS)):
                raise bad(f"items[{i}]: file {name!r} must be a plain file name that names no model")
            if not (folder / name).is_file():
                raise bad(f"items[{i}]: audio file {name} is missing")
        if "models" in e:
            raise bad(f"items[{i}] names the models: the manifest is published, the key belongs in its own file")
        ids.add(item_id)
        items.append(item)
    return ItemSet(folder, sr, float(data.get("prime_seconds", 0.0)), tuple(items), dict(data.get("generation", {})))


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
    """One item as one participant hears it: ``a`` is the file name of the clip played as A."""
    item: Item
    a: str

    @property
    def b(self) -> str:
        return self.item.other(self.a)


def presentation(items: ItemSet, participant: str) -> list[Trial]:
    """The items in the order ``participant`` hears them, each with its A/B assignment; both drawn from the
    participant's name, so a participant who comes back gets the same test."""
    name = check_participant(participant)
    order = sorted(items.items, key=lambda it: (blind_hash(f"{name}\x00order\x00{it.id}"), it.id))
    return [Trial(it, it.clips[blind_hash(f"{name}\x00ab\x00{it.id}") & 1]) for it in order]


def publish_audio(items_dir: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Copy the items' audio (not the key) into ``dest``; returns the copies."""
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
