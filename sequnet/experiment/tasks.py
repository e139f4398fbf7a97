"""Per task: which data, how it is cut into training steps, which loss is minimised and which metric is reported.

The trainer sees a task only through the small protocol of :class:`Task`:

* ``train_batches(generator)`` – one epoch of training batches, in an order drawn from ``generator`` (a seeded
  ``torch.Generator`` the trainer checkpoints, so a resumed run sees the same order);
* ``loss(model, batch)`` – ``(objective, total, count)``: the tensor to back-propagate, and the summed loss in
  nats with the number of scored items it covers (tokens or frames), which make the per-item mean;
* ``evaluate(model, split, limit)`` – the mean loss in nats per scored item over a split;
* ``metric(loss)`` – that mean loss in the task's unit (``unit``): bits per character, perplexity, or frame-wise
  negative log-likelihood in nats.

Batching follows the official scripts of the paper's section 5.1 experiments, through the data layer's helpers:

* language (char/word PTB): training data in 16 contiguous streams; a window of ``input_length`` tokens starts
  every ``output_length`` tokens and only its last ``output_length`` targets are scored (the rest is context);
  windows are shuffled every epoch; the loss is the mean cross-entropy. Valid/test are one stream (char) or 16
  streams (word).
* music: one whole piano roll per step (inputs every frame but the last, targets every frame but the first),
  sequences shuffled every epoch; the loss is ``BCEWithLogits`` summed over notes and frames, and the backward
  pass uses that sum, as the official code does (so the gradient scale grows with the sequence length).
* raw piano audio: an endless stream of excerpts at random positions of the training pieces (the official
  ``AudioDataset`` with random hops); each window of I mu-law ids scores all of its last O targets, and the loss
  is the mean cross-entropy over the B·O targets. There is no validation split (the official script had none):
  test is every non-overlapping window of the test pieces, and the train metric uses a fixed, evenly spaced
  subset of the non-overlapping training windows.

New tasks register a builder in ``BUILDERS``.
"""
from __future__ import annotations

import functools
import math
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sequnet.core.configs import MUSIC_TASKS, PaperSetting
from sequnet.core.losses import cross_entropy
from sequnet.data import music as music_data
from sequnet.data import text as text_data
from sequnet.data.prefetch import on_device
from sequnet.data.registry import data_root
from sequnet.experiment.metrics import METRICS
from sequnet.experiment.records import METRIC_UNITS

SPLITS = ("train", "valid", "test")
# How many language-model windows are stacked into one evaluation batch. Evaluation runs without dropout, so the
# windows are independent and stacking them changes nothing but speed (the char scripts evaluate at batch 1).
EVAL_WINDOWS_PER_BATCH = 32


# --- the protocol -----------------------------------------------------------------------------------------------

