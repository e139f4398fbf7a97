"""Rendering piano MIDI: the SoundFont subset/SF3 writer, modulator baking, TinySoundFont synthesis (sustain pedal),
the parallel corpus renderer with its manifest, and every bad input the issue lists. A tiny synthetic SoundFont (a
sine sample) stands in for the 12.7 MB piano font, so this runs in CI without it."""
from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import zipfile

import numpy as np
import pytest
import soundfile

from sequnet.data import audio, piano_font, registry, render, render_tsf, soundfont, soundfont_bake
from sequnet.data.registry import DataError

RATE = 44100


def _sine_sample(name: bytes, key: int, seconds: float = 0.5) -> soundfont.Sample:
    freq = 440.0 * 2 ** ((key - 69) / 12)
    period = RATE / freq
    n = int(round(int(seconds * RATE / period) * period))  # whole periods, so the loop is seamless enough
    pcm = (np.sin(2 * np.pi * freq * np.arange(n) / RATE) * 12000).astype(np.int16)
    return soundfont.Sample(name, pcm, (100, n - 100), RATE, key, 0, 0, 1)


def tiny_font(mods: list[bytes] | None = None) -> soundfont.SoundFont:
    """Two presets (0:0 plays a looped 440 Hz sine, 0:1 a 220 Hz one), one instrument and sample each."""
    zone = [(54, 1), (38, (-1200) & 0xFFFF), (soundfont.GEN_SAMPLE, 0)]  # loop; release 0.5 s
    return soundfont.SoundFont(
        {b"ifil": struct.pack("<HH", 2, 4), b"INAM": b"tiny\0\0"},
        [soundfont.Preset(b"Sine", 0, 0, [soundfont.Zone([(soundfont.GEN_INSTRUMENT, 0)], [])]),
         soundfont.Preset(b"Low", 1, 0, [soundfont.Zone([(soundfont.GEN_INSTRUMENT, 1)], [])])],
        [soundfont.Instrument(b"SineInst", [soundfont.Zone(zone, list(mods or []))]),
         soundfont.Instrument(b"LowInst", [soundfont.Zone(zone[:2] + [(soundfont.GEN_SAMPLE, 1)], [])])],
        [_sine_sample(b"A4", 69), _sine_sample(b"A3", 57)])


def midi_file(events: list[tuple[float, bytes]], tpq: int = 480) -> bytes:
    """A one-track Standard MIDI File at 120 bpm from (seconds, message) pairs."""
    track, now = b"", 0
    for seconds, message in sorted(events, key=lambda e: e[0]):
        tick = int(round(seconds * 2 * tpq))
        delta, now = tick - now, tick
        varlen = [delta & 0x7F]
        while delta > 0x7F:
            delta >>= 7
            varlen.insert(0, (delta & 0x7F) | 0x80)
        track += bytes(varlen) + message
    track += b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(track)) + track


NOTE = midi_file([(0.0, b"\x90\x45\x64"), (0.5, b"\x80\x45\x00")])  # A4, half a second


@pytest.fixture
def font_path(tmp_path):
    path = tmp_path / "tiny.sf3"
    path.write_bytes(soundfont.to_bytes(tiny_font(), vorbis_quality=0.5))
    return path


# --- the SoundFont format ---

def test_subset_keeps_one_preset_and_what_it_uses(tmp_path):
    sf2 = tmp_path / "two.sf2"
    sf2.write_bytes(soundfont.to_bytes(tiny_font()))
    whole = soundfont.read(sf2)
    assert [(p.bank, p.program) for p in whole.presets] == [(0, 0), (0, 1)] and len(whole.samples) == 2
    assert np.array_equal(whole.samples[1].pcm, tiny_font().samples[1].pcm)  # PCM survives the round trip
    low = soundfont.read(sf2, keep=[(0, 1)])
    assert [p.name.rstrip(b"\0") for p in low.presets] == [b"Low"] and len(low.instruments) == 1
    assert [s.name.rstrip(b"\0") for s in low.samples] == [b"A3"]
    assert low.presets[0].zones[0].gens == [(soundfont.GEN_INSTRUMENT, 0)]      # indices renumbered
    assert low.instruments[0].zones[0].gens[-1] == (soundfont.GEN_SAMPLE, 0)
    with pytest.raises(DataError, match=r"no preset \[\(5, 5\)\]"):
        soundfont.read(sf2, keep=[(5, 5)])


@pytest.mark.parametrize("content, match", [(None, "does not exist|cannot be read"),
                                            (b"RIFF1234WAVE", "not a SoundFont"), ("dir", "is a directory")])
def test_reading_a_bad_soundfont_names_it(tmp_path, content, match):
    path = tmp_path / "bad.sf2"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=match) as err:
        soundfont.read(path)
    assert str(path) in str(err.value)


