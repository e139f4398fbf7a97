"""The key of a listening test: which clip of each item is which model.

It is written beside the items as ``listening_key.json`` (``KEY_FILE``) and stays in the repository for the
analysis; ``sequnet book`` never copies a file of that name into the site, and the browser test checks that the
site holds none. Nothing else that is published (the manifest, the audio file names, the page) names a model.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Mapping

from sequnet.analysis.listening.common import MODELS, ListeningError, atomic_write, read_data_file
from sequnet.analysis.listening.items import ItemSet

KEY_FILE = "listening_key.json"
KEY_SCHEMA_TAG = "sequnet-listening-key/1"
_MAX_KEY_BYTES = 16 * 2 ** 20
_MAX_KEY_DEPTH = 6


@dataclasses.dataclass(frozen=True)
class Key:
    """``models[item id][clip file name]`` is the model that made that clip, for every item of ``items``."""
    items: ItemSet
    models: Mapping[str, Mapping[str, str]]

    def model(self, item: str, clip: str) -> str:
        return self.models[item][clip]


def write_key(items: ItemSet, models: Mapping[str, Mapping[str, str]], path: str | os.PathLike | None = None) -> Path:
    """Write the key of ``items`` (atomically) to ``path``, by default ``<items folder>/listening_key.json``."""
    target = Path(path) if path is not None else items.folder / KEY_FILE
    doc = {"schema": KEY_SCHEMA_TAG,
           "note": "Which clip is which model. Never publish this file: it would unblind the listening test.",
           "item_set": items.set_id,
           "items": {item: dict(clips) for item, clips in models.items()}}
    _check(items, doc, target)
    atomic_write(target, json.dumps(doc, indent=2) + "\n")
    return target


def load_key(items: ItemSet, path: str | os.PathLike | None = None) -> Key:
    """The key of ``items`` from ``path`` (default: ``listening_key.json`` in the items folder), checked: it must
    be the key of this item set and map each item's two clips to the two models."""
    source = Path(path) if path is not None else items.folder / KEY_FILE
    doc = read_data_file(source, _MAX_KEY_BYTES, _MAX_KEY_DEPTH,
                         f"the key of the listening items in {items.folder} (written by make_items beside "
                         f"items.json; it is kept out of the book, not out of the repository)")
    _check(items, doc, source)
    return Key(items, {item: dict(clips) for item, clips in doc["items"].items()})


def _check(items: ItemSet, doc: object, where: Path) -> None:
    def bad(reason: str) -> ListeningError:
        return ListeningError(f"{where}: {reason}")

    if not isinstance(doc, dict) or doc.get("schema") != KEY_SCHEMA_TAG:
        raise bad(f"expected schema {KEY_SCHEMA_TAG!r}")
    if doc.get("item_set") != items.set_id:
        raise bad(f"the key of item set {doc.get('item_set')!r}, not of the items in {items.folder} "
                  f"({items.set_id!r}); use the key written with these items")
    entries = doc.get("items")
    if not isinstance(entries, dict) or sorted(entries) != sorted(items.ids):
        raise bad(f"must list exactly the items {', '.join(items.ids)}")
    for item in items.items:
        clips = entries[item.id]
        if (not isinstance(clips, dict) or sorted(clips) != sorted(item.clips)
                or sorted(clips.values()) != sorted(MODELS)):
            raise bad(f"{item.id}: must map the clips {', '.join(item.clips)} to {' and '.join(MODELS)}, one each")
