"""Each committed audio file is stored once; the copies the listening test needs are links, and the book build
turns them back into files under their neutral names; the listening test's key never reaches the site."""
from __future__ import annotations

import json
from pathlib import Path

from sequnet.publish import book
from sequnet.publish.storage import duplicate_audio, link_duplicates

REPO = Path(__file__).resolve().parents[1]


def test_committed_audio_is_stored_once():
    duplicates = duplicate_audio(REPO / "results")
    assert not duplicates, ("audio stored twice; run `python -m sequnet.publish.storage results/published`: "
                            + ", ".join(f"{p.relative_to(REPO)} = {q.relative_to(REPO)}" for p, q in duplicates.items()))


def test_duplicates_become_links_that_the_book_copies_as_files(tmp_path):
    run = tmp_path / "run"
    (run / "piano_audio" / "audio").mkdir(parents=True)
    (run / "piano_audio" / "listening_items").mkdir()
    (run / "piano_audio" / "audio" / "item01_sequnet.flac").write_bytes(b"clip one")
    (run / "piano_audio" / "audio" / "item01_wavenet.flac").write_bytes(b"clip two")
    (run / "piano_audio" / "listening_items" / "item01_x.flac").write_bytes(b"clip one")
    (run / "piano_audio.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    assert link_duplicates(run) == [run / "piano_audio" / "listening_items" / "item01_x.flac"]
    neutral = run / "piano_audio" / "listening_items" / "item01_x.flac"
    assert neutral.is_symlink() and neutral.read_bytes() == b"clip one"
    assert not duplicate_audio(run) and link_duplicates(run) == []          # a second pass changes nothing
    site = tmp_path / "book"
    assert book.publish_notebooks(run, site) == ["piano_audio"]
    copied = site / "_assets" / "notebooks" / "piano_audio" / "listening_items" / "item01_x.flac"
    assert copied.is_file() and not copied.is_symlink() and copied.read_bytes() == b"clip one"


def test_published_notebooks_hold_no_machine_paths():
    """A reader never sees where a GPU machine kept its files (the published book is built from these)."""
    import re

    pattern = re.compile(r"(?<![\w.])/(tmp|root|home|work)/[\w.-]+")
    found = {p.name: pattern.findall(p.read_text()) for p in sorted((REPO / "results" / "published").rglob("*"))
             if p.suffix in (".ipynb", ".html", ".json", ".md") and not p.is_symlink()}
    assert not {name: hits for name, hits in found.items() if hits}


def test_the_book_never_copies_the_listening_key(tmp_path):
    """The items and their audio reach the site; the key beside them (which clip is which model) does not."""
    import numpy as np

    from sequnet.analysis import listening

    run = tmp_path / "run"
    tone = np.sin(np.arange(3000) / 10) * 0.3
    items = listening.write_items(run / "piano_audio" / "listening_items", [tone[:1000]],
                                  {m: [tone] for m in listening.MODELS}, 8000)
    (run / "piano_audio.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    assert (items.folder / listening.KEY_FILE).is_file()
    site = tmp_path / "book"
    book.publish_notebooks(run, site)
    copied = site / "_assets" / "notebooks" / "piano_audio" / "listening_items"
    assert sorted(p.name for p in copied.iterdir()) == sorted(items.audio_files() + [listening.ITEMS_MANIFEST])
    assert listening.KEY_FILE in book.PRIVATE_FILES


def test_the_published_listening_items_are_blind_and_keyed():
    """The committed item set: a manifest that names no model, random clip names, and its key in the repository."""
    from sequnet.analysis import listening

    items = listening.load_items(REPO / "results" / "published" / listening.DEFAULT_ITEMS_DIR)
    key = listening.load_key(items)
    assert all(sorted(key.models[it.id].values()) == sorted(listening.MODELS) for it in items.items)
    text = (items.folder / listening.ITEMS_MANIFEST).read_text().lower().replace(listening.ITEMS_SCHEMA_TAG, "")
    assert not any(word in text for word in ("sequnet", "wavenet", "seq-u-net", "models"))
    # the example in data/listening/README.md is a valid response to these items
    readme = (REPO / "data" / "listening" / "README.md").read_text()
    example = json.loads(readme.split("```json\n", 1)[1].split("```", 1)[0])
    assert not listening.response_problems(example) and not listening.item_set_problems(example, items)
