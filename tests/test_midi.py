"""Piano rolls to MIDI and back (``sequnet.data.midi``, through mido): the datasets' rolls survive the round trip,
and a file without usable notes is refused naming it."""
import mido
import pytest
import torch

from sequnet.data.files import DataError
from sequnet.data.midi import FRAMES_PER_BEAT, midi_to_roll, roll_to_midi, write_midi
from sequnet.data.music import load_music


def test_dataset_rolls_survive_the_round_trip(data_root, tmp_path):
    for i, roll in enumerate(load_music("jsb").test[:8]):
        back = midi_to_roll(write_midi(roll, tmp_path / f"{i}.mid"))
        # trailing silence has no event to mark it
        assert torch.equal(back, roll[:, :back.shape[1]]) and roll[:, back.shape[1]:].sum() == 0


def test_a_held_note_is_one_note_and_the_grid_follows_the_beat(tmp_path):
    roll = torch.zeros(88, 8)
    roll[39, 1:5] = 1                                       # middle C (MIDI 60), frames 1-4
    notes = [m for m in roll_to_midi(roll).tracks[0] if m.type.startswith("note")]
    assert [(m.type, m.note) for m in notes] == [("note_on", 60), ("note_off", 60)]
    # another file at another resolution and tempo: notes are placed by beat
    midi = mido.MidiFile(ticks_per_beat=96)
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=300000),
                                       mido.Message("note_on", note=64, velocity=90, time=96),
                                       mido.Message("note_on", note=64, velocity=0, time=96 * 2),
                                       mido.Message("note_on", note=9, velocity=90, time=0),      # below A0
                                       mido.Message("note_on", note=36, velocity=90, time=0, channel=9)]))  # drum
    midi.save(tmp_path / "other.mid")
    got = midi_to_roll(tmp_path / "other.mid")
    assert got.shape == (88, 3 * FRAMES_PER_BEAT) and got.sum() == 2 * FRAMES_PER_BEAT
    assert got[64 - 21, FRAMES_PER_BEAT:].all()


def test_files_without_usable_notes_are_refused(tmp_path):
    midi = mido.MidiFile()
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=110, velocity=90, time=0)]))
    midi.save(tmp_path / "high.mid")
    with pytest.raises(DataError, match=r"high\.mid has no notes on the piano's 88 keys \(1 outside"):
        midi_to_roll(tmp_path / "high.mid")
    (tmp_path / "junk.mid").write_bytes(b"\x00" * 40)
    with pytest.raises(DataError, match=r"junk\.mid cannot be read as a MIDI file"):
        midi_to_roll(tmp_path / "junk.mid")
    with pytest.raises(ValueError, match=r"\(88, frames\)"):
        roll_to_midi(torch.zeros(12, 4))
