"""``sequnet generate`` / ``sequnet.sample``: from a checkpoint to text, MIDI or FLAC, and every bad input refused
with an error naming the argument, leaving no file behind.

The checkpoints are untrained smoke-scale models written with the trainer's own ``save_checkpoint`` (seconds);
that generation itself equals the full forward is checked per family in test_generation*.py, and here that
``sample`` gives exactly what the generator gives for the checkpoint's model.
"""
import mido
import numpy as np
import pytest
import soundfile
import torch

import sequnet
from sequnet import sample
from sequnet.cli import main
from sequnet.core.configs import build_model
from sequnet.core.generation import generate, generate_rolls
from sequnet.data.midi import midi_to_roll, write_midi
from sequnet.data.text import load_ptb_words
from sequnet.experiment import sampling
from sequnet.experiment.checkpoints import CheckpointError, TrainState, save_checkpoint
from sequnet.experiment.scales import resolve

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def make_checkpoint(folder, task, arch, seed=0):
    config = resolve(task, arch, "smoke")
    torch.manual_seed(seed)
    model = build_model(config.setting)
    path = folder / f"{config.name}.pt"
    save_checkpoint(path, config, model, torch.optim.Adam(model.parameters()), TrainState(lr=config.lr),
                    torch.Generator())
    return path, model.eval()



@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    return {name: make_checkpoint(folder, *name.split("/")) for name in
            ("char_ptb/sequnet", "word_ptb/tcn", "jsb/sequnet", "jsb/tcn", "piano_audio/sequnet")}


def nothing_in(folder):
    return sorted(p.name for p in folder.iterdir()) == []


def write_text(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["char_ptb/sequnet", "word_ptb/tcn"])
def test_text_continues_a_prime_file_as_the_generator_does(checkpoints, data_root, tmp_path, name):
    ckpt, model = checkpoints[name]
    prime = write_text(tmp_path / "prime.txt", "the company said\nit will ")
    s = sample(ckpt, prime=prime, length=12, greedy=True, batch=2, progress=False, out=tmp_path / "out" / "a.txt")
    corpus = sampling._corpus(resolve(*name.split("/"), "smoke"), None, None)
    ids = sampling.encode_text(prime.read_text(), corpus)
    pad = corpus.vocab.index("<eos>" if corpus.kind == "word" else " ")
    want = generate(model, ids.expand(2, -1), 12, greedy=True, progress=False, pad_id=pad)
    assert torch.equal(s.ids, want) and s.prime_length == len(ids) and s.temperature is None
    assert s.prime_decoded[0] == "the company said\nit will" + (" " if corpus.kind == "char" else "")
    assert s.decoded[0] == s.prime_decoded[0] + s.continuation[0]
    assert [p.name for p in s.files] == ["a-1.txt", "a-2.txt"]
    assert s.files[0].read_text() == s.decoded[0] + "\n"


def test_text_from_the_test_set_is_reproducible(checkpoints, data_root):
    assert "sample" in sequnet.__all__ and sequnet.sample is sampling.sample
    ckpt, _ = checkpoints["char_ptb/sequnet"]
    runs = [sample(ckpt, length=20, temperature=0.8, seed=3, batch=2, progress=False) for _ in range(2)]
    assert torch.equal(runs[0].ids, runs[1].ids) and runs[0].files == []
    assert runs[0].prime_source[0].startswith("char_ptb test split, characters")
    assert not torch.equal(runs[0].ids[:1], sample(ckpt, length=20, seed=4, progress=False).ids)


