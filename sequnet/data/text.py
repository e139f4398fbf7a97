"""Penn Treebank at word and character level, tokenised and batched exactly as the paper's code does.

Both tasks read Mikolov's three word-level files. Words: ``line.split() + ['<eos>']`` with the vocabulary in
first-occurrence order (10,000 words, all from train since valid/test have no new words). Characters: the same
files with every newline replaced by the literal ``<eos>`` (edward's ``observations.ptb``), vocabulary in
first-occurrence order over ``train + " " + valid + " " + test`` (49 symbols).

Batching (TCN/Seq-U-Net ``batchify`` + ``get_batch``): a split is cut into contiguous streams; a window of
``input_length`` tokens starts every ``output_length`` tokens, and only its last ``output_length`` targets are
scored, the rest being context that the model sees but is not judged on.
"""
from __future__ import annotations

import dataclasses
import io
import os
from typing import Iterator

import numpy as np
import torch

from sequnet.data.files import REREAD_FIX, reading
from sequnet.data.registry import ensure

EOS = "<eos>"
SPLITS = ("train", "valid", "test")
TRAIN_STREAMS = 16
EVAL_STREAMS = {"word": 16, "char": 1}  # the char scripts evaluate valid/test as one stream (batch 1)


@dataclasses.dataclass
class Corpus:
    kind: str                  # "word" or "char"
    vocab: list[str]           # id -> word or character
    train: torch.Tensor        # 1-D LongTensors of ids
    valid: torch.Tensor
    test: torch.Tensor

    def split(self, name: str) -> torch.Tensor:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return getattr(self, name)

    def streams(self, split: str, n_streams: int | None = None) -> torch.Tensor:
        """``split`` batchified as the official scripts do unless ``n_streams`` says otherwise."""
        if n_streams is None:
            n_streams = TRAIN_STREAMS if split == "train" else EVAL_STREAMS[self.kind]
        return batchify(self.split(split), n_streams)

    def decode(self, ids: torch.Tensor) -> str:
        symbols = [self.vocab[i] for i in ids.tolist()]
        return " ".join(symbols) if self.kind == "word" else "".join(symbols)


def read_ptb(*, root=None, mirror=None) -> dict[str, str]:
    """The three PTB word files as text, keyed by split."""
    texts = {}
    for split in SPLITS:
        path = ensure(f"ptb/ptb.{split}.txt", root=root, mirror=mirror)
        with reading(path, REREAD_FIX):
            texts[split] = path.read_text(encoding="ascii")
    return texts


def word_corpus(texts: dict[str, str]) -> Corpus:
    # io.StringIO iterates lines exactly as the official `for line in open(path)` (no extra empty last line)
    tokens = {s: [w for line in io.StringIO(texts[s]) for w in line.split() + [EOS]] for s in SPLITS}
    index: dict[str, int] = {}
    for s in SPLITS:  # as the official Dictionary: words enter in order of first appearance, train first
        for w in tokens[s]:
            index.setdefault(w, len(index))
    ids = {s: torch.tensor([index[w] for w in tokens[s]], dtype=torch.long) for s in SPLITS}
    return Corpus("word", list(index), **ids)


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def char_corpus(texts: dict[str, str]) -> Corpus:
    texts = {s: texts[s].replace("\n", EOS) for s in SPLITS}
    # The official Corpus counts characters of train + " " + valid + " " + test in a Counter, whose iteration
    # order is first occurrence; np.unique's first indices give the same order without a Python loop.
    every = _codepoints(" ".join(texts[s] for s in SPLITS))
    symbols, first = np.unique(every, return_index=True)
    by_first = np.argsort(first)
    rank = np.empty_like(by_first)
    rank[by_first] = np.arange(len(by_first))
    ids = {s: torch.from_numpy(rank[np.searchsorted(symbols, _codepoints(texts[s]))].astype(np.int64))
           for s in SPLITS}
    return Corpus("char", [chr(c) for c in symbols[by_first]], **ids)


def load_ptb_words(*, root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None) -> Corpus:
    return word_corpus(read_ptb(root=root, mirror=mirror))


def load_ptb_chars(*, root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None) -> Corpus:
    return char_corpus(read_ptb(root=root, mirror=mirror))


def batchify(ids: torch.Tensor, n_streams: int) -> torch.Tensor:
    """(n_streams, len) contiguous streams of ``ids``; the remainder that does not fill a row is dropped."""
    length = ids.numel() // n_streams
    if length == 0:
        raise ValueError(f"cannot cut {ids.numel()} ids into {n_streams} non-empty streams")
    return ids[: length * n_streams].reshape(n_streams, length)


def windows(stream_len: int, input_length: int, output_length: int) -> list[int]:
    """Start positions 0, V, 2V, ... (V = output_length) of the windows that fit with their shifted targets."""
    if not 0 < output_length <= input_length:
        raise ValueError(f"need 0 < output_length <= input_length, got {output_length} and {input_length}")
    return list(range(0, stream_len - input_length, output_length))


def get_window(streams: torch.Tensor, start: int, input_length: int,
               output_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(n_streams, input_length)`` and the scored targets ``(n_streams, output_length)``: the next
    token after each of the last ``output_length`` input positions."""
    inputs = streams[:, start:start + input_length]
    targets = streams[:, start + input_length + 1 - output_length:start + input_length + 1]
    return inputs, targets


def iterate_windows(streams: torch.Tensor, input_length: int, output_length: int, *, shuffle: bool = False,
                    generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (inputs, targets) windows; ``shuffle`` permutes their order (the official training does)
    using ``generator``, so a generator seeded once gives a reproducible sequence of epochs."""
    starts = windows(streams.shape[1], input_length, output_length)
    order = torch.randperm(len(starts), generator=generator).tolist() if shuffle else range(len(starts))
    for k in order:
        yield get_window(streams, starts[k], input_length, output_length)
