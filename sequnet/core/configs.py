"""The paper's model configurations (Tables 2 and 3) as the official code realises them.

``paper_setting(task, arch)`` gives the hyper-parameters; ``build_model(setting)`` builds the model;
``paper_model(task, arch)`` does both. A setting can be shrunk for small-scale runs with
``dataclasses.replace(setting, hidden=32, levels=3)`` and built the same way.

Choices that follow the official code rather than the paper's text (spec section 1.4, section 7):
* the language models' last level (the Seq-U-Net bottleneck, the TCN's last block) is ``emsize`` wide, because
  the decoder is tied to the embedding;
* JSB uses H = 175 for the Seq-U-Net (522K parameters, the published count), not Table 3's 170;
* the music Seq-U-Net runs in zero-padded mode, the language models in valid mode;
* Piano-midi is not in the paper's tables: it uses the Muse/Nottingham architecture and MuseData's learning rates.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch.nn as nn

from sequnet.core import sizes
from sequnet.core.models import (ResSeqUNet, ResSeqUNetConfig, SeqUNet, SeqUNetConfig, TCN, TCNConfig, WaveNet,
                            WaveNetConfig)
from sequnet.core.models.layers import OneHotModel, TokenModel

TASKS = ("char_ptb", "word_ptb", "jsb", "nottingham", "muse", "piano_midi", "piano_audio")
ARCHS = {task: ("sequnet", "tcn") for task in TASKS} | {"piano_audio": ("sequnet", "wavenet")}
MUSIC_TASKS = ("jsb", "nottingham", "muse", "piano_midi")
ARCH_LABELS = {"tcn": "TCN", "sequnet": "Seq-U-Net", "wavenet": "WaveNet"}


def baseline_arch(task: str) -> str:
    """The model the paper compares the Seq-U-Net with on ``task``: WaveNet on raw audio, the TCN otherwise."""
    return next(a for a in ARCHS[task] if a != "sequnet")


@dataclass
class PaperSetting:
    task: str
    arch: str
    kind: str                           # "token" (language), "music" (piano roll) or "audio" (mu-law ids)
    kernel_size: int
    levels: int
    hidden: int                         # H (F for the residual Seq-U-Net, residual channels for WaveNet)
    dropout: float
    lr: float
    clip: float | None                  # gradient-norm clipping; None = off
    patience: int | None                # the LR rule's P; None = no schedule (audio)
    epochs: int = 100
    batch_size: int = 16
    target_output: int | None = None    # requested scored positions per window (None: whole sequences)
    history: int = 0                    # TCN only: leading positions not scored
    vocab: int = 0                      # token tasks
    emsize: int = 0
    emb_dropout: float = 0.0
    emb_init: str = "uniform"
    depth: int = 2                      # residual Seq-U-Net
    classes: int = 88                   # music: 88 keys; audio: 256 mu-law classes
    blocks: int = 4                     # WaveNet: stacks of ``levels`` dilated layers (Table 2: 4 x 13)
    skip: int = 512                     # WaveNet: skip and output-head channels (Table 2: 512)

    def replace(self, **changes) -> "PaperSetting":
        return dataclasses.replace(self, **changes)

    @property
    def input_output(self) -> tuple[int | None, int | None]:
        """(input length, scored outputs) of one training window; (None, None) when whole sequences are used."""
        if self.target_output is None:
            return None, None
        if self.arch == "sequnet" and self.kind == "token":
            return sizes.sequnet_valid_io(self.levels, self.kernel_size, self.target_output)
        if self.arch == "sequnet" and self.kind == "audio":
            plan = sizes.res_sequnet_plan(self.levels, self.kernel_size, self.depth, self.target_output)
            return plan.input_length, plan.output_length
        if self.arch == "wavenet":
            return self.receptive_field + self.target_output, self.target_output
        return self.history + self.target_output, self.target_output

    @property
    def receptive_field_range(self) -> tuple[int, int]:
        """(min, max) inputs an output depends on, the current one included; equal for the dilated baselines, a
        period-2^(L-1) range for the Seq-U-Nets."""
        if self.arch == "sequnet":
            if self.kind == "audio":
                return sizes.res_sequnet_rf(self.levels, self.kernel_size, self.depth)
            return sizes.sequnet_rf(self.levels, self.kernel_size)
        if self.arch == "wavenet":
            rf = sizes.wavenet_rf(self.blocks, self.levels, self.kernel_size)
        else:
            rf = sizes.tcn_rf(self.levels, self.kernel_size)
        return rf, rf

    @property
    def receptive_field(self) -> int:
        """Past samples an output can see, in the paper's convention (max RF - 1)."""
        return self.receptive_field_range[1] - 1


def _lm(task, arch, hidden, lr, clip, dropout, vocab, emsize, emb_dropout, emb_init, target, history):
    return PaperSetting(task, arch, "token", kernel_size=3, levels=4, hidden=hidden, dropout=dropout, lr=lr,
                        clip=clip, patience=5, target_output=target, history=history, vocab=vocab, emsize=emsize,
                        emb_dropout=emb_dropout, emb_init=emb_init)


