"""The raw piano chapter after training: both models continue the same real primes, the continuations are written
as audio, measured for stability and turned into listening-test items.

Audio files go under the notebook's ``out_dir`` (the notebook plays them with ``sequnet.publish.book.audio_player``,
which this layer may not import): the functions here return the paths and captions to play.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

import soundfile
import torch

from sequnet.analysis import listening, stability
from sequnet.core.configs import ARCH_LABELS
from sequnet.core.generation import generate
from sequnet.data.audio import mu_law_decode
from sequnet.experiment.tasks import audio_task

ARCHS = ("sequnet", "wavenet")       # the residual Seq-U-Net and its baseline, in the chapter's order


def audio_tasks(configs: Mapping[str, Any], audio_dir: str | None) -> dict[str, Any]:
    """Each model's ``AudioTask``: the pieces (the six pre-rendered ones, or ``audio_dir``'s) cut into its
    training windows, at its config's batch size."""
    return {arch: audio_task(c.setting, c.batch_size, audio_dir) for arch, c in configs.items()}


def generation_note(gen) -> str:
    """What the generation part of the chapter will do at this scale (``scales.resolve_generation``)."""
    return (f"Generation: {gen.n_items} primes of {gen.prime_seconds:g} s, continued for "
            f"{max(gen.gen_seconds, gen.long_seconds):g} s at temperature {gen.temperature}; listening items keep "
            f"{gen.gen_seconds:g} s of it, the stability study all {gen.long_seconds:g} s.")


def data_note(tasks: Mapping[str, Any]) -> str:
    """The audio data and each model's training window (``tasks``: arch -> ``AudioTask``)."""
    lines = [next(iter(tasks.values())).data_note]
    lines += [f"{ARCH_LABELS[arch]}: windows of {task.input_length:,} inputs scoring {task.output_length:,}; "
              f"{len(task.windows['test']):,} test windows" for arch, task in tasks.items()]
    return "\n".join(lines)


def training_note(records) -> str:
    """Steps taken, status and metrics of each trained model."""
    return "\n".join(f"{ARCH_LABELS[r.model]}: {sum(h['steps'] for h in r.history)} steps, {r.status}; train "
                     f"{r.metrics['train']:.3f}, test {r.metrics['test']:.3f} bits per sample" for r in records)