def test_sf3_is_deterministic_and_decodes():
    """libsndfile gives each Ogg stream a random serial; the writer fixes it, so a font is always the same file."""
    first, second = (soundfont.to_bytes(tiny_font(), vorbis_quality=0.5) for _ in range(2))
    assert first == second
    ogg_at = first.index(b"OggS")
    decoded, rate = soundfile.read(io.BytesIO(first[ogg_at:]), dtype="int16")  # CRCs still valid after the fix
    assert rate == RATE and abs(len(decoded) - len(tiny_font().samples[0].pcm)) < 2048


def test_deb_member_is_extracted_without_dpkg(tmp_path):
    payload = b"sf2 bytes" * 100
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:xz") as tar:
        info = tarfile.TarInfo(piano_font.DEB_MEMBER)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    members = [(b"debian-binary", b"2.0\n"), (b"control.tar.xz", b"x"), (b"data.tar.xz", tar_bytes.getvalue())]
    deb = tmp_path / "p.deb"
    deb.write_bytes(b"!<arch>\n" + b"".join(name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) * 2 + b"644".ljust(8)
                                           + str(len(body)).encode().ljust(10) + b"`\n" + body + b"\n" * (len(body) & 1)
                                           for name, body in members))
    piano_font._deb_member(deb, piano_font.DEB_MEMBER, tmp_path / "out.sf2")
    assert (tmp_path / "out.sf2").read_bytes() == payload
    with pytest.raises(DataError, match="does not contain ./nothing"):
        piano_font._deb_member(deb, "./nothing", tmp_path / "x")
    with pytest.raises(DataError, match="not a Debian package"):
        piano_font._deb_member(tmp_path / "out.sf2", piano_font.DEB_MEMBER, tmp_path / "x")


# --- modulator baking ---

def test_modulator_sources_follow_fluidsynth():
    src = soundfont_bake.source_value
    assert src(0x0002, 0, 64) == pytest.approx(0.5)                      # velocity, linear
    assert src(0x0102, 0, 64) == pytest.approx(0.5)                      # ... negative: 1 - 64/128
    assert src(0x0203, 96, 0) == pytest.approx(0.5)                      # key, bipolar: 2 * 96/128 - 1
    assert src(0x0C02, 0, 63) == 0.0 and src(0x0C02, 0, 64) == 1.0       # switch at half range
    # FluidSynth's default velocity -> attenuation: 960 cB x concave(127 (1 - v/128)); about 40 log10(127/v) dB
    assert 960 * src(0x0502, 0, 10) == pytest.approx(400 * np.log10(127 / 10), rel=0.03)
    assert 960 * src(0x0502, 0, 127) < 2
    assert src(0x0087, 60, 100) is None                                  # CC7: left to the synthesiser


def test_bake_splits_zones_and_adds_modulator_values():
    vel_to_cutoff = struct.pack("<HHhHH", 0x0002, 8, 2400, 0, 0)        # velocity opens the filter by 2400 cents
    font = tiny_font([vel_to_cutoff])
    font.instruments[0].zones[0].gens.insert(0, (8, 6000))              # cutoff 6000 cents at velocity 0
    baked = soundfont_bake.bake(font)
    zones = baked.instruments[0].zones
    assert len(zones) == len(soundfont_bake.VELOCITY_BANDS) and all(z.mods == [] for z in zones)
    by_band = {dict(z.gens)[soundfont_bake.GEN_VELRANGE] >> 8: dict(z.gens) for z in zones}
    loud, soft = by_band[127], by_band[15]
    assert loud[8] == round(6000 + 2400 * 123.5 / 128 - 2400 * (1 - 123.5 / 128))  # + FluidSynth's default
    assert soft[8] == round(6000 + 2400 * 11.5 / 128)                   # (that one acts from velocity 64 up)
    # attenuation: FluidSynth's curve minus TinySoundFont's own 20 log10(v/127) dB
    assert soft[48] == round(960 * soundfont_bake.source_value(0x0502, 0, 11.5) + 200 * np.log10(11.5 / 127))
    assert list(dict(zones[0].gens))[:2] == [43, 44] and zones[0].gens[-1][0] == soundfont.GEN_SAMPLE


# --- TinySoundFont synthesis ---

def test_missing_or_broken_soundfont_is_named(tmp_path):
    pytest.importorskip("tinysoundfont")
    garbage = tmp_path / "garbage.sf2"
    garbage.write_bytes(b"not a soundfont at all")
    for path, match in ((tmp_path / "absent.sf2", "does not exist"), (tmp_path, "is a directory"),
                        (garbage, "cannot be loaded")):
        with pytest.raises(DataError, match=match) as err:
            render_tsf.load_tinysoundfont(path)
        assert str(path) in str(err.value)
    with pytest.raises(DataError, match="needs --soundfont"):
        render.render_piano(tmp_path / "out", tmp_path / "none.zip", renderer="tinysoundfont")