@pytest.mark.parametrize("arch", ["sequnet", "tcn"])
def test_music_writes_midi_of_what_the_generator_gives(checkpoints, data_root, tmp_path, arch):
    ckpt, model = checkpoints[f"jsb/{arch}"]
    roll = torch.zeros(88, 6)
    roll[[40, 44, 47], :4] = 1
    roll[45, 4:] = 1
    prime = write_midi(roll, tmp_path / "prime.mid")
    s = sample(ckpt, prime=prime, length=10, greedy=True, progress=False, out=tmp_path / "g.mid")
    want = generate_rolls(model, roll.unsqueeze(0), 10, greedy=True, progress=False)
    assert torch.equal(s.ids, want) and torch.equal(s.decoded[0], want[0])
    written = midi_to_roll(s.files[0])
    assert torch.equal(written, want[0][:, :written.shape[1]]) and want[0][:, written.shape[1]:].sum() == 0
    test = sample(ckpt, length=5, batch=2, seed=1, progress=False)         # primes from the test pieces
    assert test.ids.shape == (2, 88, 16 + 5) and test.prime_source[0].startswith("jsb test piece")


def test_audio_is_resampled_encoded_and_written_as_flac(checkpoints, tmp_path):
    ckpt, model = checkpoints["piano_audio/sequnet"]
    t = np.arange(4000) / 8000
    soundfile.write(tmp_path / "prime.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    s = sample(ckpt, prime=tmp_path / "prime.wav", length=30, greedy=True, progress=False, out=tmp_path / "a.flac")
    assert s.prime_length == 8000                                        # 0.5 s at 16 kHz
    from sequnet.data.audio import load_audio, mu_law_encode
    want = generate(model, mu_law_encode(load_audio(tmp_path / "prime.wav")).unsqueeze(0), 30, greedy=True,
                    progress=False)
    assert torch.equal(s.ids, want)
    audio, sr = soundfile.read(s.files[0])
    assert sr == 16000 and len(audio) == 8030


def test_the_command_line_writes_and_reports(checkpoints, tmp_path, capsys):
    ckpt, _ = checkpoints["jsb/sequnet"]
    prime = write_midi(torch.eye(88)[:, 30:36], tmp_path / "p.mid")          # six frames, one note each
    out = tmp_path / "out.mid"
    assert main(["generate", str(ckpt), "--prime", str(prime), "--length", "4", "--seed", "2", "--temperature",
                 "0.9", "--out", str(out), "--no-progress"]) == 0
    assert out.is_file() and "samples/s" in capsys.readouterr().err
    assert main(["generate", str(ckpt), "--prime", str(prime), "--out", str(out), "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err
    text = write_text(tmp_path / "p.txt", "the market\n")
    assert main(["generate", str(checkpoints["char_ptb/sequnet"][0]), "--prime", str(text), "--length", "7",
                 "--no-progress", "--cpu-threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("the market\n»") and len(printed) == len("the market\n»") + 7 + 1


# -- bad input: named, and nothing written ------------------------------------------------------------------------

def test_checkpoints_of_another_version_or_kind_are_refused(checkpoints, tmp_path):
    ckpt, model = checkpoints["jsb/sequnet"]
    payload = torch.load(ckpt, weights_only=True)
    cases = {"format": dict(payload, format=2), "state_dict": model.state_dict(),
             "config": dict(payload, config=dict(payload["config"], warp_drive=True)),
             "weights": dict(payload, model={"nothing": torch.zeros(1)}, state=dict(payload["state"],
                                                                                     best_weights=None))}
    messages = {"format": "not a sequnet training checkpoint of format 1", "state_dict": "format 1",
                "config": "does not fit this version", "weights": "weights do not fit the jsb_sequnet model"}
    for case, obj in cases.items():
        path = tmp_path / f"{case}.pt"
        torch.save(obj, path)
        with pytest.raises(CheckpointError, match=messages[case]):
            sample(path, out=tmp_path / "out" / "x.mid", progress=False)
    with pytest.raises(ValueError, match="checkpoint='nowhere.pt': no such file"):
        sample("nowhere.pt", progress=False)
    assert not (tmp_path / "out").exists()


def test_unknown_symbols_are_named(checkpoints, data_root, tmp_path):
    with pytest.raises(ValueError, match=r"prime=.*word 'zorblax' \(word 3 of the prime\).*<unk>"):
        sample(checkpoints["word_ptb/tcn"][0], prime=write_text(tmp_path / "w.txt", "the big zorblax"),
               progress=False)
    with pytest.raises(ValueError, match=r"character 'É' \(character 4 of the prime"):
        sample(checkpoints["char_ptb/sequnet"][0], prime=write_text(tmp_path / "c.txt", "abcÉ"), progress=False)
    words = load_ptb_words()
    assert sampling.decode_text(sampling.encode_text("a b\nc <unk>\n", words), words) == "a b\nc <unk>\n"


def test_bad_primes_are_refused_and_leave_no_file(checkpoints, data_root, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    empty_midi = mido.MidiFile()
    empty_midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000)]))
    empty_midi.save(tmp_path / "empty.mid")
    (tmp_path / "bad.flac").write_bytes(b"not audio at all" * 10)
    cases = [
        ("char_ptb/sequnet", write_text(tmp_path / "e.txt", ""), "holds no characters", ".txt"),
        ("jsb/sequnet", tmp_path / "empty.mid", "has no notes on the piano's 88 keys", ".mid"),
        ("jsb/tcn", write_text(tmp_path / "x.mid", "MThd but not really"), "cannot be read as a MIDI file", ".mid"),
        ("piano_audio/sequnet", tmp_path / "bad.flac", "cannot be read as audio", ".flac"),
        ("piano_audio/sequnet", tmp_path / "missing.flac", "no such file", ".flac"),
    ]
    for name, prime, message, suffix in cases:
        with pytest.raises(ValueError, match=rf"prime='{prime}'.*{message}"):
            sample(checkpoints[name][0], prime=prime, out=out / f"x{suffix}", progress=False)
    monkeypatch.setitem(sampling.MAX_PRIME, "token", 10)
    with pytest.raises(ValueError, match=r"11 characters is longer than allowed \(10\).*--prime-length"):
        sample(checkpoints["char_ptb/sequnet"][0], prime=write_text(tmp_path / "l.txt", "a" * 11),
               out=out / "x.txt", progress=False)
    assert nothing_in(out)


def test_bad_arguments_are_named_before_the_model_runs(checkpoints, tmp_path):
    ckpt = checkpoints["jsb/sequnet"][0]
    (tmp_path / "folder.mid").mkdir()
    for kwargs, message in [(dict(temperature=0), "temperature=0"), (dict(temperature=float("nan")), "temperature"),
                            (dict(length=0), "length=0"), (dict(batch=0), "batch=0"), (dict(seed=-1), "seed=-1"),
                            (dict(prime_length=0), "prime_length=0"), (dict(out=tmp_path / "a.wav"), r"\.mid"),
                            (dict(device="tpu"), "device='tpu'"), (dict(out=tmp_path / "folder.mid"), "is a folder")]:
        with pytest.raises(ValueError, match=message):
            sample(ckpt, progress=False, **kwargs)


def test_a_failed_write_leaves_no_file(checkpoints, tmp_path, monkeypatch):
    real = sampling._write_one
    calls = []

    def fail_on_second(path, fam, item):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real(path, fam, item)

    monkeypatch.setattr(sampling, "_write_one", fail_on_second)
    prime = write_midi(torch.ones(88, 2), tmp_path / "p.mid")
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        sample(checkpoints["jsb/tcn"][0], prime=prime, length=3, batch=2, out=out / "g.mid", progress=False)
    assert nothing_in(out) and len(calls) == 2


def test_the_chapters_time_their_samples_after_an_untimed_warm_up(checkpoints, data_root, monkeypatch):
    """The first generation in a process also compiles the GPU's generation kernels: the language chapters time a
    second call, and say so."""
    from sequnet.analysis import samples
    ckpt, _ = checkpoints["char_ptb/sequnet"]
    lengths = []

    def recording(run, **kw):
        lengths.append(kw["length"])
        return sample(ckpt, **kw)
    monkeypatch.setattr(samples, "sample", recording)
    monkeypatch.setattr(samples, "_threads", lambda run: None)
    text = samples.language_samples({"sequnet": None}, "char_ptb", "smoke")
    assert lengths == [samples.WARM_UP, samples.LENGTHS["smoke"]["char_ptb"]]
    # one » in the legend, then one per sample
    assert "characters/s here (after a warm-up call)" in text and text.count("»") == 1 + 3
