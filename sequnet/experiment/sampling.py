"""Use a trained model: continue a prime from a checkpoint as text, a MIDI file or audio (``sequnet generate``).

    s = sample("runs/demo/checkpoints/jsb_sequnet.pt", length=64, temperature=0.9, out="jsb.mid")
    s.ids            # (batch, T) ids, or (batch, 88, T) piano rolls: prime + continuation
    s.decoded        # per sequence: the text, the (88, T) roll, or the audio samples in [-1, 1]

The task and the architecture come from the checkpoint (its configuration; the best-validation weights where it
has them, else the last). A prime comes from a file (``prime``: text, MIDI, or audio resampled to 16 kHz and
mu-law encoded) or from the task's test data at positions drawn from ``seed``. Generation is the library's
cached step-wise generation (``sequnet.core.generation``); the TCN recomputes its receptive field each step.

Every argument is checked before the model runs: a bad one raises ``ValueError`` naming it and what is accepted
(``CheckpointError``, a ``ValueError``, for a checkpoint that cannot be used). Files are written under temporary
names and renamed once all are complete, so a failure leaves none behind, and an existing file is replaced only
with ``overwrite=True``.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import math
import numbers
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from sequnet.core.configs import build_model
from sequnet.core.generation import init_roll_state, init_state, minimal_window, sample_frames
from sequnet.data import text as text_data
from sequnet.data.files import DataError
from sequnet.data.registry import data_root
from sequnet.experiment.checkpoints import CheckpointError, load_checkpoint
from sequnet.experiment.scales import RunConfig, config_from_dict, resolve_device

# Defaults per task family: elements generated, and the test-set prime's length (None: the model's window).
DEFAULT_LENGTH = {"char_ptb": 300, "word_ptb": 60, "music": 64, "audio": 16000}
DEFAULT_PRIME = {"char_ptb": None, "word_ptb": None, "music": 16, "audio": 16000}
# The longest prime accepted: it is held in memory and, for the music Seq-U-Net, passed through one forward.
MAX_PRIME = {"token": 100_000, "music": 10_000, "audio": 60 * 16000}
UNITS = {"char_ptb": "characters", "word_ptb": "words", "music": "frames", "audio": "samples"}
SUFFIXES = {"music": (".mid", ".midi"), "audio": (".flac",)}
CHUNK = {"token": 64, "music": 64, "audio": 1024}       # steps between progress-bar updates


@dataclasses.dataclass
class Sample:
    task: str
    arch: str
    ids: torch.Tensor              # (batch, T) ids or (batch, 88, T) rolls, on the CPU; prime included
    prime_length: int              # the first prime_length elements of each sequence are the prime
    decoded: list[Any]             # per sequence: str (language), (88, T) roll (music), float samples (audio)
    prime_decoded: list[Any]       # the same of the primes alone
    temperature: float | None      # None: greedy
    prime_source: list[str]        # where each prime comes from
    files: list[Path]              # written files (none without ``out``)
    seconds: float                 # generation time, the pass over the prime included
    samples_per_s: float           # generated elements per second over the whole batch

    @property
    def continuation(self) -> list[Any]:
        """The generated part of each decoded sequence."""
        if isinstance(self.decoded[0], str):
            return [d[len(p):] for d, p in zip(self.decoded, self.prime_decoded)]
        return [d[..., self.prime_length:] for d in self.decoded]


def family(config: RunConfig) -> str:
    kind = config.setting.kind
    return config.task if kind == "token" else kind


# --- the model -------------------------------------------------------------------------------------------------------

def load_trained(source, device: str | torch.device = "cpu") -> tuple[nn.Module, RunConfig]:
    """The model of a checkpoint path (verified, best-validation weights where present) or of a finished
    ``train()`` run (its ``model`` and ``record.config``), in eval mode on ``device``."""
    device = resolve_device(device)
    if hasattr(source, "model") and hasattr(source, "record"):
        # the record's config also says how the run was launched (e.g. world_size): keep the RunConfig fields
        fields = {f.name for f in dataclasses.fields(RunConfig)}
        config = config_from_dict({k: v for k, v in source.record.config.items() if k in fields})
        return source.model.to(device).eval(), config
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"checkpoint={source!r}: expected the path of a training checkpoint (.pt) or a run "
                         "returned by sequnet.experiment.training.train")
    path = Path(source)
    if not path.exists():
        raise ValueError(f"checkpoint={str(path)!r}: no such file; `sequnet train` writes them to "
                         "<out>/checkpoints/<task>_<arch>.pt")
    payload = load_checkpoint(path)
    try:
        config = config_from_dict(payload["config"])
        model = build_model(config.setting)
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise CheckpointError(path, f"its configuration does not fit this version of sequnet ({e}); generate with "
                                    "the version that trained it, or train again") from None
    weights = payload["state"].get("best_weights") if isinstance(payload["state"], dict) else None
    try:
        model.load_state_dict(weights or payload["model"])
    except (RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(path, f"its weights do not fit the {config.name} model its configuration "
                                    f"describes ({first})") from None
    return model.to(device).eval(), config


# --- primes ----------------------------------------------------------------------------------------------------------

def _check_count(name: str, value, low: int = 1, high: int | None = None, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low or (
            high is not None and value > high):
        bound = f"{low}..{high:,}" if high is not None else f">= {low}"
        raise ValueError(f"{name}={value!r}: expected an integer {bound}{what}")
    return int(value)


def _corpus(config: RunConfig, root, mirror) -> text_data.Corpus:
    return _load_corpus(config.task, str(data_root(root)), None if mirror is None else str(mirror))


@functools.lru_cache(maxsize=2)
def _load_corpus(task: str, root: str, mirror: str | None) -> text_data.Corpus:
    # kept per process: a notebook samples several times, and tokenising PTB takes seconds
    load = text_data.load_ptb_chars if task == "char_ptb" else text_data.load_ptb_words
    return load(root=root, mirror=mirror)


def encode_text(text: str, corpus: text_data.Corpus, name: str = "prime") -> torch.Tensor:
    """Ids of ``text`` as the corpus tokenises it (a line break is ``<eos>``); an unknown character or word
    raises ``ValueError`` naming the first one, where it is, and what the vocabulary holds."""
    index = {s: i for i, s in enumerate(corpus.vocab)}
    if corpus.kind == "char":
        tokens = list(text.replace("\n", text_data.EOS))
    else:
        tokens = [w for line in io.StringIO(text) for w in line.split() + ([text_data.EOS] if line.endswith("\n")
                                                                          else [])]
    for pos, tok in enumerate(tokens):
        if tok not in index:
            if corpus.kind == "char":
                known = "".join(sorted(c for c in index if len(c) == 1))
                raise ValueError(f"{name}: character {tok!r} (character {pos + 1} of the prime, line breaks as "
                                 f"<eos>) is not in char-PTB's vocabulary; it knows {known!r}")
            raise ValueError(f"{name}: word {tok!r} (word {pos + 1} of the prime) is not in word-PTB's "
                             f"{len(index):,}-word vocabulary: replace it with <unk>, which the model knows (PTB is "
                             f"lower case, numbers are N)")
    return torch.tensor([index[t] for t in tokens], dtype=torch.long)


def decode_text(ids: torch.Tensor, corpus: text_data.Corpus) -> str:
    """Text of ``ids``, every ``<eos>`` a line break."""
    if corpus.kind == "char":
        return corpus.decode(ids).replace(text_data.EOS, "\n")
    lines, words = [], []
    for word in (corpus.vocab[i] for i in ids.tolist()):
        if word == text_data.EOS:
            lines.append(" ".join(words))
            words = []
        else:
            words.append(word)
    return "\n".join(lines + [" ".join(words)])


def _cut(prime: torch.Tensor, prime_length: int | None, name: str, limit: int, unit: str) -> torch.Tensor:
    """The prime's last ``prime_length`` elements; refuses an empty one and one over ``limit``."""
    n = prime.shape[-1]
    if n == 0:
        raise ValueError(f"prime={name}: it holds no {unit}; give a file with at least one")
    if prime_length is not None:
        prime = prime[..., -prime_length:]
    if prime.shape[-1] > limit:
        raise ValueError(f"prime={name}: {prime.shape[-1]:,} {unit} is longer than allowed ({limit:,}); pass "
                         f"prime_length (--prime-length N) to continue from its last N {unit}")
    return prime


