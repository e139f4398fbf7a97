"""Rendering the piano-midi.de MIDI files to 16 kHz mono FLAC, split by piece, with a manifest of what was made.

Two renderers:
* ``fluidsynth``: FluidSynth + sox (``audio.render_midi``, which other modules use for one file), the recipe of
  the six registered FLACs (shared/data/MANIFEST.md §3), for a CPU machine with the Debian packages installed; bit
  for bit with FluidSynth 2.3.1 and the soundfont 0.2.1-1.
* ``tinysoundfont``: the TinySoundFont wheel (no system libraries), for the GPU machine, which has no package
  manager. Synthesis at 44.1 kHz, the sustain pedal applied here (TinySoundFont ignores CC64), polyphase
  resampling to 16 kHz, peak-normalised to -1 dBFS as sox does in the recipe.

Pieces render in parallel (one process per worker, the SoundFont loaded once per process). A piece that fails is
listed in the result and the manifest and the others still render; every file is written under a temporary name and
renamed when complete, so an interrupted run leaves no partial file and can simply be started again.
"""
from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io
import json
import multiprocessing
import os
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile
from tqdm.auto import tqdm

from sequnet.data.audio import (AUDIO_SUFFIXES, SAMPLE_RATE, _name_hash, find_render_tools, render_midi,
                                split_pieces)
from sequnet.data.files import cannot_write, temporary_sibling
from sequnet.data.registry import GROUPS, OPTIONAL, DataError, data_root, ensure, sha256_of
from sequnet.data.render_tsf import PEAK_DB, SYNTH_RATE, load_tinysoundfont, synthesize

MIDI_ZIP = "piano/midi/piano-midi.de_midis.zip"
RENDER_DIR = "piano/rendered-all"  # render-piano's default output, relative to the data root
RENDERERS = ("fluidsynth", "tinysoundfont")
MANIFEST_NAME = "manifest.json"


def write_flac(audio: np.ndarray, target: Path, sr: int = SAMPLE_RATE) -> None:
    """16-bit mono FLAC, written under a temporary name and renamed when complete."""
    with temporary_sibling(target) as tmp:
        soundfile.write(tmp, audio, sr, format="FLAC", subtype="PCM_16")
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a corpus is meant to be shared
        os.replace(tmp, target)


# --- the corpus ---

@dataclasses.dataclass
class RenderResult:
    rendered: list[Path]            # files written by this run
    failed: dict[str, str]          # piece -> why it did not render
    manifest: Path                  # out_dir/manifest.json, describing every piece in the folder


def _choose(train: list[str], test: list[str], limit: int | None) -> tuple[list[str], list[str]]:
    """At most ``limit`` pieces, keeping the train/test proportion (and one test piece when limit >= 2)."""
    if limit is None or limit >= len(train) + len(test):
        return train, test
    n_test = round(limit * len(test) / (len(train) + len(test)))
    n_test = min(len(test), max(n_test, 1 if limit >= 2 else 0))
    return train[:limit - n_test], test[:n_test]


def _render_split(names: Iterable[str], test_fraction: float) -> tuple[list[str], list[str]]:
    """``split_pieces``, except that the six registered pieces keep their registered side: a larger rendered
    corpus must not train on a piece that the default corpus tests on."""
    train, test = split_pieces(names, test_fraction)
    side = {name: "train" for name in train} | {name: "test" for name in test}
    for path in GROUPS["piano-rendered"]:
        if Path(path).stem in side:
            side[Path(path).stem] = Path(path).parent.name
    return sorted(n for n, s in side.items() if s == "train"), sorted(n for n, s in side.items() if s == "test")


def _durations(archive: zipfile.ZipFile, members: dict[str, str]) -> dict[str, float]:
    """Seconds per piece from the zip's metadata.csv (piano-midi.de's, columns midi and duration; the paths there
    differ in case from the members for a few pieces, e.g. schubert_D850_1.mid)."""
    try:
        rows = csv.DictReader(io.TextIOWrapper(archive.open("metadata.csv"), encoding="utf-8"))
        by_member = {row["midi"].lower(): float(row["duration"]) for row in rows}
    except (KeyError, ValueError) as exc:
        raise DataError(f"--hours needs the durations in the zip's metadata.csv (columns midi, duration): {exc}; "
                        f"use --limit or --pieces with this zip") from exc
    missing = sorted(name for name, member in members.items() if member.lower() not in by_member)
    if missing:
        raise DataError(f"the zip's metadata.csv has no duration for {', '.join(missing[:10])}"
                        f"{' ...' if len(missing) > 10 else ''}; --hours needs one for every piece (use --pieces)")
    return {name: by_member[member.lower()] for name, member in members.items()}


