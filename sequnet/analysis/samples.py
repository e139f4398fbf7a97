"""What the trained models produce, for the language and music chapters: a few sampled lines of text, and a
short generated excerpt of music as MIDI (rendered to audio where the project's renderer is installed) with a
piano-roll figure next to the real continuation of the same prime.

Everything goes through ``sequnet.experiment.sampling.sample``, the function behind ``sequnet generate``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import torch

from sequnet.core.configs import ARCH_LABELS
from sequnet.data.files import DataError
from sequnet.experiment.sampling import sample

# Elements generated in the chapters per scale: a CPU generates the smaller scales' samples in seconds.
LENGTHS = {"smoke": {"char_ptb": 40, "word_ptb": 10, "music": 16},
           "demo": {"char_ptb": 200, "word_ptb": 40, "music": 48},
           "paper": {"char_ptb": 300, "word_ptb": 60, "music": 64}}
WARM_UP = 32                 # elements of the untimed call before the timed one: two multi-step CUDA graphs
PRIME_SHOWN = {"char_ptb": 80, "word_ptb": 200}      # characters of the prime printed before the sample


def _which(scale: str) -> str:
    return "paper scale" if scale == "paper" else f"{scale} scale, hardly trained"


def language_samples(runs: Mapping[str, object], task: str, scale: str, temperature: float = 0.8,
                     batch: int = 3, seed: int = 0) -> str:
    """Markdown: ``batch`` continuations of test-set primes by each model of ``runs`` (arch -> trained run)."""
    parts = []
    for arch, run in runs.items():
        # An untimed call first: the first launch of each Triton kernel of the cached Seq-U-Net's step compiles
        # it (the TCN recomputes its window with cuDNN). The char-PTB chapter of 2026-12-03 timed a first call
        # only, and showed 71 characters/s for the Seq-U-Net on an H200 against the TCN's 1,325, where a
        # 2-core CPU generates about 700 with a model of the same size at batch 3.
        sample(run, length=WARM_UP, temperature=temperature, batch=batch, seed=seed, progress=False,
               cpu_threads=_threads(run))
        s = sample(run, length=LENGTHS[scale][task], temperature=temperature, batch=batch, seed=seed,
                   progress=False, cpu_threads=_threads(run))
        lines = [f"…{_one_line(p[-PRIME_SHOWN[task]:])} »{_one_line(c)}"
                 for p, c in zip(s.prime_decoded, s.continuation)]
        unit = "characters" if task == "char_ptb" else "words"
        parts.append(f"**{ARCH_LABELS[arch]}**, {_which(scale)}, temperature {temperature:g}, seed {seed}: "
                     f"{s.samples_per_s:,.0f} {unit}/s here (after a warm-up call)\n\n"
                     "```text\n" + "\n\n".join(lines) + "\n```")
    return ("Each paragraph: the end of a prime from the test split, then » and what the model wrote after it "
            "(a line break, PTB's end of sentence, is shown as ⏎).\n\n" + "\n\n".join(parts))


def _threads(run) -> int | None:
    """The CPU threads the run trained with (its scale's choice; see sequnet.experiment.scales)."""
    return run.record.config.get("cpu_threads")


def _one_line(text: str) -> str:
    return text.replace("\n", " ⏎ ")


def _real_excerpt(task: str, length: int, seed: int) -> tuple[torch.Tensor, str]:
    from sequnet.data.music import load_music

    pieces = load_music(task).test
    fits = [i for i, p in enumerate(pieces) if p.shape[1] >= length]
    if not fits:
        raise ValueError(f"no {task} test piece has {length} frames: shorten the excerpt")
    i = fits[int(torch.randint(len(fits), (), generator=torch.Generator().manual_seed(seed)))]
    return pieces[i][:, :length], f"{task} test piece {i}"


def _render(midi: Path) -> tuple[Path | None, str]:
    """The MIDI file rendered to FLAC beside it with the project's renderer, or None and why not: FluidSynth with
    the registered recipe where it is installed, else TinySoundFont with the baked piano SoundFont where both are
    already here (a notebook never downloads the 330 MB package the font is made from)."""
    from sequnet.data.audio import find_render_tools, render_midi

    target = midi.with_suffix(".flac")
    try:
        tools = find_render_tools()
    except DataError as e:
        return _render_tinysoundfont(midi, target, str(e))
    try:
        render_midi(midi, target, tools)
        return target, ""
    except DataError as e:
        return None, str(e)


def _render_tinysoundfont(midi: Path, target: Path, why_not_fluidsynth: str) -> tuple[Path | None, str]:
    from sequnet.data import registry
    from sequnet.data.render import write_flac
    from sequnet.data.render_tsf import synthesize

    entry, mirror = registry.entry_for(registry.PIANO_FONT), registry.mirror_dir(None)
    here = [registry.data_root(None) / entry.path] + ([mirror / entry.path] if mirror is not None else [])
    if not any(p.is_file() for p in here):
        return None, (f"{why_not_fluidsynth} Nor is the baked piano SoundFont for TinySoundFont here "
                      f"(`python -m sequnet data soundfont` makes it).")
    try:
        font = registry.ensure(registry.PIANO_FONT)            # verified; copied from the mirror if need be
        write_flac(synthesize(midi.read_bytes(), font), target)
        return target, ""
    except DataError as e:
        return None, str(e)


def music_samples(runs: Mapping[str, object], task: str, scale: str, out_dir: str | Path,
                  temperature: float = 1.0, prime_frames: int = 16, seed: int = 0):
    """Both models continue the same real prime from a test piece: MIDI files (and audio where the renderer is
    installed) under ``out_dir/samples``, and a figure of the real piece and each continuation as piano rolls.
    Returns (figure, [(audio path, caption)], a Markdown note)."""
    n = LENGTHS[scale]["music"]
    real, source = _real_excerpt(task, prime_frames + n, seed)
    folder = Path(out_dir) / "samples"
    rolls, audio, why = {"real": real}, [], ""
    for arch, run in runs.items():
        s = sample(run, prime=real[:, :prime_frames], length=n, temperature=temperature, seed=seed, progress=False,
                   out=folder / f"{task}_{arch}.mid", overwrite=True, cpu_threads=_threads(run))
        rolls[arch] = s.decoded[0]
        path, why = _render(s.files[0])
        if path is not None:
            audio.append((path, f"prime + {ARCH_LABELS[arch]}"))
    fig = plot_rolls(rolls, prime_frames, f"{source}: the first {prime_frames} frames are the prime")
    note = (f"Prime: the first {prime_frames} frames (eighth notes) of {source}; each model ({_which(scale)}) "
            f"continued it for {n} frames at temperature {temperature:g}, seed {seed}. The MIDI files play at 120 "
            "beats per minute.")
    if not audio:
        note += f" Not rendered to audio on this machine, so only the piano rolls are shown: {why}"
    return fig, audio, note


def plot_rolls(rolls: Mapping[str, torch.Tensor], prime_frames: int, title: str):
    """One panel per roll (88, T), the keys any of them plays, the prime's end marked."""
    used = torch.stack([r.sum(1) > 0 for r in rolls.values()]).any(0).nonzero().flatten()
    low, high = (int(used.min()) - 2, int(used.max()) + 3) if len(used) else (30, 60)
    fig, axes = plt.subplots(1, len(rolls), figsize=(4 * len(rolls), 3.2), sharey=True, squeeze=False)
    for ax, (name, roll) in zip(axes[0], rolls.items()):
        ax.imshow(roll[max(low, 0):high], aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                  extent=(-0.5, roll.shape[1] - 0.5, max(low, 0) + 20.5, high + 20.5))
        ax.axvline(prime_frames - 0.5, color="tab:red", lw=1)
        ax.set(title="real continuation" if name == "real" else ARCH_LABELS[name], xlabel="frame (eighth note)")
    axes[0][0].set_ylabel("MIDI note")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
