"""TinySoundFont rendering of one MIDI file: the synthesiser the GPU machine can run (a wheel, no system libraries).

TinySoundFont plays SF2/SF3 zones with their generators. It ignores the sustain pedal (CC64), so ``synthesize``
applies the pedal itself. It also ignores SoundFont modulators; ``sequnet.data.soundfont`` bakes the piano font's
velocity and key modulators into its zones so that the notes sound as FluidSynth plays them.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import scipy.signal

from sequnet.data.audio import SAMPLE_RATE
from sequnet.data.files import DataError

SYNTH_RATE = 44100          # synthesis rate: TinySoundFont interpolates linearly, so synthesising at 16 kHz aliases
TAIL_S = 3.0                # rendered after the last event, for the release of the last notes
PEAK_DB = -1.0


def _tinysoundfont():
    try:
        import tinysoundfont
        from tinysoundfont import _tinysoundfont as native
    except ImportError as exc:
        raise DataError("--renderer tinysoundfont needs the tinysoundfont wheel: `pip install --no-deps "
                        "tinysoundfont==0.3.7` (its pyaudio dependency is only for live playback; on the GPU "
                        "machine install the carried wheel with pip --no-index)") from exc
    return tinysoundfont, native


_FONTS: dict[str, object] = {}  # per process: SoundFont path -> loaded TinySoundFont object (3-4 per worker)


def load_tinysoundfont(soundfont: str | os.PathLike):
    """The SoundFont loaded by TinySoundFont (cached per process), or DataError naming the file."""
    path = Path(soundfont)
    if str(path) not in _FONTS:
        _, native = _tinysoundfont()
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise DataError(f"the SoundFont {path} {what}; give an .sf2/.sf3 file with --soundfont (make the piano "
                            f"font with `python -m sequnet data soundfont`)")
        try:
            with open(path, "rb"):
                pass
            _FONTS[str(path)] = native.SoundFont(str(path))
        except (OSError, RuntimeError) as exc:
            raise DataError(f"the SoundFont {path} cannot be loaded ({exc}); it must be a readable SF2/SF3 file "
                            f"(re-make it with `python -m sequnet data soundfont`)") from exc
    return _FONTS[str(path)]


def synthesize(midi: bytes, soundfont: str | os.PathLike, sr: int = SAMPLE_RATE,
               synth_rate: int = SYNTH_RATE) -> np.ndarray:
    """Mono float32 audio at ``sr`` of a Standard MIDI File, every channel on the font's bank 0 program 0,
    peak-normalised to -1 dBFS; DataError when the MIDI cannot be parsed or plays nothing.

    The sustain pedal (CC64 >= 64) holds note-offs until it is released, and a key struck again while it still
    sounds is released first, as FluidSynth does. Other controllers (volume, expression) go to TinySoundFont."""
    tsf, native = _tinysoundfont()
    font = load_tinysoundfont(soundfont)
    try:
        events = tsf.midi.load_memory(midi)
    except Exception as exc:  # the parser raises RuntimeError or ValueError for a damaged file
        raise DataError(f"cannot parse the MIDI data ({exc})") from exc
    if not any(isinstance(e.action, tsf.midi.NoteOn) and e.action.velocity > 0 for e in events):
        raise DataError("the MIDI data holds no notes")
    font.reset()
    font.set_output(native.OutputMode.Mono, synth_rate, 0.0)
    font.set_max_voices(1024)
    for channel in range(16):
        font.channel_set_preset_number(channel, 0, False)
    out = np.zeros((int((events[-1].t + TAIL_S) * synth_rate) + 1, 1), np.float32)
    done = 0
    pedal, held, down = [False] * 16, [set() for _ in range(16)], [set() for _ in range(16)]
    for event in events:
        frame = min(int(round(event.t * synth_rate)), len(out))
        if frame > done:
            font.render(out[done:frame], False)
            done = frame
        ch, action = event.channel, event.action
        if isinstance(action, tsf.midi.NoteOn) and action.velocity > 0:
            if action.key in held[ch] or action.key in down[ch]:
                font.channel_note_off(ch, action.key)
                held[ch].discard(action.key)
            font.channel_note_on(ch, action.key, action.velocity / 127.0)
            down[ch].add(action.key)
        elif isinstance(action, (tsf.midi.NoteOn, tsf.midi.NoteOff)):
            down[ch].discard(action.key)
            if pedal[ch]:
                held[ch].add(action.key)
            else:
                font.channel_note_off(ch, action.key)
        elif isinstance(action, tsf.midi.ControlChange) and action.control in (64, 121):  # 121 resets the pedal
            pedal[ch] = action.control == 64 and action.control_value >= 64
            if not pedal[ch]:
                for key in held[ch] - down[ch]:
                    font.channel_note_off(ch, key)
                held[ch].clear()
        if isinstance(action, tsf.midi.ControlChange) and action.control not in (0, 32, 64):  # bank stays 0
            font.channel_midi_control(ch, action.control, action.control_value)
    if done < len(out):
        font.render(out[done:], False)
    g = math.gcd(sr, synth_rate)
    audio = scipy.signal.resample_poly(out[:, 0], sr // g, synth_rate // g)
    peak = float(np.abs(audio).max())
    if peak == 0.0:
        raise DataError("the MIDI data renders to silence")
    return (audio * (10 ** (PEAK_DB / 20) / peak)).astype(np.float32)