def test_synthesis_plays_the_note_and_holds_it_with_the_pedal(font_path):
    pytest.importorskip("tinysoundfont")
    plain = render_tsf.synthesize(NOTE, font_path)
    assert plain.dtype == np.float32 and abs(float(np.abs(plain).max()) - 10 ** (-1 / 20)) < 1e-4
    spectrum = np.abs(np.fft.rfft(plain[:8000]))
    assert abs(np.argmax(spectrum) * 16000 / 8000 - 440) <= 4            # A4 at 16 kHz
    pedalled = render_tsf.synthesize(midi_file([(0.0, b"\xb0\x40\x7f"), (0.0, b"\x90\x45\x64"),
                                                (0.5, b"\x80\x45\x00"), (2.0, b"\xb0\x40\x00")]), font_path)

    def level(x, t):  # RMS around t seconds
        return float(np.sqrt(np.mean(x[int(t * 16000):int(t * 16000) + 1600] ** 2)))
    assert level(plain, 1.5) < 0.05 * level(plain, 0.2)                  # released at 0.5 s: gone by 1.5 s
    assert level(pedalled, 1.5) > 0.5 * level(pedalled, 0.2)             # the pedal holds it until 2 s
    with pytest.raises(DataError, match="cannot parse|no notes"):
        render_tsf.synthesize(b"MThd garbage", font_path)


# --- the corpus ---

def _zip(tmp_path, pieces: dict[str, bytes]):
    path = tmp_path / "midis.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in pieces.items():
            z.writestr(f"midis/Someone/{name}.mid", data)
        z.writestr("metadata.csv", "composer,title,year,midi,duration\n" + "".join(  # case differs, as in the real one
            f"Someone,{n},1800,midis/Someone/{n.upper()}.mid,900\n" for n in pieces))
    return path


def test_corpus_renders_in_parallel_lists_a_failed_piece_and_writes_a_manifest(tmp_path, font_path):
    pytest.importorskip("tinysoundfont")
    pieces = {f"p{i}": NOTE for i in range(5)} | {"broken": b"MThd this is not MIDI"}
    midi_zip, out = _zip(tmp_path, pieces), tmp_path / "out"
    result = render.render_piano(out, midi_zip, renderer="tinysoundfont", soundfont=font_path, workers=2,
                                 test_fraction=0.3)
    assert set(result.failed) == {"broken"} and len(result.rendered) == 5
    manifest = json.loads(result.manifest.read_text())
    train, test = render._render_split(pieces, 0.3)
    assert manifest["splits"]["test"]["pieces"] == [p for p in test if p != "broken"]
    assert manifest["splits"]["train"]["pieces"] == [p for p in train if p != "broken"]
    assert manifest["renderer"]["name"] == "tinysoundfont" and manifest["sample_rate"] == 16000
    assert manifest["soundfont"] == {"name": "tiny.sf3", "bytes": font_path.stat().st_size,
                                     "sha256": registry.sha256_of(font_path), "registered_as": None}
    assert "broken" in manifest["failed"] and str(tmp_path) not in result.manifest.read_text()  # no machine paths
    assert not [p for p in out.rglob(".*")]                              # no temporary leftovers
    assert soundfile.info(str(result.rendered[0])).samplerate == 16000
    again = render.render_piano(out, midi_zip, renderer="tinysoundfont", soundfont=font_path, test_fraction=0.3,
                                pieces=[p for p in pieces if p != "broken"])
    assert again.rendered == [] and again.failed == {}                   # done pieces are skipped
    other = tmp_path / "other.sf3"
    other.write_bytes(soundfont.to_bytes(tiny_font(), vorbis_quality=0.2))
    with pytest.raises(DataError, match="one timbre"):
        render.render_piano(out, midi_zip, renderer="tinysoundfont", soundfont=other)


def test_hours_choose_pieces_until_each_side_is_long_enough(tmp_path, font_path):
    pytest.importorskip("tinysoundfont")
    pieces = {f"p{i:02d}": NOTE for i in range(20)}
    out = tmp_path / "out"
    result = render.render_piano(out, _zip(tmp_path, pieces), renderer="tinysoundfont", soundfont=font_path,
                                 hours=(0.5, 0.25), test_fraction=0.5)  # metadata says 900 s a piece
    manifest = json.loads(result.manifest.read_text())
    assert (manifest["splits"]["train"]["count"], manifest["splits"]["test"]["count"]) == (2, 1)
    with zipfile.ZipFile(tmp_path / "midis.zip", "a") as z:
        z.writestr("midis/Someone/extra.mid", NOTE)
    with pytest.raises(DataError, match="no duration for extra"):
        render.render_piano(out, tmp_path / "midis.zip", renderer="tinysoundfont", soundfont=font_path, hours=(1, 1))


