"""Executed chapters from a run folder into ``results/published/``, the reader's book: each notebook without the
paths of the machine that ran it, and the files of its folder that the book or the analysis reads (records,
figures, audio, JSON such as the listening test's key); checkpoints, arrays and logs stay behind. A chapter
already published is replaced only when asked, and a chapter is staged beside its place before it replaces
anything, so nothing is left half-copied. Audio stored twice is then linked (``sequnet.publish.storage``).

    python -m sequnet.publish.promote build/paper piano_audio listening_test [--replace]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from sequnet.publish.book import ASSET_SUFFIXES, without_machine_paths
from sequnet.publish.paths import RESULTS
from sequnet.publish.storage import link_duplicates

MAX_FILE_BYTES = 5_000_000        # larger files belong in a data store, not in the repository
# Where a replaced chapter's records of runs the new chapter does not hold go (e.g. seed 1111's, when the chapter is
# executed again on seed 1's checkpoints): they stay results, and the seed planning and the reproduction page still
# find them (benchmarks/table1_seeds.sh commits the seeds' own records there too).
KEPT_RECORDS = RESULTS / "paper" / "seeds" / "records"


def _kept(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in ASSET_SUFFIXES and not path.name.startswith(".")


def check(source: Path, names: list[str], dest: Path, replace: bool, keep: Path = KEPT_RECORDS) -> None:
    """Refuse before copying anything: a missing (or only failed) notebook, a file too large to commit, a
    chapter already published without ``replace``, or a replaced chapter's record that cannot be kept."""
    for name in names:
        if not (source / f"{name}.ipynb").is_file():
            failed = (source / f"{name}.failed.ipynb").is_file()
            raise FileNotFoundError(f"{source / (name + '.ipynb')} is missing" + (
                " (its run failed: see the .failed.ipynb beside it)" if failed else
                f"; execute it first: python -m sequnet run --only {name} --out {source}"))
        big = [p for p in (source / name).rglob("*") if _kept(p) and p.stat().st_size > MAX_FILE_BYTES]
        if big:
            raise ValueError(f"{', '.join(map(str, big))}: over {MAX_FILE_BYTES:,} bytes, too large to commit")
    there = [name for name in names if (dest / f"{name}.ipynb").exists() or (dest / name).exists()]
    if there and not replace:
        raise FileExistsError(f"{', '.join(there)} already published in {dest}; pass --replace to replace them")
    clash = [keep / p.name for name in there for p in leaving_records(dest / name, source / name)
             if (keep / p.name).exists() and (keep / p.name).read_bytes() != p.read_bytes()]
    if clash:
        raise FileExistsError(f"{', '.join(map(str, clash))} already holds another record than the one the "
                              f"replaced chapter has, which would move there; move one of them aside first")


def leaving_records(old: Path, new: Path) -> list[Path]:
    """The records of a published chapter folder ``old`` that its replacement ``new`` does not write again (a
    record's file name names its task, model and seed)."""
    return [p for p in sorted((old / "records").glob("*.json")) if not (new / "records" / p.name).exists()]


def keep_other_records(old: Path, new: Path, keep: Path) -> list[Path]:
    """Move :func:`leaving_records` to ``keep`` (checked by :func:`check` first); returns where they went."""
    kept = []
    for path in leaving_records(old, new):
        keep.mkdir(parents=True, exist_ok=True)
        if (keep / path.name).exists():          # the same record, kept by an earlier promotion
            path.unlink()
        else:
            os.replace(path, keep / path.name)
        kept.append(keep / path.name)
    return kept


def promote(source: str | os.PathLike, names: list[str], dest: str | os.PathLike = RESULTS / "published",
            replace: bool = False, keep: str | os.PathLike = KEPT_RECORDS) -> list[Path]:
    """Publish the executed notebooks ``names`` of ``source`` in ``dest``; returns the notebooks written. A replaced
    chapter's records of runs the new one does not hold move to ``keep`` (:func:`keep_other_records`)."""
    import nbformat

    source, dest = Path(source), Path(dest)
    check(source, names, dest, replace, Path(keep))
    written = []
    for name in names:
        staged_nb, staged_dir = dest / f".{name}.ipynb.partial", dest / f".{name}.partial"
        shutil.rmtree(staged_dir, ignore_errors=True)
        if (source / name).is_dir():
            for path in sorted(p for p in (source / name).rglob("*") if _kept(p)):
                target = staged_dir / path.relative_to(source / name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)          # a link in the source is copied as the file it points to
        staged_dir.mkdir(parents=True, exist_ok=True)
        nb = without_machine_paths(nbformat.read(source / f"{name}.ipynb", as_version=4), name)
        nbformat.write(nb, staged_nb)
        if (dest / name).is_dir():
            for path in keep_other_records(dest / name, staged_dir, Path(keep)):
                print(f"kept {path} (a run the new chapter does not report)")
        shutil.rmtree(dest / name, ignore_errors=True)
        os.replace(staged_dir, dest / name)
        os.replace(staged_nb, dest / f"{name}.ipynb")
        written.append(dest / f"{name}.ipynb")
    link_duplicates(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sequnet.publish.promote", description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path, help="a run folder of executed notebooks (e.g. build/paper)")
    p.add_argument("names", nargs="+", help="the chapters to publish (notebook names without .ipynb)")
    p.add_argument("--dest", type=Path, default=RESULTS / "published")
    p.add_argument("--replace", action="store_true", help="replace chapters already published")
    a = p.parse_args(argv)
    try:
        for path in promote(a.source, a.names, a.dest, a.replace):
            print(f"published {path}")
    except (OSError, ValueError) as e:
        print(f"promote: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
