"""Piano rolls to and from standard MIDI files (through ``mido``).

The datasets' rolls lie on a metrical grid with no tempo (``sequnet.data.music``; Walder 2016 describes the grid
as one eighth note): a roll is written with one frame per eighth note at 120 beats per minute (a quarter of a
second per frame), and a MIDI file is read onto the same grid, whatever its tempo: its notes are placed by beat,
two frames per beat. A key that sounds in consecutive frames is one held note (a roll cannot tell a repeated note
from a held one), as in the datasets.
"""
from __future__ import annotations

import os
from pathlib import Path

import mido
import numpy as np
import torch

from sequnet.data.files import DataError
from sequnet.data.music import LOWEST_MIDI_NOTE, N_KEYS

FRAMES_PER_BEAT = 2            # the datasets' grid: an eighth note
TEMPO_BPM = 120.0              # what a written roll plays at (a quarter of a second per frame)
TICKS_PER_BEAT = 480
VELOCITY = 80                  # the rolls have no dynamics


def roll_to_midi(roll: torch.Tensor, *, tempo_bpm: float = TEMPO_BPM, velocity: int = VELOCITY) -> mido.MidiFile:
    """A one-track piano MIDI file of ``roll`` (88, T) in {0, 1}, row j being MIDI note 21 + j."""
    roll = np.asarray(torch.as_tensor(roll).detach().cpu() > 0.5)
    if roll.ndim != 2 or roll.shape[0] != N_KEYS:
        raise ValueError(f"a piano roll is ({N_KEYS}, frames), got shape {roll.shape}")
    padded = np.pad(roll, ((0, 0), (1, 1))).astype(np.int8)
    change = np.diff(padded, axis=1)                   # +1: key goes down at frame t, -1: released at frame t
    keys, frames = np.nonzero(change)
    events = sorted(zip(frames.tolist(), (change[keys, frames] > 0).tolist(), keys.tolist()))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0),
                            mido.Message("program_change", program=0, time=0)])   # acoustic grand piano
    ticks_per_frame, now = TICKS_PER_BEAT // FRAMES_PER_BEAT, 0
    for frame, down, key in events:                    # releases before presses at the same frame
        tick = frame * ticks_per_frame
        kind = "note_on" if down else "note_off"
        track.append(mido.Message(kind, note=LOWEST_MIDI_NOTE + key, velocity=velocity if down else 0,
                                  time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, roll.shape[1] * ticks_per_frame - now)))
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi


def write_midi(roll: torch.Tensor, path: str | os.PathLike, **kwargs) -> Path:
    """Write ``roll_to_midi(roll)`` to ``path`` (a file object keeps mido from choosing by name)."""
    path = Path(path)
    with open(path, "wb") as f:
        roll_to_midi(roll, **kwargs).save(file=f)
    return path


def midi_to_roll(path: str | os.PathLike, *, frames_per_beat: int = FRAMES_PER_BEAT) -> torch.Tensor:
    """The notes of every track of a MIDI file on the roll grid, (88, T) float32: a note sounds from the frame
    nearest its start to the frame before the one nearest its end (at least one frame). Notes outside the piano's
    88 keys and drum-channel notes are left out. A file that cannot be read, or holds no note, raises
    ``DataError`` naming it."""
    path = Path(path)
    try:
        midi = mido.MidiFile(path)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as exc:
        what = "is a directory, not a MIDI file" if path.is_dir() else f"cannot be read as a MIDI file ({exc})"
        raise DataError(f"{path} {what}. Give a standard MIDI file (.mid)") from exc
    if midi.type == 2:
        raise DataError(f"{path} is a type 2 MIDI file (independent patterns); give a type 0 or 1 file")
    per_frame = midi.ticks_per_beat / frames_per_beat
    notes, sounding, tick = [], {}, 0
    for msg in mido.merge_tracks(midi.tracks):
        tick += msg.time
        if msg.type not in ("note_on", "note_off") or msg.channel == 9:
            continue
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.setdefault(key, tick)
        elif key in sounding:
            notes.append((msg.note, sounding.pop(key), tick))
    notes += [(note, start, tick) for (_, note), start in sounding.items()]     # never released: to the end
    keys = [(n - LOWEST_MIDI_NOTE, round(a / per_frame), round(b / per_frame)) for n, a, b in notes
            if 0 <= n - LOWEST_MIDI_NOTE < N_KEYS]
    if not keys:
        outside = f" ({len(notes)} outside the piano's keys or on the drum channel)" if notes else ""
        raise DataError(f"{path} has no notes on the piano's 88 keys{outside}; give a MIDI file with at least one "
                        f"note between MIDI 21 (A0) and 108 (C8)")
    roll = torch.zeros(N_KEYS, max(max(b, a + 1) for _, a, b in keys))
    for k, a, b in keys:
        roll[k, a:max(b, a + 1)] = 1
    return roll