def continue_primes(models: Mapping[str, torch.nn.Module], real: torch.Tensor, primes: torch.Tensor,
                    temperature: float, seed: int, progress: bool = False,
                    cpu_threads: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """Every model continues all ``primes`` (one batch, cached step-wise generation; CUDA graphs on a GPU) by
    as many samples as ``real`` has after them. Returns the generated ids (prime included, on the CPU) and the speed of each model, the pass
    over the primes and, on a GPU, the graph capture included. ``cpu_threads``: torch's CPU threads from now on
    (the preset's: a generation step is a few hundred tiny operations, and on a CPU one thread beats two that
    wait for each other at each of them, see sequnet.experiment.scales)."""
    if cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    generated, speed, steps = {}, {}, real.shape[1] - primes.shape[1]
    for arch, model in models.items():
        model = model.eval()
        dev = next(model.parameters()).device
        start = time.perf_counter()
        ids = generate(model, primes, steps, temperature=temperature, progress=progress,
                       generator=torch.Generator(dev).manual_seed(seed), cuda_graphs=dev.type == "cuda")
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - start
        generated[arch] = ids.cpu()
        speed[arch] = {"steps_per_s": steps / seconds, "samples_per_s": len(primes) * steps / seconds,
                       "batch": len(primes), "seconds": seconds, "device": str(dev), "cuda_graphs": dev.type == "cuda"}
    return generated, speed


def speed_markdown(speed: Mapping[str, dict], sr: int) -> str:
    lines = ["| model | sequences | steps/s | samples/s | × real time (per sequence) |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {ARCH_LABELS[a]} | {s['batch']} | {s['steps_per_s']:,.0f} | {s['samples_per_s']:,.0f} "
              f"| {s['steps_per_s'] / sr:.2f} |" for a, s in speed.items()]
    return "\n".join(lines) + ("\n\nIncluding the pass over the primes (and, on a GPU, capturing the CUDA graphs). "
                               "The paper: 309 (Seq-U-Net) and 69 (WaveNet) samples/s at batch 1 on a GTX 1080.")


def write_audio(path: Path, ids: torch.Tensor, sr: int) -> Path:
    """Decode mu-law ids to a 16-bit FLAC at ``path`` (written beside, then renamed: never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    soundfile.write(partial, mu_law_decode(ids).numpy(), sr, subtype="PCM_16", format="FLAC")
    os.replace(partial, path)
    return path


def test_primes(task, gen, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Excerpts of the test pieces (never heard in training) at positions drawn with ``seed``: the real audio
    (prime and what followed it, as long as the longest generation), the primes, and where each excerpt is from."""
    prime_len = round(gen.prime_seconds * task.sr)
    n_new = round(max(gen.gen_seconds, gen.long_seconds) * task.sr)
    real, sources = task.test_excerpts(gen.n_items, prime_len + n_new, seed=seed)
    return real, real[:, :prime_len], sources


def _excerpts(folder: Path, prefix: str, reference: torch.Tensor, reference_name: str, reference_label: str,
              generated: Mapping[str, torch.Tensor], length: int, sr: int,
              titles: list[str]) -> list[tuple[str, list[tuple[Path, str]]]]:
    """Write the first ``length`` samples of each excerpt: the reference and every model's continuation; returns
    (title, [(path, caption), ...]) per excerpt (one per title), to be played in that order."""
    shown = []
    for i, title in enumerate(titles):
        files = [(write_audio(folder / f"{prefix}{i + 1:02d}_{reference_name}.flac", reference[i, :length], sr),
                  reference_label)]
        files += [(write_audio(folder / f"{prefix}{i + 1:02d}_{arch}.flac", ids[i, :length], sr),
                   f"prime + {ARCH_LABELS[arch]}") for arch, ids in generated.items()]
        shown.append((title, files))
    return shown


def listening_excerpts(folder: Path, primes: torch.Tensor, generated: Mapping[str, torch.Tensor], length: int,
                       sr: int, sources: list[str]) -> list[tuple[str, list[tuple[Path, str]]]]:
    """Every excerpt as the listening test has it: the prime, then each model's continuation to ``length``."""
    return _excerpts(folder, "item", primes, "prime", "real piano (prime)", generated, length, sr,
                     [f"**Excerpt {i + 1}** ({source})" for i, source in enumerate(sources)])


def long_excerpts(folder: Path, real: torch.Tensor, generated: Mapping[str, torch.Tensor], prime_len: int, sr: int,
                  gen, count: int = 2) -> list[tuple[str, list[tuple[Path, str]]]]:
    """The first ``count`` long continuations (``gen.long_seconds`` after the prime) with the real piano that
    followed the same prime."""
    length = prime_len + round(gen.long_seconds * sr)
    return _excerpts(folder, "long", real, "real", "real piano", generated, length, sr,
                     [f"**Excerpt {i + 1}**, {gen.prime_seconds:g} s prime + {gen.long_seconds:g} s"
                      for i in range(min(count, len(real)))])


def stability_curves(real: torch.Tensor, generated: Mapping[str, torch.Tensor], start: int, gen,
                     sr: int) -> dict[str, stability.StabilityMeasures]:
    """Median stability measures of the real continuation and of each model's over the ``gen.long_seconds``
    after sample ``start`` (the prime left out), in ``gen``'s windows."""
    length = round(gen.long_seconds * sr)
    groups = {"real piano": real[:, start:start + length]}
    groups |= {ARCH_LABELS[a]: ids[:, start:start + length] for a, ids in generated.items()}
    return stability.median_curves({label: [mu_law_decode(s).numpy() for s in signals]
                                    for label, signals in groups.items()}, sr, window_s=gen.window_s,
                                   nperseg=gen.nperseg)


def plot_stability(curves: Mapping[str, stability.StabilityMeasures], gen, scale: str):
    """The stability figure of the chapter, with real piano as the reference and the paper's 10 s marked when
    the generations reach it."""
    fig = stability.plot_stability(curves, reference="real piano", mark_s=10.0 if gen.long_seconds > 10 else None)
    fig.suptitle(f"{gen.n_items} continuations of {gen.long_seconds:g} s, medians ({scale} scale)")
    return fig


def write_items(out: Path, primes: torch.Tensor, generated: Mapping[str, torch.Tensor], length: int, sr: int,
                seed: int, sources: list[str], summary: dict[str, Any]) -> str:
    """The listening-test items (prime + ``length`` samples of each model under random names; which is which
    only the key beside them knows) under ``out``, and ``summary`` with their folder as generation.json."""
    items = listening.write_items(
        out / listening.ITEMS_SUBDIR, [mu_law_decode(p).numpy() for p in primes],
        {arch: [mu_law_decode(ids[:length]).numpy() for ids in seqs] for arch, seqs in generated.items()}, sr,
        sources=sources, generation={"seed": seed})
    partial = out / ".generation.json.partial"
    partial.write_text(json.dumps(summary | {"items": str(items.folder)}, indent=1) + "\n")
    os.replace(partial, out / "generation.json")
    return f"{len(items.items)} listening items in {items.folder}; generation summary in {out / 'generation.json'}"
