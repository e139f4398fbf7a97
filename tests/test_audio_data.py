"""Raw-audio data: mu-law, excerpts and test windows, the split by piece, and the render-piano orchestration."""
from __future__ import annotations

import math
import os
import stat
import sys
import zipfile

import numpy as np
import pytest
import soundfile
import torch

from sequnet.data import audio, registry, render
from sequnet.data.registry import DataError

MU = 255


def test_mu_law_error_is_within_half_a_step():
    """Encoding picks the nearest point of the grid z_k = 2k/mu - 1 (spacing 2/mu) to y = compress(x), so
    |y - z| <= h = 1/mu. The expander g(t) = ((1+mu)^t - 1)/mu is convex and g(0) = 0 on t = |y|, hence
    |x - g(z)| <= g(|y| + h) - g(|y|) = (1 + mu|x|) ((1+mu)^h - 1) / mu: 8.6e-5 near silence, 0.022 at full scale."""
    x = torch.linspace(-1, 1, 400_001)
    idx = audio.mu_law_encode(x)
    assert int(idx.min()) == 0 and int(idx.max()) == MU

    x64 = x.double()
    y = torch.sign(x64) * torch.log1p(MU * x64.abs()) / math.log1p(MU)
    z = 2 * idx.double() / MU - 1
    assert float((y - z).abs().max()) <= 1 / MU + 1e-6  # half a step in the mu-law domain

    err = (audio.mu_law_decode(idx).double() - x64).abs()
    bound = (1 + MU * x64.abs()) * ((1 + MU) ** (1 / MU) - 1) / MU
    # The slack is float32's: encoding computes y in float32 (a couple of ulps, 2.4e-7), which can move a value
    # that lies on a rounding midpoint to the neighbouring index; the expander's slope g' <= ln(256) 256/255 = 5.6
    # turns that into up to 1.3e-6 in x, and decoding's exp adds a few ulps of 256/255.
    # On the 2-core CPU machines the error stays within the bound; on the GPU machine's CPU it exceeded it by
    # more than the 1e-6 allowed before. One index off would be 3.4e-5 even near silence.
    assert bool((err <= bound * (1 + 1e-4) + 4e-6).all())
    assert float((err / bound).max()) > 0.99  # the bound is attained: it is the real one, not a loose one
    assert float(err.max()) < 0.0221


def test_mu_law_fixed_points():
    assert audio.SILENCE == 128 and int(audio.mu_law_encode(torch.zeros(3))[0]) == 128
    assert float(audio.mu_law_decode(torch.tensor(128))) == pytest.approx(8.6e-5, rel=0.01)
    classes = torch.arange(MU + 1)
    assert torch.equal(audio.mu_law_encode(audio.mu_law_decode(classes)), classes)
    assert torch.equal(audio.mu_law_encode(torch.tensor([-3.0, 3.0])), torch.tensor([0, MU]))  # clipped


def _pieces(*lengths):
    return [(torch.arange(n) % 97 + 1).to(torch.uint8) for n in lengths]  # never 128, so padding is visible


def test_random_excerpts_have_the_official_shape():
    inp_len, out_len, hop = 20, 8, 10
    pieces = _pieces(100, 37, 7, 5)
    ds = audio.AudioExcerpts(pieces, inp_len, out_len, hop=hop, random_hops=True, seed=1)
    # (L - O + 1) // hop + 1 items per piece; a piece shorter than O - 1 contributes none
    assert len(ds) == 10 + 4 + 1 + 0
    for i in range(len(ds)):
        inputs, targets = ds[i]
        assert inputs.shape == (inp_len,) and targets.shape == (out_len,) and inputs.dtype == torch.long
        assert torch.equal(inputs[-out_len + 1:], targets[:-1])  # each target is the sample after an input
    inputs, targets = ds[14]  # the 7-sample piece: padded with silence at both ends
    assert targets.tolist() == list(range(1, 8)) + [128] and inputs[:inp_len - out_len + 1].eq(128).all()
    again = audio.AudioExcerpts(pieces, inp_len, out_len, hop=hop, random_hops=True, seed=1)
    assert all(torch.equal(ds[i][1], again[i][1]) for i in range(len(ds)))
    again.set_epoch(1)
    assert any(not torch.equal(ds[i][1], again[i][1]) for i in range(10))