# --- the registered piano font ---

def test_piano_font_is_copied_verified_or_made_and_never_half_written(tmp_path, monkeypatch):
    root, mirror = tmp_path / "root", tmp_path / "mirror"
    (mirror / "soundfont").mkdir(parents=True)
    with pytest.raises(DataError, match="missing from the data root and from the mirror"):
        piano_font.piano_font(root=root, mirror=mirror)  # neither the font nor its Debian package: says so
    deb, font = b"a stand-in package", b"a stand-in font"
    for path, data in ((piano_font.PIANO_DEB, deb), (piano_font.PIANO_FONT, font)):
        entry = registry.OPTIONAL[path]
        monkeypatch.setitem(registry.OPTIONAL, path, registry.DataFile(
            path, len(data), hashlib.sha256(data).hexdigest(), entry.group, None, entry.origin))
    (mirror / piano_font.PIANO_DEB).write_bytes(deb)
    monkeypatch.setattr(piano_font, "build_piano_font", lambda path: b"another encoder's font")
    with pytest.raises(DataError, match="expected") as err:
        piano_font.piano_font(root=root, mirror=mirror)       # made, but not the registered bytes: nothing written
    assert "the recipe applied to" in str(err.value) and not (root / piano_font.PIANO_FONT).exists()
    assert not list((root / "soundfont").glob(".*"))
    monkeypatch.setattr(piano_font, "build_piano_font", lambda path: font if path.read_bytes() == deb else b"")
    assert piano_font.piano_font(root=root, mirror=mirror).read_bytes() == font
    rows = {row.path: row.status for row in registry.verify(root=root)}
    assert rows[piano_font.PIANO_FONT] == registry.OK and rows[piano_font.PIANO_DEB] == registry.OK
    assert "ptb/ptb.train.txt" in rows and piano_font.PIANO_FONT not in registry.resolve_names(["all"])


@pytest.mark.slow
def test_registered_font_sounds_like_the_registered_fluidsynth_render(data_root, data_mirror):
    """With the registered piano font in the mirror (`<mirror>/soundfont/...sf3`), TinySoundFont's Für Elise has
    FluidSynth's spectrum: measured within 1.6 dB per octave band up to 4 kHz (unbaked: 16 dB short at 1-2 kHz)."""
    pytest.importorskip("tinysoundfont")
    try:
        font = registry.ensure(registry.PIANO_FONT, root=data_root, mirror=data_mirror)
    except DataError as exc:
        pytest.skip(str(exc))
    midi = zipfile.ZipFile(registry.ensure(render.MIDI_ZIP, root=data_root, mirror=data_mirror))
    ours = render_tsf.synthesize(midi.read("midis/Beethoven/elise.mid"), font)[:60 * 16000]
    theirs, _ = soundfile.read(registry.ensure("piano/rendered/test/elise.flac", root=data_root, mirror=data_mirror))

    def bands(x):
        power = np.abs(np.fft.rfft(x[:60 * 16000])) ** 2
        freq = np.fft.rfftfreq(60 * 16000, 1 / 16000)
        return np.array([10 * np.log10(power[(freq >= lo) & (freq < 2 * lo)].sum() / power.sum())
                         for lo in (250, 500, 1000, 2000)])
    assert np.abs(bands(ours) - bands(theirs[:60 * 16000])).max() < 3.0


def test_music_excerpts_fall_back_to_tinysoundfont_and_say_why_not(tmp_path, monkeypatch, font_path):
    """The music chapters render their generated MIDI with FluidSynth where it is installed, else with
    TinySoundFont and the baked piano font where that is already here (never downloading it)."""
    pytest.importorskip("tinysoundfont")
    from sequnet.analysis import samples

    def no_fluidsynth(*args, **kwargs):
        raise DataError("render-piano needs fluidsynth, sox.")

    monkeypatch.setattr(audio, "find_render_tools", no_fluidsynth)
    monkeypatch.setenv("SEQUNET_DATA", str(tmp_path / "root"))
    monkeypatch.delenv("SEQUNET_DATA_MIRROR", raising=False)
    midi = tmp_path / "excerpt.mid"
    midi.write_bytes(NOTE)
    path, why = samples._render(midi)
    assert path is None and "fluidsynth" in why and "data soundfont" in why
    font = tmp_path / "root" / registry.PIANO_FONT
    font.parent.mkdir(parents=True)
    font.write_bytes(font_path.read_bytes())
    monkeypatch.setattr(registry, "ensure", lambda relpath, **kwargs: font)   # the tiny font has no registered hash
    path, why = samples._render(midi)
    assert (path, why) == (midi.with_suffix(".flac"), "")
    info = soundfile.info(path)
    assert info.samplerate == 16000 and info.duration > 0.5
