"""The four Boulanger-Lewandowski polyphonic-music piano rolls (JSB Chorales, Nottingham, MuseData, Piano-midi.de).

Each sequence is a binary piano roll on a metrical grid. The ``.mat`` files store it as ``T x 88`` (column j is
MIDI note 21 + j); here it is turned channels-first, ``(88, T)`` float32, which is what a 1-D convolution takes.
The official training feeds one whole sequence at a time: inputs ``roll[:, :-1]``, targets ``roll[:, 1:]``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterator

import numpy as np
import scipy.io
import torch

from sequnet.data.files import REREAD_FIX, reading
from sequnet.data.registry import ensure

DATASETS = {
    "jsb": "music/JSB_Chorales.mat",
    "nottingham": "music/Nottingham.mat",
    "muse": "music/MuseData.mat",
    "piano_midi": "music/Piano_midi.mat",
}
N_KEYS = 88
LOWEST_MIDI_NOTE = 21  # A0: row j of a roll is MIDI note 21 + j


@dataclasses.dataclass
class PianoRolls:
    name: str
    train: list[torch.Tensor]  # each (88, T) float32 in {0, 1}
    valid: list[torch.Tensor]
    test: list[torch.Tensor]


def load_music(name: str, *, root: str | os.PathLike | None = None,
               mirror: str | os.PathLike | None = None) -> PianoRolls:
    if name not in DATASETS:
        raise ValueError(f"unknown music dataset {name!r}; choose one of {', '.join(DATASETS)}")
    path = ensure(DATASETS[name], root=root, mirror=mirror)
    with reading(path, REREAD_FIX):
        mat = scipy.io.loadmat(path)

    def rolls(key: str) -> list[torch.Tensor]:
        return [torch.from_numpy(np.ascontiguousarray(seq.T, dtype=np.float32)) for seq in mat[key][0]]

    return PianoRolls(name, rolls("traindata"), rolls("validdata"), rolls("testdata"))


def next_step(roll: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) for next-frame prediction: every frame but the last, and every frame but the first."""
    return roll[:, :-1], roll[:, 1:]


def iterate_sequences(rolls: list[torch.Tensor], *, shuffle: bool = False,
                      generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (inputs, targets), one sequence at a time (batch 1, as the official code), in a shuffled
    order when ``shuffle`` (reproducible with a seeded ``generator``)."""
    order = torch.randperm(len(rolls), generator=generator).tolist() if shuffle else range(len(rolls))
    for k in order:
        yield next_step(rolls[k])