def _music(task, arch, k, levels, hidden, dropout, lr, clip):
    return PaperSetting(task, arch, "music", kernel_size=k, levels=levels, hidden=hidden, dropout=dropout, lr=lr,
                        clip=clip, patience=10)


_SETTINGS = {
    # Table 3. Char: TCN scores 320 of 400 inputs; the Seq-U-Net plan for 320 gives 325 of 397.
    ("char_ptb", "tcn"): _lm("char_ptb", "tcn", 600, 0.00014, 0.213, 0.1, 49, 100, 0.1, "uniform", 320, 80),
    ("char_ptb", "sequnet"): _lm("char_ptb", "sequnet", 390, 0.00073, None, 0.1, 49, 100, 0.1, "uniform", 320, 0),
    ("word_ptb", "tcn"): _lm("word_ptb", "tcn", 600, 0.00115, None, 0.5, 10000, 600, 0.25, "normal", 45, 72),
    ("word_ptb", "sequnet"): _lm("word_ptb", "sequnet", 390, 0.00037, 0.722, 0.5, 10000, 600, 0.25, "normal", 45, 0),
    ("muse", "tcn"): _music("muse", "tcn", 5, 4, 215, 0.2, 0.00023, None),
    ("muse", "sequnet"): _music("muse", "sequnet", 5, 4, 150, 0.2, 0.00047, None),
    ("nottingham", "tcn"): _music("nottingham", "tcn", 5, 4, 215, 0.2, 0.000067, 0.601),
    ("nottingham", "sequnet"): _music("nottingham", "sequnet", 5, 4, 150, 0.2, 0.00108, None),
    ("jsb", "tcn"): _music("jsb", "tcn", 3, 2, 220, 0.5, 0.00134, None),
    ("jsb", "sequnet"): _music("jsb", "sequnet", 3, 2, 175, 0.5, 0.00051, 0.324),
    ("piano_midi", "tcn"): _music("piano_midi", "tcn", 5, 4, 215, 0.2, 0.00023, None),
    ("piano_midi", "sequnet"): _music("piano_midi", "sequnet", 5, 4, 150, 0.2, 0.00047, None),
    # Table 2 and the official raw-audio train.py: Adam 5e-4, no clipping, no LR schedule, 5000 targets.
    ("piano_audio", "sequnet"): PaperSetting("piano_audio", "sequnet", "audio", kernel_size=5, levels=11,
                                             hidden=180, dropout=0.0, lr=5e-4, clip=None, patience=None, epochs=10,
                                             target_output=5000, depth=2, classes=256),
    ("piano_audio", "wavenet"): PaperSetting("piano_audio", "wavenet", "audio", kernel_size=2, levels=13,
                                             hidden=128, dropout=0.0, lr=5e-4, clip=None, patience=None, epochs=10,
                                             target_output=5000, classes=256),
}


class UnknownConfigError(ValueError):
    pass


def paper_setting(task: str, arch: str) -> PaperSetting:
    if task not in TASKS:
        raise UnknownConfigError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if arch not in ARCHS[task]:
        raise UnknownConfigError(f"unknown arch {arch!r} for task {task!r}; valid archs: {', '.join(ARCHS[task])}")
    return dataclasses.replace(_SETTINGS[task, arch])


def build_model(s: PaperSetting) -> nn.Module:
    """The model for a setting; every model maps a window to logits of shape (batch, classes, T - history)."""
    if s.kind == "token":
        channels = (s.hidden,) * (s.levels - 1) + (s.emsize,)
        if s.arch == "sequnet":
            body = SeqUNet(SeqUNetConfig(s.emsize, channels, s.emsize, s.kernel_size, s.dropout))
        else:
            body = TCN(TCNConfig(s.emsize, channels, s.kernel_size, s.dropout, history=s.history))
        return TokenModel(body, s.vocab, s.emsize, s.emb_dropout, tied=True, init=s.emb_init)
    if s.kind == "music":
        channels = (s.hidden,) * s.levels
        if s.arch == "sequnet":
            return SeqUNet(SeqUNetConfig(s.classes, channels, s.classes, s.kernel_size, s.dropout, padded=True))
        return TCN(TCNConfig(s.classes, channels, s.kernel_size, s.dropout, num_outputs=s.classes))
    if s.arch == "sequnet":
        body = ResSeqUNet(ResSeqUNetConfig(s.classes, s.hidden, s.levels, s.classes, s.kernel_size, s.depth))
    else:
        body = WaveNet(WaveNetConfig(s.classes, blocks=s.blocks, layers=s.levels, residual_channels=s.hidden,
                                     kernel_size=s.kernel_size, skip_channels=s.skip, end_channels=s.skip,
                                     num_outputs=s.classes))
    return OneHotModel(body, s.classes)


def paper_model(task: str, arch: str) -> nn.Module:
    """The paper's model for ``task`` (one of TASKS) and ``arch`` ("sequnet", "tcn", or "wavenet" for audio)."""
    return build_model(paper_setting(task, arch))


def count_parameters(model: nn.Module) -> int:
    """Distinct parameters (a tied embedding/decoder weight counts once)."""
    return sum(p.numel() for p in model.parameters())