def file_prime(config: RunConfig, path, prime_length, corpus) -> torch.Tensor:
    """The prime of a file, one sequence: ids (1, T) or a roll (1, 88, T)."""
    fam, path = family(config), Path(path)
    if not path.is_file():
        raise ValueError(f"prime={str(path)!r}: no such file")
    try:
        if fam == "music":
            from sequnet.data.midi import midi_to_roll
            prime = midi_to_roll(path)
        elif fam == "audio":
            from sequnet.data.audio import load_audio, mu_law_encode
            prime = mu_law_encode(load_audio(path))
        else:
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError) as e:
                raise DataError(f"{path} cannot be read as UTF-8 text ({e})") from None
            prime = encode_text(text, corpus, f"prime={str(path)!r}")
    except DataError as e:
        raise ValueError(f"prime={str(path)!r}: {e}") from None
    return _cut(prime, prime_length, repr(str(path)), MAX_PRIME[config.setting.kind],
                UNITS[fam]).unsqueeze(0)


def test_primes(config: RunConfig, batch: int, prime_length: int, seed: int, corpus,
                root=None, mirror=None) -> tuple[torch.Tensor, list[str]]:
    """``batch`` primes of ``prime_length`` from the task's test data, at positions drawn from ``seed``."""
    import numpy as np

    fam, rng = family(config), np.random.default_rng(seed)
    if fam == "audio":
        from sequnet.experiment.tasks import audio_task
        return audio_task(config.setting, 1, root=root, mirror=mirror).test_excerpts(batch, prime_length, seed=seed)
    if fam == "music":
        from sequnet.data.music import load_music
        pieces = load_music(config.task, root=root, mirror=mirror).test
        fits = [i for i, p in enumerate(pieces) if p.shape[1] >= prime_length]
        if not fits:
            longest = max(p.shape[1] for p in pieces)
            raise ValueError(f"prime_length={prime_length}: no {config.task} test piece is that long (the longest "
                             f"has {longest} frames)")
        chosen = [fits[int(rng.integers(len(fits)))] for _ in range(batch)]
        return (torch.stack([pieces[i][:, :prime_length] for i in chosen]),
                [f"{config.task} test piece {i}, frames 0-{prime_length - 1}" for i in chosen])
    test = corpus.test
    if prime_length >= len(test):
        raise ValueError(f"prime_length={prime_length}: the {config.task} test split has {len(test):,} tokens")
    starts = rng.integers(0, len(test) - prime_length, size=batch).tolist()
    return (torch.stack([test[s:s + prime_length] for s in starts]),
            [f"{config.task} test split, {UNITS[fam]} {s:,}-{s + prime_length - 1:,}" for s in starts])