def test_test_windows_tile_each_piece():
    """Item k of a piece scores samples [kO, kO + O); as in the official code the count (L - O + 1) // O + 1
    leaves out a tail shorter than O, or scores one padded sample at the very end."""
    pieces = _pieces(49, 33)
    ds = audio.AudioCorpus(16000, {}, {"a": pieces[0], "b": pieces[1]}).test_windows(12, 5)
    items = [ds[i] for i in range(len(ds))]
    assert len(items) == 10 + 6
    first = torch.cat([t for _, t in items[:10]])
    assert torch.equal(first[:49], pieces[0].long()) and first[49:].tolist() == [128]
    assert torch.equal(torch.cat([t for _, t in items[10:]]), pieces[1][:30].long())
    assert items[0][0][:12 - 5 + 1].eq(128).all()  # context before the start of a piece is silence
    assert torch.equal(items[1][0][-5:], pieces[0][4:9].long())  # the inputs end just before the targets' end


def test_split_pieces_is_deterministic_and_disjoint():
    names = [f"piece{i}" for i in range(40)]
    train, test = audio.split_pieces(names, 0.2)
    assert len(test) == 8 and not set(train) & set(test) and sorted(train + test) == sorted(names)
    assert audio.split_pieces(reversed(names), 0.2) == (train, test)
    assert [len(s) for s in audio.split_pieces(["a", "b"], 0.01)] == [1, 1]  # always something to test on


