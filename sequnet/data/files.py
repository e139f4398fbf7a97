"""Safe file handling for the data layer: errors that say what to do, atomic writes, and no leftovers.

* Every ``OSError`` the data layer meets becomes a ``DataError`` that names the path and the fix (``reading``,
  ``cannot_write``), so that a directory in a file's place or an unreadable file is explained, not a traceback.
* A file is written under a temporary name next to its target (``.NAME.XXXX.partial``) and renamed over the target
  only once it is complete and verified (``temporary_sibling``), so a target is never half-written and an old copy
  stays until its replacement is in hand.
* The writer holds an advisory lock on its temporary file. A temporary file that nobody holds is a leftover of
  an interrupted run: the next write of the same target removes it (``remove_leftovers``), while the temporary
  file of a concurrent writer (another DataLoader worker or DDP rank fetching the same file) is left alone.
"""
from __future__ import annotations

import contextlib
import glob
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows has no flock: leftovers are then only removed once they are a day old
    fcntl = None

ENV_ROOT = "SEQUNET_DATA"
LEFTOVER_SUFFIXES = (".partial", ".tmp")
_UNLOCKED_LEFTOVER_AGE_S = 24 * 3600


class DataError(RuntimeError):
    """A dataset file is missing, corrupt or cannot be obtained; the message says which and how to fix it."""


def describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def cannot_write(folder: Path, exc: OSError) -> DataError:
    return DataError(f"cannot write to {folder} ({describe(exc)}). Choose a writable data root (--root DIR or "
                     f"${ENV_ROOT}), or fix that folder: it must be a directory you can write to.")


@contextlib.contextmanager
def reading(path: Path, fix: str) -> Iterator[None]:
    """Turn an ``OSError`` raised while reading ``path`` into a ``DataError`` naming it and ``fix``."""
    try:
        yield
    except OSError as exc:
        what = "is a directory, not a file" if Path(path).is_dir() else f"cannot be read ({describe(exc)})"
        raise DataError(f"{path} {what}. {fix}") from exc


# For a registered file that was verified just before it was read.
REREAD_FIX = ("It was verified a moment ago, so something changed it meanwhile: run `python -m sequnet data verify`, "
              "which says what is wrong and how to fix it.")


def _lock(fd: int, block: bool) -> bool:
    """Take the advisory lock on ``fd``; False when another process holds it (only when not blocking). Without
    flock (Windows) this always succeeds."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


def remove_leftovers(target: Path) -> list[Path]:
    """Remove the temporary files (``.NAME.*.partial``, ``.NAME.*.tmp``) that an interrupted write of ``target``
    left next to it, except those a running writer still holds locked; returns the paths removed."""
    try:
        candidates = [p for p in target.parent.glob(f".{glob.escape(target.name)}.*")
                      if p.name.endswith(LEFTOVER_SUFFIXES)]
    except OSError:
        return []
    removed = []
    for path in candidates:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue                        # gone meanwhile, or not ours to read
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or not _lock(fd, block=False):
                continue                    # a writer is alive (or it is not a file we made)
            if fcntl is None and time.time() - st.st_mtime < _UNLOCKED_LEFTOVER_AGE_S:
                continue
            if os.path.samestat(st, os.stat(path)):
                path.unlink()
                removed.append(path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def temporary_sibling(target: Path, suffix: str = ".partial") -> Iterator[Path]:
    """A new empty file next to ``target``, locked while the block runs; the block writes it and renames it over
    ``target`` (``os.replace``) when it is complete. Whatever the block leaves under the temporary name is removed
    afterwards. Leftovers of earlier interrupted writes of ``target`` are removed first."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(target.parent, exc) from exc
    remove_leftovers(target)
    while True:
        try:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        except OSError as exc:
            raise cannot_write(target.parent, exc) from exc
        _lock(fd, block=True)
        if os.fstat(fd).st_nlink:
            break
        os.close(fd)                        # another run's cleanup removed it before we locked it: make another
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)         # nothing is left there after a successful os.replace
        os.close(fd)                        # releases the lock
