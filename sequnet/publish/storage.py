"""Each committed audio file stored once: the listening items and the listening page's audio are the piano
chapter's clips under neutral names, so in ``results/`` they are relative symbolic links to them, not copies.
The book build follows the links (``shutil.copy2``), so the site still gets a real file under each neutral name.

    python -m sequnet.publish.storage results/published      # after committing a GPU run's notebooks
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

AUDIO_SUFFIXES = {".flac", ".wav", ".mp3", ".ogg", ".opus"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def duplicate_audio(root: Path) -> dict[Path, Path]:
    """Every audio file under ``root`` (not a link) whose bytes another one holds, mapped to the one that keeps
    them: the first in sorted order of (is it a blinded copy, path), so that a model-named clip is kept."""
    files = sorted((p for p in Path(root).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                    and p.is_file() and not p.is_symlink()),
                   key=lambda p: ("listening" in p.as_posix(), p.as_posix()))
    keeper: dict[str, Path] = {}
    duplicates = {}
    for path in files:
        digest = _digest(path)
        if digest in keeper:
            duplicates[path] = keeper[digest]
        else:
            keeper[digest] = path
    return duplicates


def link_duplicates(root: Path) -> list[Path]:
    """Replace each duplicate audio file under ``root`` by a relative link to the file that keeps its bytes
    (made beside it under a temporary name, then renamed over it); returns the replaced paths."""
    replaced = []
    for path, target in duplicate_audio(root).items():
        tmp = path.with_name(f".{path.name}.link")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.path.relpath(target, path.parent))
        if _digest(tmp) != _digest(path):          # never link to different bytes
            tmp.unlink()
            raise RuntimeError(f"{tmp} does not read as {path}")
        tmp.replace(path)
        replaced.append(path)
    return replaced


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/published")
    done = link_duplicates(root)
    print(f"{len(done)} duplicate audio file(s) under {root} replaced by links")