# --- output files ----------------------------------------------------------------------------------------------------

def output_paths(config: RunConfig, out, batch: int, overwrite: bool) -> list[Path]:
    """One file per sequence: ``out`` itself for one, ``<stem>-1<suffix>`` ... for several. Checked before any
    work: the suffix the task writes, no existing file unless ``overwrite``, no folder in the way."""
    if out is None:
        return []
    out, fam = Path(out), family(config)
    allowed = SUFFIXES.get(fam)
    if allowed and out.suffix.lower() not in allowed:
        raise ValueError(f"out={str(out)!r}: {config.task} writes {' or '.join(allowed)} files; give a name "
                         f"ending in {allowed[0]}")
    paths = [out] if batch == 1 else [out.with_name(f"{out.stem}-{i + 1}{out.suffix}") for i in range(batch)]
    for p in paths:
        if p.is_dir():
            raise ValueError(f"out={str(out)!r}: {p} is a folder; give a file name")
        if p.exists() and not overwrite:
            raise ValueError(f"out={str(out)!r}: {p} exists; pass overwrite=True (--overwrite) to replace it, or "
                             f"choose another name")
        if p.parent.exists() and not p.parent.is_dir():
            raise ValueError(f"out={str(out)!r}: {p.parent} is not a folder")
    return paths


def _write_one(path: Path, fam: str, item) -> None:
    if fam == "music":
        from sequnet.data.midi import write_midi
        write_midi(item, path)
    elif fam == "audio":
        import soundfile
        soundfile.write(path, item.numpy(), 16000, subtype="PCM_16", format="FLAC")
    else:
        path.write_text(item if item.endswith("\n") else item + "\n", encoding="utf-8")


def write_outputs(paths: list[Path], fam: str, decoded: list[Any]) -> None:
    """Write every file under a temporary name beside it, then rename them all: all or none."""
    temps = []
    try:
        for path, item in zip(paths, decoded):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".partial{path.suffix}")
            os.close(fd)
            temps.append(Path(tmp))
            _write_one(Path(tmp), fam, item)
        umask = os.umask(0)
        os.umask(umask)
        for tmp, path in zip(temps, paths):
            os.chmod(tmp, 0o666 & ~umask)       # a temporary file is private; the result gets the usual mode
            os.replace(tmp, path)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


# --- generation ------------------------------------------------------------------------------------------------------

def _generate(model: nn.Module, kind: str, primes: torch.Tensor, n: int, temperature: float, greedy: bool,
              generator: torch.Generator, progress: bool, pad_id: int | None) -> torch.Tensor:
    """The continuation (batch, n) or (batch, 88, n), generated in chunks so that the bar counts samples/s (every
    sequence's elements: batch x steps)."""
    if kind == "music":
        state = init_roll_state(model, primes)

        def step(m):
            return sample_frames(state, m, temperature, greedy, generator, progress=False)
    else:
        state, graphs = init_state(model, primes, pad_id=pad_id), primes.device.type == "cuda"

        def step(m):
            return state.generate(m, temperature, greedy, generator, progress=False, cuda_graphs=graphs)
    parts = []
    with tqdm(total=n * len(primes), unit="sample", unit_scale=True, desc="generating", disable=not progress,
              leave=False) as bar:
        for done in range(0, n, CHUNK[kind]):
            m = min(CHUNK[kind], n - done)
            parts.append(step(m))
            bar.update(m * len(primes))
    return torch.cat(parts, dim=-1)


