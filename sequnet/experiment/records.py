"""Result records: one JSON file per training run, and the paper's Table 1 to compare them with.

A record says what was run (experiment, model, scale, config), what came out (metrics per split), what it cost
(time per step, peak memory, wall time) and where (device, torch, git commit, date). Records of GPU runs are
committed under ``results/`` so that the book can show them without re-running anything.

Fields added after the first records were committed are optional on loading, so that every committed record still
loads: ``deviations`` (read from the notes when absent), ``seed`` (read from ``config["seed"]`` when absent) and
``loss_spikes`` (None: the run did not count them). A seed is the run's identity, not a preset change: records
written since never list it in ``deviations``; the two written before (``results/paper/music_seeds``) still do,
as their notes say "paper preset changed: seed=N" (``sequnet.experiment.seeds`` disregards it there).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sequnet.experiment.presets import SCALE_NAMES

METRIC_UNITS = {
    "char_ptb": "bpc",
    "word_ptb": "perplexity",
    "jsb": "nll",
    "nottingham": "nll",
    "muse": "nll",
    "piano_midi": "nll",
    "piano_audio": "bits_per_sample",
}

# The paper's Table 1 (train, test, time per step in s, peak memory in MB; GTX 1080, torch 1.2).
# Piano rows were measured at batch 2 (the paper's footnote). ``params``: Table 3's printed parameter counts (the
# paper prints none for the piano models).
PAPER_TABLE1 = {
    ("char_ptb", "tcn"): dict(train=1.066, test=1.31, time_s=0.0694, mem_mb=445.9, params="5.9M"),
    ("char_ptb", "sequnet"): dict(train=1.08, test=1.30, time_s=0.0286, mem_mb=304.9, params="5.9M"),
    ("word_ptb", "tcn"): dict(train=47.21, test=108.47, time_s=0.0480, mem_mb=580.5, params="14.7M"),
    ("word_ptb", "sequnet"): dict(train=40.43, test=107.95, time_s=0.0234, mem_mb=382.1, params="14.9M"),
    ("muse", "tcn"): dict(train=5.789, test=6.931, time_s=0.0059, mem_mb=108.5, params="1.7M"),
    ("muse", "sequnet"): dict(train=5.794, test=6.969, time_s=0.0065, mem_mb=75.3, params="1.7M"),
    ("nottingham", "tcn"): dict(train=1.409, test=2.783, time_s=0.0071, mem_mb=73.1, params="1.7M"),
    ("nottingham", "sequnet"): dict(train=1.850, test=2.97, time_s=0.0067, mem_mb=52.5, params="1.7M"),
    ("jsb", "tcn"): dict(train=6.178, test=8.154, time_s=0.0034, mem_mb=13.1, params="534k"),
    ("jsb", "sequnet"): dict(train=6.151, test=8.173, time_s=0.0037, mem_mb=8.2, params="522k"),
    ("piano_audio", "wavenet"): dict(train=1.76, test=1.88, time_s=1.4616, mem_mb=5294.0),
    ("piano_audio", "sequnet"): dict(train=1.83, test=1.93, time_s=0.3621, mem_mb=1514.0),
}


@dataclasses.dataclass
class ResultRecord:
    experiment: str                      # task name, e.g. "jsb", "char_ptb"
    model: str                           # "sequnet", "tcn" or "wavenet"
    scale: str                           # "smoke", "demo" or "paper"
    metric: str                          # unit of the metrics: bpc, perplexity, nll, bits_per_sample
    metrics: dict[str, float | None]     # {"train": .., "valid": .., "test": ..} in the unit above
    params: int
    receptive_field: int                 # past samples (paper convention: max RF - 1)
    time_per_step_s: float | None        # median synchronised training step, warm-up excluded
    peak_memory_mib: float | None        # torch.cuda.max_memory_allocated, None on the CPU
    device: str
    wall_time_s: float
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)   # one entry per epoch
    status: str = "ok"                   # "ok", "diverged", "interrupted"
    notes: str = ""
    torch: str = ""
    git_commit: str = ""
    date: str = ""
    host: str = ""
    # The fields of the run's configuration that differ from its scale's preset (``scales.deviations``), as
    # {name: value}: a paper-scale record with any is not a reproduction. None: not given, read from ``notes``
    # (records written before this field say it there only: "paper preset changed: epochs=61, lr=0.01").
    deviations: dict[str, Any] | None = None
    # The seed of every random draw of the run (``RunConfig.seed``). None: not given, read from ``config``.
    seed: int | None = None
    # Per-step training-loss spikes (``sequnet.experiment.steps.SpikeRule``): {"rule": its description, "factor",
    # "window", "min_history", "steps_checked", "count", "events": [{"epoch", "step", "loss", "median"}, ...] (the
    # first ``MAX_EVENTS``), "largest": {"epoch", "step", "ratio"} (the largest loss / median of the run, null
    # before a step was judged)}, losses in nats per scored item. None: not counted (records written before).
    loss_spikes: dict[str, Any] | None = None
    # How long the run trained against the paper, and on how much data, for runs that say it (the piano-audio run,
    # :func:`training_extent`): {"steps", "paper_steps", "fraction_of_paper", "train_audio_hours", ...}. A
    # paper-scale record whose fraction is below 1 is not a reproduction (:func:`short_of_paper`).
    extent: dict[str, Any] | None = None

    def __post_init__(self):
        if self.scale not in SCALE_NAMES:
            raise ValueError(f"scale={self.scale!r} is not one of {SCALE_NAMES}")
        import torch
        self.torch = self.torch or torch.__version__
        self.git_commit = self.git_commit or git_commit()
        self.date = self.date or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.host = self.host or platform.node()
        if self.deviations is None:
            self.deviations = deviations_from_notes(self.notes)
        if self.seed is None:
            seed = self.config.get("seed", self.deviations.get("seed"))
            self.seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically: a crash mid-write never leaves a truncated record behind."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, indent=1, default=float)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ResultRecord":
        """Read a record, checking that it is one: a JSON object with every required field, each of its type.
        Any problem raises :class:`RecordError` naming the file and the field."""
        try:
            data = json.loads(Path(path).read_bytes().decode("utf-8"))
        except OSError as e:
            raise RecordError(f"{path}: cannot read the result record ({e.strerror or e})") from e
        except UnicodeDecodeError as e:
            raise RecordError(f"{path}: not UTF-8 text (byte {e.start}); a result record is JSON written by "
                              f"ResultRecord.save") from e
        except json.JSONDecodeError as e:
            raise RecordError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); the file is "
                              f"truncated or damaged: restore it from git or re-run the experiment") from e
        if not isinstance(data, dict):
            raise RecordError(f"{path}: a result record is a JSON object, not {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(fields)
        if unknown:
            raise RecordError(f"{path}: unknown fields {sorted(unknown)} in result record")
        missing = [name for name, f in fields.items() if name not in data and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise RecordError(f"{path}: result record lacks the field(s) {missing}")
        for name, value in data.items():
            problem = _type_problem(name, value)
            if problem:
                raise RecordError(f"{path}: field {name!r} {problem}")
        # Provenance that the run did not record stays unknown: filling it in from the loading machine (its git
        # commit, its torch) would misattribute the record.
        for key in ("torch", "git_commit", "date", "host"):
            data[key] = data.get(key) or "unknown"
        try:
            return cls(**data)
        except ValueError as e:
            raise RecordError(f"{path}: {e}") from e


class RecordError(ValueError):
    """A result record that cannot be read, or whose fields have the wrong type; the message names the file."""


_NUMBER = (int, float)
_SCALAR = (str, int, float, bool, type(None))
# What each field may hold, as loaded from JSON (tuple of types, what to say when it holds something else);
# fields not listed hold a string.
_FIELD_TYPES = {
    "metrics": ((dict,), "must map each split to a number or null"),
    "params": ((int,), "must be a whole number"),
    "receptive_field": ((int,), "must be a whole number"),
    "time_per_step_s": (_NUMBER + (type(None),), "must be a number or null"),
    "peak_memory_mib": (_NUMBER + (type(None),), "must be a number or null"),
    "wall_time_s": (_NUMBER, "must be a number"),
    "config": ((dict,), "must be a JSON object"),
    "history": ((list,), "must be a list of JSON objects, one per epoch"),
    "deviations": ((dict, type(None)), "must map each changed setting to its value"),
    "seed": ((int, type(None)), "must be a whole number or null"),
    "loss_spikes": ((dict, type(None)), "must be a JSON object with the spike count, or null"),
    "extent": ((dict, type(None)), "must be a JSON object (steps, paper_steps, fraction_of_paper, ...) or null"),
}


def _type_problem(name: str, value: Any) -> str:
    """Why ``value`` cannot be field ``name`` of a record, or "" if it can."""
    types, want = _FIELD_TYPES.get(name, ((str,), "must be a string"))
    # bool is an int to Python, but true for a parameter count is a damaged record.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        return f"{want}, not {json.dumps(value)[:60]}"
    if name == "metrics":
        bad = {k: v for k, v in value.items() if isinstance(v, bool) or not isinstance(v, _NUMBER + (type(None),))}
        if bad:
            split, v = next(iter(bad.items()))
            return f"{want}; {split!r} is {json.dumps(v)[:60]}"
    if name == "history" and not all(isinstance(h, dict) for h in value):
        return want
    if name == "deviations" and value is not None and not all(isinstance(v, _SCALAR) for v in value.values()):
        return f"{want} (a string, number, true/false or null)"
    if name == "loss_spikes" and value is not None:
        count, events = value.get("count"), value.get("events")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return f"{want}; its 'count' is {json.dumps(count)[:60]}, not a whole number >= 0"
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return f"{want}; its 'events' must be a list of JSON objects"
    return ""


# Training iterations of the paper's runs, where the paper states them in iterations (section 5.2: 246k at batch 16).
PAPER_STEPS = {"piano_audio": 246_000}


def training_extent(experiment: str, steps: int, **data: Any) -> dict[str, Any]:
    """A record's ``extent``: ``steps`` trained against the paper's iterations for ``experiment``, and ``data``
    (e.g. train_audio_hours, test_audio_hours, renderer, soundfont) as given."""
    if experiment not in PAPER_STEPS:
        raise ValueError(f"experiment={experiment!r}: the paper states its training length in iterations only for "
                         f"{', '.join(PAPER_STEPS)}")
    paper = PAPER_STEPS[experiment]
    return {"steps": int(steps), "paper_steps": paper, "fraction_of_paper": steps / paper} | data


def short_of_paper(record: "ResultRecord") -> bool:
    """Whether the record trained for fewer iterations than the paper (its ``extent`` says so)."""
    return bool(record.extent) and record.extent.get("fraction_of_paper", 1.0) < 1.0


def percent(fraction: float) -> str:
    """"1.0%", or two significant digits below 0.1% ("0.0024%"), so that a short run never reads as 0%."""
    return f"{100 * fraction:.1f}%" if fraction >= 1e-3 else f"{100 * fraction:.2g}%"


def extent_text(record: "ResultRecord") -> str:
    """"2,513 steps, 1.0% of the paper's 246,000; 10.2 h of training audio" (empty without an extent)."""
    e = record.extent or {}
    if "steps" not in e:
        return ""
    text = f"{e['steps']:,} steps, {percent(e['fraction_of_paper'])} of the paper's {e['paper_steps']:,}"
    if e.get("train_audio_hours") is not None:
        text += f"; {e['train_audio_hours']:.1f} h of training audio"
    return text


_PYTHON_LITERALS = {"True": True, "False": False, "None": None}   # how the notes print them
_CHANGED_NOTE = re.compile(r"^\w+ preset changed: (.*)$")


def deviations_from_notes(notes: str) -> dict[str, Any]:
    """The preset changes a record's notes name ("paper preset changed: epochs=61, lr=0.01" among notes joined
    by "; "), for records written before ``deviations`` was a field and by runs that pass only notes. Numbers and
    True/False/None are read as such; other values stay text ("(model changed)")."""
    changes = {}
    for note in notes.split("; "):
        match = _CHANGED_NOTE.match(note)
        if not match:
            continue
        for item in re.split(r", (?=\w+=)", match.group(1)):
            key, _, text = item.partition("=")
            try:
                value = _PYTHON_LITERALS[text] if text in _PYTHON_LITERALS else json.loads(text)
            except ValueError:
                value = text
            changes[key] = value if isinstance(value, _SCALAR) else text
    return changes


def git_commit(where: Path | None = None) -> str:
    """The commit of the checkout holding ``where`` (this package by default), with "+changes" after it where the
    code (``sequnet/``, ``benchmarks/``) differs from that commit's. A copy of the tree (a GPU machine) passes its
    commit as SEQUNET_GIT_COMMIT, which wins. Why the mark: a GPU machine's copy carried a .git of an older commit,
    and a run there without SEQUNET_GIT_COMMIT was labelled with it (2026-12-07, grid-barrier-h100.json)."""
    if os.environ.get("SEQUNET_GIT_COMMIT"):
        return os.environ["SEQUNET_GIT_COMMIT"]
    where = where or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=where,
                             timeout=5)
        if out.returncode != 0:
            return ""
        # the code only (":/" names paths from the checkout's top): a book build rewrites tracked results
        # (results/published) before later runs' records
        diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ":/sequnet", ":/benchmarks"], cwd=where,
                              capture_output=True, timeout=30)
        return out.stdout.strip() + ("+changes" if diff.returncode == 1 else "")
    except (OSError, subprocess.TimeoutExpired):
        return ""