def _by_hours(names: list[str], seconds: dict[str, float], hours: float) -> list[str]:
    """Pieces in a fixed pseudo-random order (the split's hash) until their duration reaches ``hours``."""
    chosen, total = [], 0.0
    for name in sorted(names, key=lambda n: (_name_hash(n), n)):
        if total >= hours * 3600:
            break
        chosen.append(name)
        total += seconds[name]
    return sorted(chosen)


def _cpu_seconds() -> float:
    """CPU time of this process and of the children it waited for (fluidsynth and sox run as children)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _render_one(renderer: str, name: str, midi: bytes, target: str, soundfont: str,
                sr: int) -> tuple[str | None, float]:
    """Render one piece to ``target`` (a worker process's job): (None, or why it failed; CPU seconds spent)."""
    start = _cpu_seconds()
    try:
        if renderer == "tinysoundfont":
            write_flac(synthesize(midi, soundfont, sr), Path(target), sr)
        else:
            with tempfile.TemporaryDirectory(prefix="sequnet-midi-") as tmp:
                path = Path(tmp) / f"{name}.mid"
                path.write_bytes(midi)
                render_midi(path, Path(target), find_render_tools(soundfont), sr)
    except Exception as exc:  # reported with the piece's name; the other pieces go on
        return f"{type(exc).__name__}: {exc}", _cpu_seconds() - start
    return None, _cpu_seconds() - start


def _pool(workers: int):
    # fork would copy a parent that may run torch threads; the fork server imports this module once (a few seconds,
    # it pulls in torch through the package) and forks clean workers from it
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)


def _version(tool: str) -> str:
    """The first line of ``tool --version``, without the program's path that sox puts in front (records carry
    no machine paths)."""
    lines = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout.splitlines()
    head, colon, rest = (lines[0] if lines else "unknown").partition(":")
    return rest.strip() if colon and (os.sep in head or head == Path(tool).name) else head.strip() + colon + rest


def _renderer_info(renderer: str, soundfont: Path, sr: int) -> dict:
    if renderer == "tinysoundfont":
        from importlib.metadata import version
        settings = {"synth_rate": SYNTH_RATE, "resampling": "scipy.signal.resample_poly", "sustain_pedal": "applied",
                    "reverb": "none", "chorus": "none", "max_voices": 1024, "peak_dbfs": PEAK_DB}
        info = {"name": "tinysoundfont", "version": version("tinysoundfont"), "settings": settings}
    else:
        settings = {"command": "fluidsynth -ni -q -o synth.chorus.active=0 -o synth.polyphony=1024 -g 0.5 -r 44100 "
                               "-O float -T wav; sox -R -b 16 -C 8 remix - rate -v SR gain -n -1"}
        tools = find_render_tools(soundfont)
        info = {"name": "fluidsynth+sox", "version": f"{_version(tools.fluidsynth)}; {_version(tools.sox)}",
                "settings": settings}
    sha = sha256_of(soundfont)
    registered = next((f.path for f in OPTIONAL.values() if f.sha256 == sha), None)
    return {"renderer": info, "soundfont": {"name": soundfont.name, "bytes": soundfont.stat().st_size, "sha256": sha,
                                            "registered_as": registered}, "sample_rate": sr,
            "format": "FLAC, mono, 16-bit PCM, peak-normalised to -1 dBFS"}


