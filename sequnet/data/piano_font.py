"""The piano SoundFont the GPU machine renders with: a recipe from a registered Debian package to a registered SF3.

``python -m sequnet data soundfont`` (``piano_font``) takes the Grand Piano preset of MuseScore_General_Full.sf2 out
of ``musescore-general-soundfont-lossless`` (read as an ar + tar.xz archive, no dpkg needed), bakes its modulators
into zones for TinySoundFont (``sequnet.data.soundfont_bake``) and stores its samples as Ogg Vorbis: 12.7 MB instead
of the package's 490 MB font, small enough to travel to the GPU machine. The result is byte-identical on every run
(the Ogg serial numbers are fixed), so the registry verifies it by sha256.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from sequnet.data import registry
from sequnet.data.files import DataError
from sequnet.data.soundfont import read, to_bytes
from sequnet.data.soundfont_bake import bake

PIANO_DEB, PIANO_FONT = registry.PIANO_DEB, registry.PIANO_FONT
DEB_MEMBER = "./usr/share/sounds/sf2/MuseScore_General_Full.sf2"
PIANO_PRESET = (0, 0)                        # bank 0, program 0: "Grand Piano", as in the registered FLACs
VORBIS_QUALITY = 0.6                         # 12.7 MB; a render differs from the PCM font's by -40 dB (SNR)
PIANO_COMMENT = ("The Grand Piano preset (bank 0, program 0) of MuseScore_General_Full.sf2 (Debian "
                 "musescore-general-soundfont-lossless 0.2.1-1; MIT, samples public domain), with its key and velocity "
                 "modulators baked into zones for TinySoundFont and the samples as Ogg Vorbis q0.6; made by "
                 "`python -m sequnet data soundfont`.")


def _deb_member(deb: Path, member: str, target: Path) -> None:
    """Copy ``member`` of the data archive of a Debian package to ``target`` (ar, then tar.xz; no dpkg needed)."""
    with open(deb, "rb") as fh:
        if fh.read(8) != b"!<arch>\n":
            raise DataError(f"{deb} is not a Debian package (no ar header)")
        while True:
            header = fh.read(60)
            if len(header) < 60:
                raise DataError(f"{deb} has no data.tar member")
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
            if name.startswith("data.tar"):
                break
            fh.seek(size + (size & 1), os.SEEK_CUR)
        with tarfile.open(fileobj=fh, mode="r|*") as archive:
            for info in archive:
                if info.name == member:
                    with archive.extractfile(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    return
    raise DataError(f"{deb} does not contain {member}")


def build_piano_font(deb: Path) -> bytes:
    """The baked piano SF3 made from the Debian package file ``deb`` (about 40 s and 0.6 GB of temporary disk)."""
    with tempfile.TemporaryDirectory(prefix="sequnet-sf2-") as tmp:
        sf2 = Path(tmp) / "MuseScore_General_Full.sf2"
        _deb_member(deb, DEB_MEMBER, sf2)
        font = bake(read(sf2, keep=[PIANO_PRESET]))
    return to_bytes(font, VORBIS_QUALITY, name="Grand Piano (baked)", comment=PIANO_COMMENT)


def piano_font(root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None) -> Path:
    """Path of the verified piano SF3 under the data root: already there, copied from the mirror, or made from
    the Debian package (downloaded from deb.debian.org, 330 MB, unless the mirror has it)."""
    entry = registry.entry_for(PIANO_FONT)
    target = registry.data_root(root) / entry.path
    source = registry.mirror_dir(mirror)
    if registry.status_of(entry, target).status == registry.NOT_FETCHED and not (
            source is not None and (source / entry.path).is_file()):
        deb = registry.ensure(PIANO_DEB, root=root, mirror=mirror)
        registry.install(entry, target, lambda tmp: tmp.write_bytes(build_piano_font(deb)),
                         f"the recipe applied to {deb.name}")
    return registry.ensure(PIANO_FONT, root=root, mirror=mirror)