def _decode(fam: str, x: torch.Tensor, corpus):
    if fam == "audio":
        from sequnet.data.audio import mu_law_decode
        return mu_law_decode(x)
    return x if fam == "music" else decode_text(x, corpus)


def sample(checkpoint, *, length: int | None = None, temperature: float = 1.0, greedy: bool = False, seed: int = 0,
           batch: int = 1, prime: str | os.PathLike | torch.Tensor | None = None, prime_length: int | None = None,
           device: str = "auto", out: str | os.PathLike | None = None, overwrite: bool = False,
           progress: bool = True, cpu_threads: int | None = None, root=None, mirror=None) -> Sample:
    """Continue ``batch`` primes by ``length`` elements (characters, words, frames or 16 kHz samples; default
    ``DEFAULT_LENGTH``) with the model of ``checkpoint`` (a path, or a run returned by ``train``).

    ``prime``: a file (UTF-8 text, a MIDI file, an audio file) or a tensor (ids (T,), a roll (88, T)) continued
    by every sequence of the batch, else
    test-set primes of ``prime_length`` elements (default ``DEFAULT_PRIME``, or the model's window) at positions
    drawn from ``seed``, which also seeds the sampling. ``temperature`` divides the logits; ``greedy`` takes the
    most likely element (music: every key above one half). ``out``: the file to write (one per sequence,
    numbered, when ``batch`` > 1): text, ``.mid`` or ``.flac``. ``cpu_threads``: torch's threads while generating
    (then restored; a step is many tiny operations, and on a busy CPU one thread can be many times faster than
    two, see sequnet.experiment.scales). ``root``/``mirror``: where the data comes from.
    """
    if not greedy and (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
                       or not math.isfinite(temperature) or temperature <= 0):
        raise ValueError(f"temperature={temperature!r}: expected a positive number (1 samples the model's own "
                         "distribution, lower is more conservative), or greedy=True (--greedy)")
    seed = _check_count("seed", seed, 0)
    batch = _check_count("batch", batch, 1, 4096, " (sequences generated side by side)")
    if cpu_threads is not None:
        cpu_threads = _check_count("cpu_threads", cpu_threads, 1)
    model, config = load_trained(checkpoint, device)
    fam, kind = family(config), config.setting.kind
    length = DEFAULT_LENGTH[fam] if length is None else _check_count("length", length, 1,
                                                                     what=f" ({UNITS[fam]} to generate)")
    if prime_length is not None:
        prime_length = _check_count("prime_length", prime_length, 1, MAX_PRIME[kind], f" ({UNITS[fam]})")
    paths = output_paths(config, out, batch, overwrite)
    corpus = _corpus(config, root, mirror) if kind == "token" else None
    if isinstance(prime, torch.Tensor):         # ids (T,) or a roll (88, T); the generator checks it
        one = prime[..., -prime_length:] if prime_length else prime
        primes, sources = one.unsqueeze(0).expand(batch, *one.shape).contiguous(), ["the prime given"] * batch
    elif prime is not None:
        one = file_prime(config, prime, prime_length, corpus)
        primes, sources = one.expand(batch, *one.shape[1:]).contiguous(), [Path(prime).name] * batch
    else:
        n = prime_length or DEFAULT_PRIME[fam] or minimal_window(model)
        primes, sources = test_primes(config, batch, n, seed, corpus, root, mirror)
    dev = next(model.parameters()).device
    # a prime shorter than the model's window is front-padded: with line breaks (words) or spaces (characters)
    pad_id = corpus.vocab.index(text_data.EOS if corpus.kind == "word" else " ") if corpus else None
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_threads or threads)
    start = time.perf_counter()
    try:
        new = _generate(model, kind, primes.to(dev), length, 1.0 if greedy else float(temperature), greedy,
                        torch.Generator(dev).manual_seed(seed), progress, pad_id)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    ids = torch.cat([primes.to(new.dtype), new.cpu()], dim=-1)
    P = primes.shape[-1]
    decoded = [_decode(fam, x, corpus) for x in ids]
    write_outputs(paths, fam, decoded)
    return Sample(config.task, config.arch, ids, P, decoded, [_decode(fam, x[..., :P], corpus) for x in ids],
                  None if greedy else float(temperature), sources, paths, seconds, batch * length / seconds)
