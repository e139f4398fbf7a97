"""Datasets of the Seq-U-Net companion: a verified registry of files, and loaders for each task.

``registry`` knows every file (sha256, URL, mirror); ``files`` writes them atomically, removes what interrupted
runs left behind and turns OS errors into ``DataError``s that say what to do; ``text`` loads PTB (word and char),
``music`` the four piano-roll datasets, ``audio`` mu-law piano audio; ``render`` renders more from MIDI, with
FluidSynth or TinySoundFont (``render_tsf``) and the piano SoundFont that ``piano_font`` makes (``soundfont``,
``soundfont_bake``). Importing this package reads no file: data is only touched when a loader is called.
"""
from sequnet.data.registry import DataError, data_root, ensure, fetch, verify

__all__ = ["DataError", "data_root", "ensure", "fetch", "verify"]