def _write_tone(path, seconds, sr, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(path, np.repeat(tone[:, None], channels, axis=1), sr)


def test_load_audio_resamples_and_mixes_to_mono(tmp_path):
    _write_tone(tmp_path / "stereo.wav", 0.5, 44100, channels=2)
    samples = audio.load_audio(tmp_path / "stereo.wav", sr=16000)
    assert samples.dtype == torch.float32 and samples.shape == (8000,)
    assert float(samples[1000:7000].abs().max()) == pytest.approx(0.5, abs=0.01)


def test_user_folder_is_split_by_piece(tmp_path):
    for i in range(6):
        _write_tone(tmp_path / f"rec{i}.flac", 0.1, 16000)
    corpus = audio.load_audio_corpus(tmp_path, test_fraction=0.3)
    assert (len(corpus.train), len(corpus.test)) == (4, 2)
    assert not set(corpus.train) & set(corpus.test)
    assert all(codes.dtype == torch.uint8 and len(codes) == 1600 for codes in corpus.train.values())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no training audio") as err:
        audio.load_audio_corpus(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(err.value)
    for side in ("train", "test"):
        (tmp_path / "split" / side).mkdir(parents=True)
    _write_tone(tmp_path / "split" / "train" / "a.flac", 0.1, 16000)
    (tmp_path / "split" / "test" / "notes.txt").write_text("no audio here")
    with pytest.raises(DataError, match="no test audio"):
        audio.load_audio_corpus(tmp_path / "split")
    with pytest.raises(DataError, match="not a folder"):
        audio.load_audio_corpus(tmp_path / "absent")


def test_16_bit_files_are_encoded_by_lookup_exactly_as_from_floats(tmp_path):
    rng = np.random.default_rng(0)
    pcm = np.concatenate([np.arange(-32768, 32768, dtype=np.int16), rng.integers(-32768, 32768, 5000, dtype=np.int16)])
    soundfile.write(tmp_path / "all.flac", pcm, 16000, subtype="PCM_16")
    codes = audio._encode(tmp_path / "all.flac", 16000)
    from_floats = audio.mu_law_encode(audio.load_audio(tmp_path / "all.flac"))
    assert codes.dtype == torch.uint8 and torch.equal(codes, from_floats)


def test_unreadable_audio_names_the_file(tmp_path):
    for i in range(3):
        _write_tone(tmp_path / f"rec{i}.flac", 0.1, 16000)
    (tmp_path / "broken.flac").write_bytes(b"not audio: an interrupted copy")
    with pytest.raises(DataError, match=f"{tmp_path / 'broken.flac'} cannot be read as audio"):
        audio.load_audio_corpus(tmp_path)
    with pytest.raises(DataError, match="is a directory, not an audio file"):
        audio.load_audio(tmp_path)


def test_default_corpus_holds_out_whole_pieces(data_root, data_mirror):
    corpus = audio.load_audio_corpus(root=data_root, mirror=data_mirror)
    assert set(corpus.train) == {"chpn_op27_2", "deb_clai", "liz_et3", "mz_331_3"}
    assert set(corpus.test) == {"elise", "scn15_7"}
    assert len(corpus.test["elise"]) == 2_867_432  # 179.2 s at 16 kHz
    ds = corpus.excerpts(1000, 200)
    assert len(ds) == sum((len(c) - 200 + 1) // 40000 + 1 for c in corpus.train.values())
    inputs, targets = ds[len(ds) - 1]
    assert inputs.shape == (1000,) and targets.shape == (200,)


# --- render-piano, with stand-ins for fluidsynth and sox that write tiny files ---

def test_render_piano_names_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    monkeypatch.setattr(audio, "_installed_soundfont", lambda: None)
    with pytest.raises(DataError) as err:
        render.render_piano(tmp_path)
    assert "apt-get install fluidsynth musescore-general-soundfont-lossless sox" in str(err.value)
    assert "fluidsynth" in str(err.value).split("Install")[0] and "--renderer tinysoundfont" in str(err.value)


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """fluidsynth writes a short WAV to its -F argument; sox copies its input to its output (argv 2 -> 7)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "fluidsynth": 'import sys, numpy, soundfile\n'
                      'if sys.argv[1] == "--version": print("FluidSynth runtime version 2.3.1"); sys.exit()\n'
                      'soundfile.write(sys.argv[sys.argv.index("-F") + 1], numpy.zeros(441, "float32"), 44100)\n',
        "sox": "import shutil, sys\nif sys.argv[1] == '--version': print(sys.argv[0] + ':  SoX v14'); sys.exit()\n"
               "shutil.copyfile(sys.argv[2], sys.argv[7])\n",
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    font = tmp_path / "piano.sf2"
    font.write_bytes(b"sf2")
    return font


def test_render_piano_layout_split_and_resume(tmp_path, fake_tools):
    midi_zip = tmp_path / "midis.zip"
    names = [f"p{i:02d}" for i in range(20)]
    with zipfile.ZipFile(midi_zip, "w") as z:
        for name in names:
            z.writestr(f"midis/Someone/{name}.mid", b"MThd")
    out = tmp_path / "out"
    done = render.render_piano(out, midi_zip, limit=5, test_fraction=0.2, soundfont=fake_tools).rendered
    train, test = audio.split_pieces(names, 0.2)
    assert len(done) == 5
    assert sorted(p.stem for p in (out / "test").iterdir()) == test[:1]  # 5 * 0.2 = one held-out piece
    assert sorted(p.stem for p in (out / "train").iterdir()) == train[:4]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers
    manifest = (out / "manifest.json").read_text()
    assert '"version": "FluidSynth runtime version 2.3.1; SoX v14"' in manifest and str(tmp_path) not in manifest
    again = render.render_piano(out, midi_zip, limit=5, test_fraction=0.2, soundfont=fake_tools).rendered
    assert again == []  # already rendered pieces are skipped
    with zipfile.ZipFile(midi_zip, "a") as z:
        z.writestr("midis/Beethoven/elise.mid", b"MThd")
    render.render_piano(out, midi_zip, pieces=["elise"], test_fraction=0.0, soundfont=fake_tools)
    assert (out / "test" / "elise.flac").is_file()  # a registered test piece stays a test piece
    with pytest.raises(DataError, match="no MIDI file for nope"):
        render.render_piano(out, midi_zip, pieces=["nope"], soundfont=fake_tools)


@pytest.mark.parametrize("make", [lambda p: p.write_bytes(b"not a zip"), lambda p: p.mkdir()], ids=["garbage", "dir"])
def test_render_piano_names_an_unreadable_zip(tmp_path, fake_tools, make):
    make(tmp_path / "midis.zip")
    with pytest.raises(DataError, match=f"cannot read the MIDI zip {tmp_path / 'midis.zip'}"):
        render.render_piano(tmp_path / "out", tmp_path / "midis.zip", soundfont=fake_tools)


@pytest.mark.slow
def test_real_render_reproduces_a_registered_file(tmp_path, data_root, data_mirror):
    """With the Debian packages of the recipe installed, rendering is bit-for-bit (2-3 s for this 139 s piece)."""
    try:
        audio.find_render_tools()
    except DataError as exc:
        pytest.skip(str(exc))
    done = render.render_piano(tmp_path, pieces=["scn15_7"], root=data_root, mirror=data_mirror).rendered
    assert done == [tmp_path / "test" / "scn15_7.flac"]
    expected = registry.MANIFEST["piano/rendered/test/scn15_7.flac"].sha256
    if registry.sha256_of(done[0]) != expected:
        pytest.xfail("rendered, but not bit-identical: FluidSynth or the soundfont differ from 2.3.1 / 0.2.1-1")
