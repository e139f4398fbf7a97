"""The paper's model configurations (Tables 2 and 3) as the official code realises them.

``paper_setting(task, arch)`` gives the hyper-parameters; ``build_model(setting)`` builds the model;
``paper_model(task, arch)`` does both. A setting can be shrunk for small-scale runs with
``dataclasses.replace(setting, hidden=32, levels=3)`` and built the same way.

``TABLE_2`` and ``TABLE_3`` are the paper's tables as printed, one named row per entry, so that every number can be
checked against the paper; ``paper_setting`` combines a row with what the paper states in its text (section 5.1:
embeddings, patience, batch 16, 100 epochs; section 5.2: audio training) and with what only the official code
(https://github.com/f90/Seq-U-Net, the paper's footnote 1) fixes. Where the code and the printed paper disagree
the companion follows the code:
* the language models' last level (the Seq-U-Net bottleneck, the TCN's last block) is ``emsize`` wide, because
  the decoder is tied to the embedding (section 5.1: "the transposed version of the embedding matrix");
* JSB uses H = 175 for the Seq-U-Net (522K parameters, the count Table 3 prints), not Table 3's printed 170;
* the music Seq-U-Net runs in zero-padded mode, the language models in valid mode (section 3.1 describes only
  the valid mode);
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
    """Everything needed to build and train one of the paper's models.

    ``levels`` and ``hidden`` are the paper's L and H (Table 3) or Layers and Features (Table 2), but what they
    count depends on the architecture (``kind`` and ``arch``):

    =============== ============================================== ===========================================
    kind / arch     ``levels``                                     ``hidden``
    =============== ============================================== ===========================================
    token / tcn     L temporal blocks, block i dilated 2^i, two    H channels of blocks 0..L-2; the last block
                    convs each (Table 3's L)                       is ``emsize`` wide (tied decoder)
    token / sequnet L resolution levels: L-1 down/up blocks and a  H channels of levels 0..L-2; the bottleneck
                    bottleneck (Table 3's L); valid convolutions   is ``emsize`` wide (tied decoder)
    music / tcn     L temporal blocks, as above                    H channels of every block, then a linear
                                                                   layer to the 88 keys
    music / sequnet L resolution levels, as above; zero-padded     H channels of every level
    audio / sequnet L resolution levels of the residual Seq-U-Net  F: features of the input conv and of every
                    (section 3.2; Table 2's Layers), each block    gated layer (Table 2's Features)
                    with ``depth`` + 1 gated layers
    audio / wavenet dilated layers per stack, dilations 1..2^(L-1) residual channels (Table 2's Features); the
                    (Table 2's Layers); ``blocks`` stacks          skip and output head are ``skip`` wide
    =============== ============================================== ===========================================
    """
    task: str
    arch: str
    kind: str                           # "token" (language), "music" (piano roll) or "audio" (mu-law ids)
    kernel_size: int                    # W (Table 3), Width (Table 2)
    levels: int                         # see the table above
    hidden: int                         # see the table above
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
    depth: int = 2                      # residual Seq-U-Net: D (section 3.2)
    classes: int = 88                   # music: 88 keys; audio: 256 mu-law classes
    blocks: int = 4                     # WaveNet: stacks of ``levels`` dilated layers (section 5.2: 4 x 13)
    skip: int = 512                     # WaveNet: skip and output-head channels (section 5.2: 512)

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


# --------------------------------------------------------------------------------------------------------------
# The paper's tables as printed

@dataclass(frozen=True)
class Table3Row:
    """One row of Table 3 (TCN / Seq-U-Net comparisons), its columns in the paper's order and under its names."""
    task: str
    arch: str
    W: int                              # filter width -> PaperSetting.kernel_size
    L: int                              # levels -> levels
    H: int                              # filters per layer -> hidden
    dropout: float
    context: int | str                  # printed only ("Full": whole sequences); not an input
    params: str                         # printed only; tests/test_models.py checks the built models against it
    P: int                              # patience of the learning-rate rule -> patience
    LR: float                           # -> lr
    clip: float | None                  # -> clip; the paper's "No" is None


TABLE_3 = (
    Table3Row("char_ptb", "tcn", W=3, L=4, H=600, dropout=0.1, context=80, params="5.9M", P=5, LR=0.00014, clip=0.213),
    Table3Row("char_ptb", "sequnet", W=3, L=4, H=390, dropout=0.1, context=73, params="5.9M", P=5, LR=0.00073,
              clip=None),
    Table3Row("word_ptb", "tcn", W=3, L=4, H=600, dropout=0.5, context=73, params="14.7M", P=5, LR=0.00115,
              clip=None),
    Table3Row("word_ptb", "sequnet", W=3, L=4, H=390, dropout=0.5, context=73, params="14.9M", P=5, LR=0.00037,
              clip=0.722),
    Table3Row("muse", "tcn", W=5, L=4, H=215, dropout=0.2, context="Full", params="1.7M", P=10, LR=0.00023, clip=None),
    Table3Row("muse", "sequnet", W=5, L=4, H=150, dropout=0.2, context="Full", params="1.7M", P=10, LR=0.00047,
              clip=None),
    Table3Row("nottingham", "tcn", W=5, L=4, H=215, dropout=0.2, context="Full", params="1.7M", P=10, LR=0.000067,
              clip=0.601),
    Table3Row("nottingham", "sequnet", W=5, L=4, H=150, dropout=0.2, context="Full", params="1.7M", P=10,
              LR=0.00108, clip=None),
    Table3Row("jsb", "tcn", W=3, L=2, H=220, dropout=0.5, context="Full", params="534k", P=10, LR=0.00134, clip=None),
    Table3Row("jsb", "sequnet", W=3, L=2, H=170, dropout=0.5, context="Full", params="522k", P=10, LR=0.00051,
              clip=0.324),
)


@dataclass(frozen=True)
class Table2Row:
    """One row of Table 2 (raw audio), its columns in the paper's order and under its names."""
    arch: str
    layers: int                         # -> PaperSetting.levels
    features: int                       # -> hidden
    context: int                        # past samples an output sees; tests/test_models.py checks it
    width: int                          # -> kernel_size


TABLE_2 = (
    Table2Row("wavenet", layers=13, features=128, context=32764, width=2),
    Table2Row("sequnet", layers=11, features=180, context=32748, width=5),
)

# --------------------------------------------------------------------------------------------------------------
# What the tables leave out: the paper's text and the official code

# Section 5.1: 100-dim character embeddings with 0.1 dropout; 10,000 words, 600-dim embeddings with 0.25 dropout;
# the decoder is the transposed embedding. The vocabulary sizes are PTB's; the initialisations are the code's.
_EMBEDDINGS = {
    "char_ptb": dict(vocab=49, emsize=100, emb_dropout=0.1, emb_init="uniform"),
    "word_ptb": dict(vocab=10000, emsize=600, emb_dropout=0.25, emb_init="normal"),
}
# Training windows of the official scripts. Char: the TCN scores 320 of 400 inputs; the Seq-U-Net plan for 320
# gives 325 of 397. Word: 45 scored after 72 positions of history.
_WINDOWS = {
    ("char_ptb", "tcn"): dict(target_output=320, history=80),
    ("char_ptb", "sequnet"): dict(target_output=320, history=0),
    ("word_ptb", "tcn"): dict(target_output=45, history=72),
    ("word_ptb", "sequnet"): dict(target_output=45, history=0),
}
# Where the official code departs from the printed table (see the module docstring).
_CODE_OVERRIDES = {("jsb", "sequnet"): dict(hidden=175)}
# Section 5.2 and the official raw-audio train.py: 256 mu-law classes, Adam 5e-4, no clipping, no LR schedule,
# the last 5000 samples of each example as targets; WaveNet: 4 stacks, 512 skip features; Seq-U-Net: D = 2.
_AUDIO = dict(dropout=0.0, lr=5e-4, clip=None, patience=None, epochs=10, target_output=5000, classes=256)
_AUDIO_ARCH = {"wavenet": dict(blocks=4, skip=512), "sequnet": dict(depth=2)}


def _from_table3(row: Table3Row, task: str | None = None) -> PaperSetting:
    task = task or row.task
    kind = "token" if row.task in _EMBEDDINGS else "music"
    fields = dict(kernel_size=row.W, levels=row.L, hidden=row.H, dropout=row.dropout, lr=row.LR, clip=row.clip,
                  patience=row.P, **_EMBEDDINGS.get(row.task, {}), **_WINDOWS.get((row.task, row.arch), {}))
    fields.update(_CODE_OVERRIDES.get((row.task, row.arch), {}))
    return PaperSetting(task, row.arch, kind, **fields)


def _from_table2(row: Table2Row) -> PaperSetting:
    return PaperSetting("piano_audio", row.arch, "audio", kernel_size=row.width, levels=row.layers,
                        hidden=row.features, **_AUDIO, **_AUDIO_ARCH[row.arch])


_SETTINGS = {(row.task, row.arch): _from_table3(row) for row in TABLE_3}
_SETTINGS |= {("piano_midi", row.arch): _from_table3(row, task="piano_midi") for row in TABLE_3 if row.task == "muse"}
_SETTINGS |= {("piano_audio", row.arch): _from_table2(row) for row in TABLE_2}


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
    """Distinct parameters (a tied embedding/decoder weight counts once); channels stored as zero padding
    (``sequnet.core.models.padding``) are not the model's."""
    return sum(p.numel() for p in model.parameters()) - sum(getattr(m, "padding_zeros", 0) for m in model.modules())
