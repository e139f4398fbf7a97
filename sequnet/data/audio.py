"""Raw piano audio: 8-bit mu-law, excerpts for training, test windows (rendering a corpus: ``sequnet.data.render``).

Audio is kept as mu-law class indices (uint8, as the official code keeps it in HDF5): 16 kHz needs 57.6 MB per
hour instead of 230 MB as float32. The train/test split is always by piece, so no test piece is heard in training.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.signal
import soundfile
import torch
from tqdm.auto import tqdm

from sequnet.data.files import reading
from sequnet.data.registry import GROUPS, DataError, ensure

SAMPLE_RATE = 16000
MU = 255
AUDIO_SUFFIXES = (".flac", ".wav")
INSTALL_HINT = "apt-get install fluidsynth musescore-general-soundfont-lossless sox"
SOUNDFONT_NAME = "MuseScore_General_Full.sf2"


def mu_law_encode(x: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """Class indices in [0, mu] of ``x`` in [-1, 1] (values outside are clipped): floor((y + 1) / 2 * mu + 0.5)
    with y = sign(x) ln(1 + mu|x|) / ln(1 + mu); silence maps to 128. The operations are the official code's, in
    the same order and dtype, so the indices agree bit for bit."""
    if not x.is_floating_point():
        x = x.float()
    m = torch.tensor(float(mu), dtype=x.dtype)
    x = x.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(m * x.abs()) / torch.log1p(m)
    return ((y + 1) / 2 * m + 0.5).to(torch.int64)  # truncation is floor here: the value is >= 0.5


def mu_law_decode(idx: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """Samples of class indices (float32 unless ``idx`` is a wider float): the compander's inverse at
    z = 2 idx / mu - 1, as the official code (so 128 decodes to 8.6e-5, not 0)."""
    if not idx.is_floating_point():
        idx = idx.float()
    m = torch.tensor(float(mu), dtype=idx.dtype)
    z = idx / m * 2 - 1.0
    return torch.sign(z) * (torch.exp(z.abs() * torch.log1p(m)) - 1.0) / m


SILENCE = int(mu_law_encode(torch.zeros(())))  # 128: what short excerpts are padded with


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> torch.Tensor:
    """Mono float32 samples of an audio file at ``sr`` Hz (channels averaged, polyphase resampling if needed).
    A file that cannot be read or decoded raises ``DataError`` naming it."""
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (OSError, soundfile.LibsndfileError) as exc:
        what = "is a directory, not an audio file" if Path(path).is_dir() else f"cannot be read as audio ({exc})"
        raise DataError(f"{path} {what}. Give a readable FLAC or WAV file (remove or replace this one if it came "
                        f"from an interrupted copy)") from exc
    mono = samples.mean(axis=1)
    if rate != sr:
        g = math.gcd(rate, sr)
        mono = scipy.signal.resample_poly(mono, sr // g, rate // g).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(mono))


def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big")


def split_pieces(names: Iterable[str], test_fraction: float) -> tuple[list[str], list[str]]:
    """(train, test) names: the ceil(test_fraction * n) names with the smallest SHA-1 go to test, but at least one
    piece on each side when there are two or more. Deterministic and independent of the order of ``names``."""
    ranked = sorted(set(names), key=lambda n: (_name_hash(n), n))
    n_test = math.ceil(test_fraction * len(ranked))
    if len(ranked) >= 2 and test_fraction > 0:
        n_test = min(max(n_test, 1), len(ranked) - 1)
    return sorted(ranked[n_test:]), sorted(ranked[:n_test])


def audio_files(folder: Path) -> list[Path]:
    with reading(folder, "Give a folder of FLAC/WAV recordings that you can read."):
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


@dataclasses.dataclass
class AudioCorpus:
    sr: int
    train: dict[str, torch.Tensor]  # piece name -> mu-law indices, uint8
    test: dict[str, torch.Tensor]

    def excerpts(self, input_length: int, output_length: int, *, hop: int = 40000,
                 seed: int = 0) -> "AudioExcerpts":
        """Training items at random positions, as the official AudioDataset(random_hops=True, hop 40000)."""
        return AudioExcerpts(list(self.train.values()), input_length, output_length, hop=hop, random_hops=True,
                             seed=seed)

    def test_windows(self, input_length: int, output_length: int) -> "AudioExcerpts":
        """Non-overlapping evaluation windows (hop = O): the targets of consecutive items tile each test piece,
        less a tail shorter than O, as in the official evaluation."""
        return AudioExcerpts(list(self.test.values()), input_length, output_length, hop=output_length)


_PCM16_CODES: torch.Tensor | None = None


def _pcm16_codes() -> torch.Tensor:
    """Mu-law index of every 16-bit sample value: libsndfile reads PCM_16 as value / 32768 exactly, so looking the
    index up gives the same as ``mu_law_encode`` of the float samples, several times faster."""
    global _PCM16_CODES
    if _PCM16_CODES is None:
        _PCM16_CODES = mu_law_encode(torch.arange(-32768, 32768, dtype=torch.float32) / 32768).to(torch.uint8)
    return _PCM16_CODES


def _encode(path: Path, sr: int) -> torch.Tensor:
    try:
        info = soundfile.info(str(path))
    except (OSError, soundfile.LibsndfileError):
        info = None  # load_audio names the file and the problem
    if info is not None and info.channels == 1 and info.samplerate == sr and info.subtype == "PCM_16":
        with reading(path, "Give a readable FLAC or WAV file."):
            pcm = soundfile.read(path, dtype="int16")[0]
        return _pcm16_codes()[torch.from_numpy(pcm.astype(np.int64) + 32768)]
    return mu_law_encode(load_audio(path, sr)).to(torch.uint8)


def _encode_files(files: Sequence[Path], sr: int) -> dict[str, torch.Tensor]:
    # Threads: libsndfile's FLAC decoding and torch release the GIL, so hours of audio load several times faster.
    with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        codes = list(tqdm(pool.map(_encode, files, [sr] * len(files)), total=len(files), desc="loading audio",
                          unit="file", leave=False))
    return {f.stem: c for f, c in zip(files, codes)}


def load_audio_corpus(folder: str | os.PathLike | None = None, *, sr: int = SAMPLE_RATE, test_fraction: float = 0.2,
                      root: str | os.PathLike | None = None,
                      mirror: str | os.PathLike | None = None) -> AudioCorpus:
    """Mu-law audio split by piece.

    ``folder`` None: the six registered pieces (``piano/rendered/{train,test}``, fetched if needed). A folder with
    ``train/`` and ``test/`` subfolders: those (what ``render-piano`` writes). Any other folder of FLAC/WAV files:
    ``split_pieces``. A folder without training or test audio raises ``DataError`` naming it.
    """
    if folder is None:
        paths = [ensure(p, root=root, mirror=mirror) for p in GROUPS["piano-rendered"]]
        train = [p for p in paths if p.parent.name == "train"]
        test = [p for p in paths if p.parent.name == "test"]
    else:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"{folder} is not a folder; give a folder of FLAC/WAV recordings (optionally with "
                            f"train/ and test/ subfolders), or None for the six registered piano pieces")
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            train, test = audio_files(folder / "train"), audio_files(folder / "test")
        else:
            files = {p.stem: p for p in audio_files(folder)}
            train_names, test_names = split_pieces(files, test_fraction)
            train, test = [files[n] for n in train_names], [files[n] for n in test_names]
        for side, found in (("training", train), ("test", test)):
            if not found:
                raise DataError(f"no {side} audio (*.flac, *.wav) in {folder}; put recordings there (two or more, "
                                f"or train/ and test/ subfolders) or render some with `python -m sequnet data "
                                f"render-piano --out {folder}`")
    return AudioCorpus(sr, _encode_files(train, sr), _encode_files(test, sr))


class AudioExcerpts(torch.utils.data.Dataset):
    """Items (inputs, targets) of mu-law indices, as the official ``AudioDataset`` with
    ``input_size=O, context_front=I-O+1``: a chunk of I+1 samples whose first I are the inputs and whose last O
    are the targets, each target being the sample after an input position. The chunk is padded with silence (128)
    where it reaches before the start of a piece (context) or past its end (a piece shorter than O; one sample in
    the last test window when O divides L - O + 1).

    A piece of length L gives (L - O + 1) // hop + 1 items. With ``random_hops`` each item takes a uniformly
    random target start in [0, L - O], drawn from (seed, epoch, index) so that it is reproducible whatever the
    DataLoader workers do; call ``set_epoch`` to get fresh positions. Without, item k starts at k * hop.
    """

    def __init__(self, pieces: Sequence[torch.Tensor], input_length: int, output_length: int, *, hop: int,
                 random_hops: bool = False, seed: int = 0):
        if not 0 < output_length <= input_length:
            raise ValueError(f"need 0 < output_length <= input_length, got {output_length} and {input_length}")
        self.pieces = list(pieces)
        self.input_length, self.output_length = input_length, output_length
        self.hop, self.random_hops, self.seed, self.epoch = hop, random_hops, seed, 0
        counts = [(len(p) - output_length + 1) // hop + 1 for p in self.pieces]
        self.ends = np.cumsum(counts)  # item index i belongs to the first piece whose end exceeds i

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} items")
        k = int(np.searchsorted(self.ends, index, side="right"))
        piece = self.pieces[k]
        if self.random_hops:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            start = int(rng.integers(0, max(len(piece) - self.output_length, 0) + 1))
        else:
            start = (index - (int(self.ends[k - 1]) if k else 0)) * self.hop
        chunk = _padded(piece, start - (self.input_length - self.output_length + 1), start + self.output_length)
        return chunk[:-1], chunk[-self.output_length:]


def _padded(piece: torch.Tensor, begin: int, end: int) -> torch.Tensor:
    """piece[begin:end] as int64, with silence where the range lies outside the piece."""
    out = torch.full((end - begin,), SILENCE, dtype=torch.long)
    lo, hi = max(begin, 0), min(end, len(piece))
    if hi > lo:
        out[lo - begin:hi - begin] = piece[lo:hi].long()
    return out


# --- One MIDI file with FluidSynth + sox: the recipe of the registered FLACs (shared/data/MANIFEST.md §3); the corpus
# renderer, with TinySoundFont as the alternative, is sequnet.data.render ---

@dataclasses.dataclass(frozen=True)
class RenderTools:
    fluidsynth: str
    sox: str
    soundfont: Path


def _installed_soundfont() -> Path | None:
    # The recipe asks dpkg where the package put it; fall back to the usual directories (other distributions).
    try:
        listing = subprocess.run(["dpkg-query", "-L", "musescore-general-soundfont-lossless"],
                                 capture_output=True, text=True, check=False).stdout.split()
    except OSError:
        listing = []
    candidates = [Path(p) for p in listing if p.endswith("/" + SOUNDFONT_NAME)]
    for base in ("/usr/share/sounds", "/usr/share/soundfonts", "/usr/local/share/sounds", "/usr/local/share/soundfonts"):
        if Path(base).is_dir():
            candidates += sorted(Path(base).rglob(SOUNDFONT_NAME))
    return next((p for p in candidates if p.is_file()), None)


def find_render_tools(soundfont: str | os.PathLike | None = None) -> RenderTools:
    """fluidsynth, sox and the grand-piano SoundFont, or a DataError naming what is missing and how to install it."""
    fluidsynth, sox = shutil.which("fluidsynth"), shutil.which("sox")
    font = Path(soundfont) if soundfont else _installed_soundfont()
    missing = [name for name, found in (("fluidsynth", fluidsynth), ("sox", sox)) if not found]
    if font is None or not font.is_file():
        missing.append(f"the SoundFont {font}" if soundfont else f"the SoundFont {SOUNDFONT_NAME}")
    if missing:
        raise DataError(f"render-piano needs {', '.join(missing)}. Install them with `{INSTALL_HINT}` "
                        f"(or pass --soundfont FILE.sf2 for another piano SoundFont), or use "
                        f"--renderer tinysoundfont (a wheel, no system packages).")
    return RenderTools(fluidsynth, sox, font)


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DataError(f"`{' '.join(command)}` failed with exit code {done.returncode}: "
                        f"{(done.stderr or done.stdout).strip()[-2000:]}")


def render_midi(midi: Path, target: Path, tools: RenderTools, sr: int = SAMPLE_RATE) -> None:
    """One MIDI file to a mono 16-bit FLAC at ``sr``, peak-normalised to -1 dBFS, written atomically."""
    with tempfile.TemporaryDirectory(prefix=".render-", dir=target.parent) as tmp:
        wav, flac = Path(tmp) / "synth.wav", Path(tmp) / "out.flac"
        _run([tools.fluidsynth, "-ni", "-q", "-o", "synth.chorus.active=0", "-o", "synth.polyphony=1024",
              "-g", "0.5", "-r", "44100", "-O", "float", "-T", "wav", "-F", str(wav), str(tools.soundfont),
              str(midi)])
        # -R fixes sox's dither seed, which makes the output bit-for-bit repeatable
        _run([tools.sox, "-R", str(wav), "-b", "16", "-C", "8", str(flac), "remix", "-", "rate", "-v", str(sr),
              "gain", "-n", "-1"])
        os.replace(flac, target)
