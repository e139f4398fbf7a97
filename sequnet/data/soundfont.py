"""SoundFont files: read an SF2, keep some of its presets, write it back as SF2 or as SF3 (Vorbis samples).

The piano that rendered the registered FLACs is the "Grand Piano" preset (bank 0, program 0) of
MuseScore_General_Full.sf2 (Debian ``musescore-general-soundfont-lossless``, 490 MB). Its 144 samples (stereo pairs,
44.1 kHz) hold 100 MB of PCM, too much to carry to the GPU machine, which gets at most 64 MiB per run. ``subset``
keeps one preset and what it uses, unchanged (zones, generators, modulators, loop points); ``to_bytes`` with
``vorbis_quality`` stores each sample as an Ogg Vorbis stream, the SF3 convention of MuseScore that TinySoundFont and
FluidSynth both read. The SF2 library on PyPI that fits (sf2utils) only parses, hence this small reader and writer
of the RIFF layout (SoundFont 2.04 specification).
"""
from __future__ import annotations

import dataclasses
import io
import struct
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile

from sequnet.data.files import DataError

GEN_INSTRUMENT, GEN_SAMPLE = 41, 53          # the generators whose amount is an index into inst / shdr
VORBIS_FLAG = 0x10                           # sampleType bit of an SF3 sample stored as Ogg Vorbis
_PHDR, _BAG, _MOD, _GEN, _INST, _SHDR = "<20sHHHIII", "<HH", "<10s", "<HH", "<20sH", "<20sIIIIIBbHH"
_TABLES = {b"phdr": _PHDR, b"pbag": _BAG, b"pmod": _MOD, b"pgen": _GEN, b"inst": _INST, b"ibag": _BAG,
           b"imod": _MOD, b"igen": _GEN, b"shdr": _SHDR}


@dataclasses.dataclass
class Zone:
    gens: list[tuple[int, int]]              # (generator, raw 16-bit amount), in file order
    mods: list[bytes]                        # 10-byte modulator records, copied as they are


@dataclasses.dataclass
class Sample:
    name: bytes
    pcm: np.ndarray | None                   # int16 frames (None until read)
    loop: tuple[int, int]                    # loop start and end, relative to the sample's first frame
    rate: int
    key: int
    correction: int
    link: int                                # index of the other half of a stereo pair (0 when none)
    kind: int                                # 1 mono, 2 right, 4 left, 8 linked (ROM bit 0x8000 not supported)
    source: tuple[int, int] = (0, 0)         # frames [start, end) in the file it was read from


@dataclasses.dataclass
class Instrument:
    name: bytes
    zones: list[Zone]


@dataclasses.dataclass
class Preset:
    name: bytes
    program: int
    bank: int
    zones: list[Zone]
    library: int = 0
    genre: int = 0
    morphology: int = 0


@dataclasses.dataclass
class SoundFont:
    info: dict[bytes, bytes]                 # INFO sub-chunks (ifil, INAM, ICOP, ...), raw
    presets: list[Preset]
    instruments: list[Instrument]
    samples: list[Sample]


def _chunks(fh, start: int, end: int):
    """(id, body offset, body size) of the RIFF chunks between ``start`` and ``end`` of an open file."""
    while start + 8 <= end:
        fh.seek(start)
        head = fh.read(8)
        cid, size = head[:4], struct.unpack("<I", head[4:8])[0]
        yield cid, start + 8, size
        start += 8 + size + (size & 1)


def _body(fh, where: tuple[int, int]) -> bytes:
    fh.seek(where[0])
    return fh.read(where[1])


def _records(raw: bytes, fmt: str) -> list[tuple]:
    return list(struct.iter_unpack(fmt, raw[:len(raw) - len(raw) % struct.calcsize(fmt)]))


def _zones(bags: list[tuple], gens: list[tuple], mods: list[tuple], first: int, last: int) -> list[Zone]:
    return [Zone([tuple(g) for g in gens[bags[b][0]:bags[b + 1][0]]], [m[0] for m in mods[bags[b][1]:bags[b + 1][1]]])
            for b in range(first, last)]