def _folder_summary(out: Path) -> dict:
    summary = {}
    for side in ("train", "test"):
        files = sorted(p for p in (out / side).iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        seconds = sum(soundfile.info(str(p)).duration for p in files)
        summary[side] = {"pieces": [p.stem for p in files], "count": len(files), "hours": round(seconds / 3600, 4)}
    return summary


def _check_same_renderer(out: Path, described: dict) -> None:
    """Pieces already in ``out`` must come from the same renderer and font: a corpus is one timbre."""
    path = out / MANIFEST_NAME
    if not path.is_file():
        return
    try:
        before = json.loads(path.read_text())
        same = (before["renderer"]["name"] == described["renderer"]["name"]
                and before["soundfont"]["sha256"] == described["soundfont"]["sha256"]
                and before["sample_rate"] == described["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a render-piano manifest ({exc}); move it away or use another --out") from exc
    if not same:
        raise DataError(f"{out} holds pieces rendered with {before['renderer']['name']} and the SoundFont "
                        f"{before['soundfont']['name']} ({before['soundfont']['sha256'][:12]}), not with "
                        f"{described['renderer']['name']} and {described['soundfont']['name']}; a corpus must be one "
                        f"timbre: use another --out")


def render_piano(out_dir: str | os.PathLike | None = None, midi_zip: str | os.PathLike | None = None, *,
                 renderer: str = "fluidsynth", soundfont: str | os.PathLike | None = None, workers: int = 1,
                 limit: int | None = None, pieces: Sequence[str] | None = None,
                 hours: tuple[float, float] | None = None, test_fraction: float = 0.1, sr: int = SAMPLE_RATE,
                 root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None) -> RenderResult:
    """Render piano-midi.de MIDI files to ``out_dir/{train,test}/<piece>.flac`` and write ``out_dir/manifest.json``.

    The split is ``split_pieces`` over every piece in the zip, so a piece's side does not depend on ``limit``,
    ``pieces`` or ``hours``; the six registered pieces keep their registered side, so ``out_dir=<root>/piano/rendered``
    with the fluidsynth renderer reproduces the registered files. ``hours=(train, test)`` takes pieces of each side
    in a fixed pseudo-random order until their durations (the zip's metadata.csv) reach those hours. Pieces already
    rendered are skipped, so an interrupted run can simply be started again. ``soundfont``: required for
    tinysoundfont; for fluidsynth the installed MuseScore_General_Full.sf2 by default.
    Defaults: ``out_dir`` = ``<data root>/piano/rendered-all``, ``midi_zip`` = the registered zip.
    """
    if renderer not in RENDERERS:
        raise DataError(f"unknown renderer {renderer!r}; use one of {', '.join(RENDERERS)}")
    if workers < 1:
        raise DataError(f"--workers must be at least 1, got {workers}")
    if renderer == "fluidsynth":
        font = find_render_tools(soundfont).soundfont
    elif soundfont is None:
        raise DataError("--renderer tinysoundfont needs --soundfont FILE (the piano font: `python -m sequnet data "
                        "soundfont` makes it and prints its path)")
    else:
        font = Path(soundfont)
        load_tinysoundfont(font)  # a missing or broken font fails here, before anything is written
    out = Path(out_dir) if out_dir else data_root(root) / RENDER_DIR
    midi_zip = Path(midi_zip) if midi_zip else ensure(MIDI_ZIP, root=root, mirror=mirror)
    try:
        archive = zipfile.ZipFile(midi_zip)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read the MIDI zip {midi_zip} ({exc}); give a readable zip of .mid files with "
                        f"--midi-zip, or leave it out to use the registered piano-midi.de zip") from exc
    with archive:
        members = {Path(n).stem: n for n in archive.namelist() if n.lower().endswith((".mid", ".midi"))}
        unknown = sorted(set(pieces or ()) - set(members))
        if unknown:
            raise DataError(f"{midi_zip} has no MIDI file for {', '.join(unknown)}")
        train, test = _render_split(members, test_fraction)
        if pieces:
            train, test = [p for p in train if p in pieces], [p for p in test if p in pieces]
        if hours is not None:
            seconds = _durations(archive, members)
            train, test = _by_hours(train, seconds, hours[0]), _by_hours(test, seconds, hours[1])
        train, test = _choose(train, test, limit)
        described = _renderer_info(renderer, font, sr)
        for side in ("train", "test"):
            try:
                (out / side).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise cannot_write(out / side, exc) from exc
        _check_same_renderer(out, described)
        jobs = [(name, out / side / f"{name}.flac") for side, names in (("train", train), ("test", test))
                for name in names]
        todo = [(name, target) for name, target in jobs if not target.exists()]
        todo.sort(key=lambda job: -archive.getinfo(members[job[0]]).file_size)  # long pieces first: balanced
        args = [(renderer, name, archive.read(members[name]), str(target), str(font), sr) for name, target in todo]
    failed: dict[str, str] = {}
    cpu_s, wall_start = 0.0, time.perf_counter()
    with tqdm(total=len(args), desc="render-piano", unit="piece") as progress:
        if workers == 1 or len(args) <= 1:
            outcomes = ((a[1], _render_one(*a)) for a in args)
            for name, (error, seconds) in outcomes:
                progress.update()
                cpu_s += seconds
                if error is not None:
                    failed[name] = error
        else:
            with _pool(min(workers, len(args))) as pool:
                futures = {pool.submit(_render_one, *a): a[1] for a in args}
                for future in concurrent.futures.as_completed(futures):
                    progress.update()
                    try:
                        error, seconds = future.result()
                    except Exception as exc:  # the worker process died (BrokenProcessPool): the piece failed
                        error, seconds = f"{type(exc).__name__}: {exc}", 0.0
                    cpu_s += seconds
                    if error is not None:
                        failed[futures[future]] = error
    rendered = [t for n, t in todo if n not in failed]
    last_run = {"pieces": len(rendered), "workers": workers, "cpu_seconds": round(cpu_s, 1),
                "wall_seconds": round(time.perf_counter() - wall_start, 1),
                "audio_hours": round(sum(soundfile.info(str(t)).duration for t in rendered) / 3600, 4)}
    manifest = dict(described, midi_zip={"name": midi_zip.name, "sha256": sha256_of(midi_zip)},
                    splits=_folder_summary(out), test_fraction=test_fraction, failed=failed, last_run=last_run)
    path = out / MANIFEST_NAME
    with temporary_sibling(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    return RenderResult(rendered, failed, path)
