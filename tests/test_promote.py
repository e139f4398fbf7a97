"""Executed chapters promoted from a run folder into the published folder (sequnet.publish.promote): what is
copied and what stays behind, machine paths removed, duplicates linked, refusals before anything is written."""
from __future__ import annotations

import json

import nbformat
import pytest

from sequnet.publish import promote


def run_folder(root, name="piano_audio"):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Raw piano audio")])
    nb.metadata["papermill"] = {"input_path": "/tmp/x/in.ipynb", "output_path": "/tmp/x/out.ipynb",
                                "parameters": {"scale": "paper"}}
    nbformat.write(nb, root / f"{name}.ipynb")
    folder = root / name
    for rel, data in (("records/piano_audio_sequnet.json", b"{}"), ("audio/long01_real.flac", b"fLaC-one"),
                      ("listening_items/c1.flac", b"fLaC-one"), ("listening_items/listening_key.json", b"{}"),
                      ("figures/curves.png", b"png"), ("checkpoints/piano_audio_sequnet.pt", b"weights"),
                      ("generations/long.npz", b"ids"), ("cache/corpus.pt", b"audio"), ("run.log", b"log")):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def test_a_chapter_is_published_without_what_stays_behind(tmp_path):
    source, dest = tmp_path / "build", tmp_path / "published"
    source.mkdir(), dest.mkdir()
    run_folder(source)
    assert promote.promote(source, ["piano_audio"], dest) == [dest / "piano_audio.ipynb"]
    got = sorted(p.relative_to(dest / "piano_audio").as_posix() for p in (dest / "piano_audio").rglob("*")
                 if p.is_file())
    assert got == ["audio/long01_real.flac", "figures/curves.png", "listening_items/c1.flac",
                   "listening_items/listening_key.json", "records/piano_audio_sequnet.json"]
    assert (dest / "piano_audio" / "listening_items" / "c1.flac").is_symlink()       # stored once
    meta = json.loads((dest / "piano_audio.ipynb").read_text())["metadata"]["papermill"]
    assert meta["input_path"] == "piano_audio.md" and meta["output_path"] == "piano_audio.ipynb"
    assert not list(dest.glob(".*"))                                                   # nothing staged is left


def test_a_published_chapter_is_replaced_only_when_asked(tmp_path):
    source, dest = tmp_path / "build", tmp_path / "published"
    source.mkdir(), dest.mkdir()
    run_folder(source)
    promote.promote(source, ["piano_audio"], dest)
    (source / "piano_audio" / "figures" / "curves.png").write_bytes(b"new png")
    with pytest.raises(FileExistsError, match="piano_audio already published.*--replace"):
        promote.promote(source, ["piano_audio"], dest)
    assert (dest / "piano_audio" / "figures" / "curves.png").read_bytes() == b"png"
    promote.promote(source, ["piano_audio"], dest, replace=True)
    assert (dest / "piano_audio" / "figures" / "curves.png").read_bytes() == b"new png"


def test_a_missing_or_failed_notebook_or_a_huge_file_is_refused_before_anything_is_copied(tmp_path, monkeypatch):
    source, dest = tmp_path / "build", tmp_path / "published"
    source.mkdir(), dest.mkdir()
    run_folder(source)
    (source / "listening_test.failed.ipynb").write_text("{}")
    with pytest.raises(FileNotFoundError, match="listening_test.ipynb is missing .its run failed"):
        promote.promote(source, ["piano_audio", "listening_test"], dest)
    monkeypatch.setattr(promote, "MAX_FILE_BYTES", 4)
    with pytest.raises(ValueError, match="long01_real.flac.*too large to commit"):
        promote.promote(source, ["piano_audio"], dest)
    assert not list(dest.iterdir())
    assert promote.main([str(source), "models", "--dest", str(dest)]) == 2


def test_a_replaced_chapter_keeps_the_records_of_runs_the_new_one_does_not_report(tmp_path):
    """Seed 1111's chapter replaced by one executed on seed 1's checkpoints: seed 1111's records move to the kept
    records (still results); a record the new chapter writes again is simply replaced."""
    source, dest, keep = tmp_path / "build", tmp_path / "published", tmp_path / "kept"
    source.mkdir(), dest.mkdir()
    folder = run_folder(source)
    (folder / "records" / "piano_audio_wavenet.json").write_text('{"seed": 1111}')
    promote.promote(source, ["piano_audio"], dest, keep=keep)
    (folder / "records" / "piano_audio_wavenet.json").unlink()
    (folder / "records" / "piano_audio_wavenet_seed1.json").write_text('{"seed": 1}')
    (folder / "records" / "piano_audio_sequnet.json").write_text('{"again": true}')
    (keep).mkdir()
    (keep / "piano_audio_wavenet.json").write_text('{"seed": 1111, "another": "run"}')
    with pytest.raises(FileExistsError, match="piano_audio_wavenet.json already holds another record"):
        promote.promote(source, ["piano_audio"], dest, replace=True, keep=keep)
    assert (dest / "piano_audio" / "records" / "piano_audio_wavenet.json").is_file()     # nothing moved
    assert not list(dest.glob(".*"))                                                   # nor staged
    (keep / "piano_audio_wavenet.json").unlink()
    promote.promote(source, ["piano_audio"], dest, replace=True, keep=keep)
    assert sorted(p.name for p in (dest / "piano_audio" / "records").iterdir()) == [
        "piano_audio_sequnet.json", "piano_audio_wavenet_seed1.json"]
    assert (keep / "piano_audio_wavenet.json").read_text() == '{"seed": 1111}'
    assert (dest / "piano_audio" / "records" / "piano_audio_sequnet.json").read_text() == '{"again": true}'
    assert [p.name for p in keep.iterdir()] == ["piano_audio_wavenet.json"]