def read(path: str | Path, keep: Sequence[tuple[int, int]] | None = None) -> SoundFont:
    """The SF2 file at ``path``, or only its presets ``keep`` ((bank, program) pairs, see ``subset``): only the
    samples kept are read (16-bit PCM; 24-bit extra bytes are ignored, SF3 files are refused)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            font, where = _parse(fh, path)
            if keep is not None:
                font = subset(font, keep)
            for sample in font.samples:
                fh.seek(where + 2 * sample.source[0])
                sample.pcm = np.frombuffer(fh.read(2 * (sample.source[1] - sample.source[0])), dtype="<i2")
    except (OSError, struct.error) as exc:
        what = "is a directory, not a file" if path.is_dir() else f"cannot be read ({exc})"
        raise DataError(f"the SoundFont {path} {what}; give a readable .sf2 file") from exc
    return font


def _parse(fh, path: Path) -> tuple[SoundFont, int]:
    """The font without sample data (``Sample.source`` says where it is), and the file offset of the PCM."""
    head = fh.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise DataError(f"{path} is not a SoundFont (no RIFF sfbk header); give an .sf2 file")
    end = 8 + struct.unpack("<I", head[4:8])[0]
    lists = {}
    for cid, offset, size in _chunks(fh, 12, end):
        if cid == b"LIST":
            fh.seek(offset)
            lists[fh.read(4)] = (offset + 4, offset + size)
    missing = {b"INFO", b"sdta", b"pdta"} - set(lists)
    if missing:
        raise DataError(f"{path} lacks the {', '.join(sorted(m.decode() for m in missing))} part of a SoundFont")
    info = {cid: _body(fh, (o, s)) for cid, o, s in _chunks(fh, *lists[b"INFO"])}
    if int.from_bytes(info.get(b"ifil", b"\2\0")[:2], "little") >= 3:
        raise DataError(f"{path} is an SF3 (compressed) SoundFont; subsetting needs an uncompressed .sf2")
    smpl = {cid: o for cid, o, s in _chunks(fh, *lists[b"sdta"])}
    hydra = {cid: _body(fh, (o, s)) for cid, o, s in _chunks(fh, *lists[b"pdta"])}
    if b"smpl" not in smpl or any(k not in hydra for k in _TABLES):
        raise DataError(f"{path} lacks sample data or part of its preset tables; it is not a complete SoundFont")
    phdr, pbag, pmod, pgen, inst, ibag, imod, igen, shdr = (_records(hydra[k], f) for k, f in _TABLES.items())
    presets = [Preset(p[0], p[1], p[2], _zones(pbag, pgen, pmod, p[3], phdr[i + 1][3]), p[4], p[5], p[6])
               for i, p in enumerate(phdr[:-1])]
    instruments = [Instrument(r[0], _zones(ibag, igen, imod, r[1], inst[i + 1][1])) for i, r in enumerate(inst[:-1])]
    samples = [Sample(s[0], None, (s[3] - s[1], s[4] - s[1]), s[5], s[6], s[7], s[8], s[9], (s[1], s[2]))
               for s in shdr[:-1]]
    return SoundFont(info, presets, instruments, samples), smpl[b"smpl"]


def _referenced(zones: Iterable[Zone], generator: int) -> list[int]:
    return sorted({amount for zone in zones for oper, amount in zone.gens if oper == generator})


def _remap(zone: Zone, generator: int, mapping: dict[int, int]) -> Zone:
    return Zone([(o, mapping[a] if o == generator else a) for o, a in zone.gens], list(zone.mods))


def subset(font: SoundFont, keep: Sequence[tuple[int, int]]) -> SoundFont:
    """The presets ``keep`` ((bank, program) pairs) with the instruments and samples they use, and nothing else.
    Both halves of a stereo pair are kept. Missing presets raise ``DataError`` listing those available."""
    chosen = [p for p in font.presets if (p.bank, p.program) in set(keep)]
    absent = set(keep) - {(p.bank, p.program) for p in chosen}
    if absent:
        have = ", ".join(f"{p.bank}:{p.program} {p.name.rstrip(bytes(1)).decode(errors='replace')}"
                         for p in font.presets[:20])
        raise DataError(f"no preset {sorted(absent)} (bank, program) in the SoundFont; it has {have}, ...")
    inst_ids = _referenced((z for p in chosen for z in p.zones), GEN_INSTRUMENT)
    sample_ids = set(_referenced((z for i in inst_ids for z in font.instruments[i].zones), GEN_SAMPLE))
    sample_ids |= {font.samples[s].link for s in sample_ids if font.samples[s].kind & 0x0E}
    sample_ids = sorted(sample_ids)
    inst_map = {old: new for new, old in enumerate(inst_ids)}
    sample_map = {old: new for new, old in enumerate(sample_ids)}
    samples = [dataclasses.replace(font.samples[s], link=sample_map.get(font.samples[s].link, 0)) for s in sample_ids]
    instruments = [Instrument(font.instruments[i].name, [_remap(z, GEN_SAMPLE, sample_map)
                                                         for z in font.instruments[i].zones]) for i in inst_ids]
    presets = [dataclasses.replace(p, zones=[_remap(z, GEN_INSTRUMENT, inst_map) for z in p.zones]) for p in chosen]
    return SoundFont(dict(font.info), presets, instruments, samples)


def _zstr(text: str) -> bytes:
    raw = text.encode("ascii", errors="replace") + b"\0"
    return raw + b"\0" * (len(raw) & 1)


def _chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[(crc >> 24) ^ byte]
    return crc


def _fixed_serial(ogg: bytes, serial: int) -> bytes:
    """The Ogg stream with every page's serial number set to ``serial`` (and its CRC recomputed): libsndfile
    draws a random serial per stream, which would make every build of a font a different file."""
    pages, at = [], 0
    while at < len(ogg):
        if ogg[at:at + 4] != b"OggS":
            raise DataError("the Vorbis encoder wrote a damaged Ogg stream")
        segments = ogg[at + 26]
        size = 27 + segments + sum(ogg[at + 27:at + 27 + segments])
        page = bytearray(ogg[at:at + size])
        page[14:18], page[22:26] = struct.pack("<I", serial), bytes(4)
        page[22:26] = struct.pack("<I", _ogg_crc(page))
        pages.append(bytes(page))
        at += size
    return b"".join(pages)


def _vorbis(pcm: np.ndarray, rate: int, quality: float, serial: int) -> bytes:
    out = io.BytesIO()
    # libsndfile's compression level is 1 - Vorbis quality
    soundfile.write(out, pcm, rate, format="OGG", subtype="VORBIS", compression_level=1.0 - quality)
    return _fixed_serial(out.getvalue(), serial)


def _hydra(font: SoundFont, headers: list[tuple]) -> bytes:
    """The pdta list: every record table with its terminal record, indices counted as the tables grow."""
    tables = {k: [] for k in (b"phdr", b"pbag", b"pmod", b"pgen", b"inst", b"ibag", b"imod", b"igen")}

    def zones(bags: list, gens: list, mods: list, zone_list: list[Zone]) -> int:
        first = len(bags)
        for zone in zone_list:
            bags.append(struct.pack(_BAG, len(gens), len(mods)))
            gens += [struct.pack(_GEN, o, a) for o, a in zone.gens]
            mods += list(zone.mods)
        return first

    for p in font.presets:
        bag = zones(tables[b"pbag"], tables[b"pgen"], tables[b"pmod"], p.zones)
        tables[b"phdr"].append(struct.pack(_PHDR, p.name, p.program, p.bank, bag, p.library, p.genre, p.morphology))
    for i in font.instruments:
        bag = zones(tables[b"ibag"], tables[b"igen"], tables[b"imod"], i.zones)
        tables[b"inst"].append(struct.pack(_INST, i.name, bag))
    too_many = [k.decode() for k, v in tables.items() if len(v) >= 0xFFFF]
    if too_many:
        raise DataError(f"the SoundFont has too many records in {', '.join(too_many)} (at most 65534 each)")
    tables[b"phdr"].append(struct.pack(_PHDR, b"EOP", 0, 0, len(tables[b"pbag"]), 0, 0, 0))
    tables[b"inst"].append(struct.pack(_INST, b"EOI", len(tables[b"ibag"])))
    for bags, gens, mods in ((b"pbag", b"pgen", b"pmod"), (b"ibag", b"igen", b"imod")):
        tables[bags].append(struct.pack(_BAG, len(tables[gens]), len(tables[mods])))
        tables[gens].append(bytes(4))
        tables[mods].append(bytes(10))
    shdr = [struct.pack(_SHDR, *h) for h in headers] + [struct.pack(_SHDR, b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    order = (b"phdr", b"pbag", b"pmod", b"pgen", b"inst", b"ibag", b"imod", b"igen")
    return b"pdta" + b"".join(_chunk(k, b"".join(tables[k])) for k in order) + _chunk(b"shdr", b"".join(shdr))


def to_bytes(font: SoundFont, vorbis_quality: float | None = None, *, name: str | None = None,
             comment: str | None = None) -> bytes:
    """The SoundFont as a file: SF2 with 16-bit PCM, or, with ``vorbis_quality`` in [0, 1], SF3 with one mono Ogg
    Vorbis stream per sample (start/end are byte offsets, loop points are relative to the sample, as in
    MuseScore's sf3 files). ``name`` and ``comment`` replace INAM and ICMT. The output depends only on the input
    (and on libvorbis, for SF3)."""
    data, headers, position = [], [], 0
    for index, s in enumerate(font.samples):
        if vorbis_quality is None:
            body = s.pcm.astype("<i2").tobytes() + bytes(2 * 46)   # the spec's 46 zero frames after each sample
            start, end, frames = position // 2, position // 2 + len(s.pcm), position // 2
            kind = s.kind
        else:
            body = _vorbis(s.pcm, s.rate, vorbis_quality, serial=index + 1)
            body += bytes(len(body) & 1)
            start, end, frames = position, position + len(body), 0
            kind = s.kind | VORBIS_FLAG
        headers.append((s.name, start, end, frames + s.loop[0], frames + s.loop[1], s.rate, s.key, s.correction,
                        s.link, kind))
        data.append(body)
        position += len(body)
    info = dict(font.info)
    info[b"ifil"] = struct.pack("<HH", 3 if vorbis_quality is not None else 2, 1 if vorbis_quality is not None else 4)
    info.setdefault(b"isng", _zstr("EMU8000"))
    info.update({k: _zstr(v) for k, v in ((b"INAM", name), (b"ICMT", comment)) if v is not None})
    info_list = b"INFO" + _chunk(b"ifil", info.pop(b"ifil")) + b"".join(_chunk(k, v) for k, v in info.items())
    body = (_chunk(b"LIST", info_list) + _chunk(b"LIST", b"sdta" + _chunk(b"smpl", b"".join(data)))
            + _chunk(b"LIST", _hydra(font, headers)))
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"sfbk" + body