class Task:
    """Base class: the trainer's view of one task. Subclasses fill in data, batching and the loss."""

    name: str
    unit: str
    # Divergence limits on the per-item mean loss, as in the official scripts: a run stops (status "diverged")
    # when a training step's loss is not finite, when the training loss exceeds ``train_loss_limit`` (None: no
    # limit) or when the validation loss exceeds ``valid_loss_limit``. With ``train_loss_interval`` n the limit
    # applies to the mean of each n steps of an epoch instead of to every step.
    train_loss_limit: float | None = None
    train_loss_interval: int | None = None
    valid_loss_limit: float = 1000.0
    # The splits ``evaluate`` accepts. Without "valid" the trainer keeps the last weights (no model selection).
    splits: tuple[str, ...] = SPLITS
    data_note: str = ""                  # what data the task uses, for the record's notes (empty: the default)
    # Every training batch has the same shape (a training step can then be replayed from a CUDA graph).
    fixed_shapes: bool = True

    def __init__(self, setting: PaperSetting):
        self.setting = setting
        self.device = torch.device("cpu")

    def metric(self, loss: float) -> float:
        return METRICS[self.unit](loss)

    def to(self, device: torch.device | str) -> "Task":
        """Move the data to ``device`` once, so that a training step copies nothing."""
        self.device = torch.device(device)
        return self

    def steps_per_epoch(self) -> int:
        raise NotImplementedError

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, torch.Tensor, int]:
        raise NotImplementedError

    def eval_batches(self, split: str, limit: int | None) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, limit: int | None = None) -> float:
        """Mean loss in nats per scored item over ``split`` (its first ``limit`` windows or sequences)."""
        if split not in self.splits:
            raise ValueError(f"split={split!r}: {self.name} has the splits {', '.join(self.splits)}")
        was_training = model.training
        model.eval()
        total, count = torch.zeros((), dtype=torch.float64, device=self.device), 0
        try:
            for batch in self.eval_batches(split, limit):
                _, batch_total, batch_count = self.loss(model, batch)
                total += batch_total.double()
                count += batch_count
        finally:
            model.train(was_training)
        if count == 0:
            raise ValueError(f"{self.name}: the {split} split yields no scored item (limit={limit})")
        return total.item() / count

    def describe_eval(self, limit: int) -> str:
        """The record's note on an evaluation limited to ``limit`` windows or sequences per split."""
        return f"metrics over the first {limit} windows/sequences of each split"


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise ValueError(f"eval_limit={limit!r}: expected a positive number of windows/sequences or None")


def mean_cross_entropy(name: str, logits: torch.Tensor, targets: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Cross-entropy of logits (batch, classes, T) against targets (batch, T): the mean over all targets (what
    is minimised), the detached sum in nats and the number of targets."""
    if logits.shape[-1] != targets.shape[-1]:
        raise ValueError(f"{name}: the model scores {logits.shape[-1]} positions per window, the task "
                         f"{targets.shape[-1]}; the setting's input/output lengths do not fit the model")
    ce = cross_entropy(logits, targets, reduction="sum")          # in float32, in the logits' layout
    count = targets.numel()
    return ce / count, ce.detach(), count


# The official word script's log line: every 100 batches, math.exp of their mean loss (OverflowError above this).
WORD_LOG_INTERVAL = 100
WORD_LOG_LOSS_LIMIT = math.log(sys.float_info.max)


class LanguageTask(Task):
    """Char- or word-level PTB: windows of ``input_length`` tokens, the last ``output_length`` scored."""

    train_loss_limit = 100.0

    def __init__(self, name: str, setting: PaperSetting, corpus: text_data.Corpus, batch_size: int):
        super().__init__(setting)
        self.name, self.unit = name, METRIC_UNITS[name]
        self.corpus = corpus
        self.input_length, self.output_length = setting.input_output
        self.batch_size = batch_size
        # Word: the official word script drops a window when start + seq_len >= len - 1 (char: >= len), i.e. it
        # never uses the last column of a stream; cutting that column off gives exactly its windows.
        self.valid_loss_limit = 100.0 if corpus.kind == "word" else 1000.0
        if corpus.kind == "word":
            # The word script has no check on a training step: it fails only when its log line's math.exp of the
            # mean loss over 100 batches overflows. One step's spike (the paper-setting Seq-U-Net has them around
            # epoch 36) must not end the run as the char script's per-step limit of 100 would.
            self.train_loss_limit, self.train_loss_interval = WORD_LOG_LOSS_LIMIT, WORD_LOG_INTERVAL
        self._trim = 1 if corpus.kind == "word" else 0
        self.streams = {
            "train": text_data.batchify(corpus.train, batch_size),
            "valid": corpus.streams("valid"),
            "test": corpus.streams("test"),
        }

    def to(self, device):
        super().to(device)
        self.streams = {k: v.to(self.device) for k, v in self.streams.items()}
        return self

    def steps_per_epoch(self) -> int:
        return len(text_data.windows(self.streams["train"].shape[1], self.input_length, self.output_length))

    def train_batches(self, generator):
        return text_data.iterate_windows(self.streams["train"], self.input_length, self.output_length,
                                         shuffle=True, generator=generator)

    def loss(self, model, batch):
        inputs, targets = batch
        return mean_cross_entropy(self.name, model(inputs), targets)     # logits (batch, vocab, output_length)

    def eval_batches(self, split, limit):
        _check_limit(limit)
        streams = self.streams[split]
        if split != "train" and self._trim:
            streams = streams[:, :-self._trim]
        starts = text_data.windows(streams.shape[1], self.input_length, self.output_length)[:limit]
        per_batch = max(1, EVAL_WINDOWS_PER_BATCH // streams.shape[0])
        for k in range(0, len(starts), per_batch):
            pairs = [text_data.get_window(streams, s, self.input_length, self.output_length)
                     for s in starts[k:k + per_batch]]
            yield torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


class MusicTask(Task):
    """A piano-roll dataset: one whole sequence per step, summed BCE, frame-wise NLL."""

    fixed_shapes = False                             # sequences differ in length

    def __init__(self, name: str, setting: PaperSetting, rolls: music_data.PianoRolls):
        super().__init__(setting)
        self.name, self.unit = name, METRIC_UNITS[name]
        self.rolls = {split: getattr(rolls, split) for split in SPLITS}

    def to(self, device):
        super().to(device)
        self.rolls = {k: [r.to(self.device) for r in v] for k, v in self.rolls.items()}
        return self

    def steps_per_epoch(self) -> int:
        return len(self.rolls["train"])

    def train_batches(self, generator):
        return music_data.iterate_sequences(self.rolls["train"], shuffle=True, generator=generator)

    def loss(self, model, batch):
        inputs, targets = batch                      # (88, T) each
        logits = model(inputs.unsqueeze(0)).squeeze(0)
        bce = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="sum")
        frames = targets.shape[-1]
        # The official objective is the sum itself (not a mean), so its gradient grows with the sequence length.
        return bce, bce.detach(), frames

    def eval_batches(self, split, limit):
        _check_limit(limit)
        # Batch 1 as in the official code: sequences differ in length, and front padding would shift the
        # Seq-U-Net's decimation phase.
        return (music_data.next_step(roll) for roll in self.rolls[split][:limit])


class AudioTask(Task):
    """Raw piano audio as 8-bit mu-law ids: random excerpts for training, non-overlapping windows to evaluate."""

    splits = ("train", "test")
    # The stream of random excerpts never ends, so an epoch is only a reporting interval: this many steps, or the
    # run's max_steps_per_epoch if smaller. (The official script's epoch over our few pieces would be ~27 steps.)
    STEPS_PER_EPOCH = 1000
    prefetch: bool | None = None      # cut batches in a thread during the previous step (None: on a GPU only)

    def __init__(self, setting: PaperSetting, corpus, batch_size: int, source: str = "the registered pieces"):
        from sequnet.data.audio import AudioExcerpts   # soundfile and scipy only where audio is used

        super().__init__(setting)
        if setting.kind != "audio" or setting.target_output is None:
            raise ValueError(f"the audio task needs an audio setting with target_output, got kind "
                             f"{setting.kind!r} for {setting.task!r}")
        if not corpus.train or not corpus.test:
            raise ValueError(f"the audio corpus from {source} has {len(corpus.train)} training and "
                             f"{len(corpus.test)} test pieces; it needs at least one of each")
        self.name, self.unit = "piano_audio", METRIC_UNITS["piano_audio"]
        self.corpus, self.batch_size, self.sr = corpus, batch_size, corpus.sr
        self.input_length, self.output_length = setting.input_output
        io = (self.input_length, self.output_length)
        self.excerpts = corpus.excerpts(*io)                     # official hop 40000, random positions
        self.windows = {"train": AudioExcerpts(list(corpus.train.values()), *io, hop=self.output_length),
                        "test": corpus.test_windows(*io)}

        def minutes(pieces):
            return sum(len(p) for p in pieces.values()) / corpus.sr / 60

        self.data_note = (f"audio from {source}: {len(corpus.train)} training pieces ({minutes(corpus.train):.1f} "
                          f"min), {len(corpus.test)} test pieces ({minutes(corpus.test):.1f} min); the train metric "
                          f"uses evenly spaced non-overlapping training windows, as many as the test metric uses")

    def steps_per_epoch(self) -> int:
        return self.STEPS_PER_EPOCH

    def _stack(self, items, pin: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = (torch.stack(x) for x in zip(*items))
        return (inputs.pin_memory(), targets.pin_memory()) if pin else (inputs, targets)

    def _on_device(self, cpu_batches):
        ahead = self.device.type == "cuda" if self.prefetch is None else self.prefetch
        return on_device(cpu_batches, self.device, ahead=ahead)

    def _cpu_train_batches(self, generator):
        pending, pin = [], self.device.type == "cuda"
        while True:
            self.excerpts.set_epoch(int(torch.randint(2 ** 62, (), generator=generator)))
            for index in torch.randperm(len(self.excerpts), generator=generator).tolist():
                pending.append(self.excerpts[index])
                if len(pending) == self.batch_size:
                    yield self._stack(pending, pin)
                    pending = []

    def train_batches(self, generator):
        """Endless batches: each round gives every item of the official dataset a fresh random position and
        visits the items in a random order. Both come from a generator of their own, seeded by one draw from
        ``generator`` now: a thread cutting batches ahead then never draws from the run's generator, whose state
        (saved with each checkpoint) stays independent of how far ahead the thread got."""
        seed = int(torch.randint(2 ** 62, (), generator=generator))
        return self._on_device(self._cpu_train_batches(torch.Generator().manual_seed(seed)))

    def loss(self, model, batch):
        inputs, targets = batch                      # (batch, I) ids, (batch, O) ids
        return mean_cross_entropy(self.name, model(inputs), targets)

    def eval_indices(self, split: str, limit: int | None) -> list[int]:
        """The windows of ``split`` that are evaluated: ``limit`` evenly spaced ones (all test windows when None;
        for train, as many as the test split has), so that every piece is represented, not only the first."""
        _check_limit(limit)
        n = len(self.windows[split])
        want = limit if limit is not None else (n if split == "test" else len(self.windows["test"]))
        if want >= n:
            return list(range(n))
        return np.unique(np.linspace(0, n - 1, want).round().astype(int)).tolist()

    def eval_batches(self, split, limit):
        windows, pin = self.windows[split], self.device.type == "cuda"
        chosen = self.eval_indices(split, limit)
        return self._on_device(self._stack([windows[i] for i in chosen[k:k + self.batch_size]], pin)
                               for k in range(0, len(chosen), self.batch_size))

    def describe_eval(self, limit: int) -> str:
        return f"metrics over {limit} evenly spaced non-overlapping windows of each split"

    def test_excerpts(self, n: int, length: int, seed: int = 0, *, min_rms_db: float = -35.0,
                      tries: int = 20) -> tuple[torch.Tensor, list[str]]:
        """``n`` excerpts of ``length`` mu-law ids from the test pieces, as (n, length) int64 ids and a
        "piece @ sample N (seconds)" description of each: primes for conditional generation, with the real
        continuation after them. The pieces take turns; each position is random (from ``seed``), redrawn up to
        ``tries`` times while the excerpt is quieter than ``min_rms_db`` dBFS (a pause makes a poor prime), else
        the loudest."""
        from sequnet.data.audio import mu_law_decode

        names = sorted(name for name, piece in self.corpus.test.items() if len(piece) >= length)
        if not names:
            raise ValueError(f"no test piece is {length / self.sr:.1f} s long: shorten the excerpts")
        rng = np.random.default_rng(seed)
        excerpts, sources = [], []
        for i in range(n):
            name = names[i % len(names)]
            piece = self.corpus.test[name]
            best = None
            for _ in range(tries):
                start = int(rng.integers(0, len(piece) - length + 1))
                ids = piece[start:start + length].long()
                rms = 10 * math.log10(float(mu_law_decode(ids).pow(2).mean()) + 1e-20)
                if best is None or rms > best[0]:
                    best = (rms, start, ids)
                if rms >= min_rms_db:
                    break
            excerpts.append(best[2])
            sources.append(f"{name} @ sample {best[1]} ({best[1] / self.sr:.2f} s)")
        return torch.stack(excerpts), sources


# --- building a task ----------------------------------------------------------------------------------------------

# The loaded corpora are kept per process: a notebook trains two models (and a search many) on the same data,
# and tokenising PTB's 5 M characters takes a second or two. Tasks never modify them in place.
@functools.lru_cache(maxsize=8)
def _load(kind: str, name: str, root, mirror):
    if kind == "char":
        return text_data.load_ptb_chars(root=root, mirror=mirror)
    if kind == "word":
        return text_data.load_ptb_words(root=root, mirror=mirror)
    if kind == "audio":
        from sequnet.data.audio import load_audio_corpus   # soundfile and scipy only where audio is used
        return load_audio_corpus(name, root=root, mirror=mirror)
    return music_data.load_music(name, root=root, mirror=mirror)


def _char(setting, batch_size, root, mirror):
    return LanguageTask("char_ptb", setting, _load("char", "ptb", root, mirror), batch_size)


def _word(setting, batch_size, root, mirror):
    return LanguageTask("word_ptb", setting, _load("word", "ptb", root, mirror), batch_size)


def check_batch_size(kind: str, batch_size) -> None:
    """The music tasks train on one whole sequence per step, as the official code (the paper's text says 16)."""
    if kind == "music" and batch_size != 1:
        raise ValueError(f"batch_size={batch_size!r}: the music tasks train on one whole sequence per step "
                         "(as the official code); only 1 is allowed")


def _music(name):
    def build(setting, batch_size, root, mirror):
        check_batch_size("music", batch_size)
        return MusicTask(name, setting, _load("music", name, root, mirror))
    return build


def _audio(setting, batch_size, root, mirror):
    return AudioTask(setting, _load("audio", None, root, mirror), batch_size)


# task name -> builder(setting, batch_size, root, mirror) -> Task
BUILDERS: dict[str, Callable[..., Task]] = {"char_ptb": _char, "word_ptb": _word, "piano_audio": _audio}
BUILDERS.update({name: _music(name) for name in MUSIC_TASKS})


def make_task(name: str, setting: PaperSetting, batch_size: int, *, root=None, mirror=None) -> Task:
    """Load the data of task ``name`` (from the data root, or copied from ``mirror``) and wire it to ``setting``."""
    if name not in BUILDERS:
        raise ValueError(f"task={name!r}: no training wiring for it; available: {', '.join(BUILDERS)}")
    if setting.task != name:
        raise ValueError(f"the setting is for task {setting.task!r}, not {name!r}")
    # Resolve the root now so that the cache key changes with $SEQUNET_DATA.
    return BUILDERS[name](setting, batch_size, str(data_root(root)), mirror)


def audio_task(setting: PaperSetting, batch_size: int, folder=None, *, root=None, mirror=None) -> AudioTask:
    """The piano-audio task on the six registered pieces (``folder`` None) or on a folder of recordings, e.g.
    one filled by ``python -m sequnet data render-piano`` (split as ``sequnet.data.audio.load_audio_corpus``)."""
    if folder is None:
        return make_task("piano_audio", setting, batch_size, root=root, mirror=mirror)
    folder = str(Path(folder).expanduser().resolve())
    return AudioTask(setting, _load("audio", folder, None, None), batch_size, source=folder)
