"""Result records: one JSON file per training run, and the paper's Table 1 to compare them with.

A record says what was run (experiment, model, scale, config), what came out (metrics per split), what it cost
(time per step, peak memory, wall time) and where (device, torch, git commit, date). Records of GPU runs are
committed under ``results/`` so that the book can show them without re-running anything.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
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

    def __post_init__(self):
        if self.scale not in SCALE_NAMES:
            raise ValueError(f"scale={self.scale!r} is not one of {SCALE_NAMES}")
        import torch
        self.torch = self.torch or torch.__version__
        self.git_commit = self.git_commit or git_commit()
        self.date = self.date or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.host = self.host or platform.node()

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
        with open(path) as f:
            data = json.load(f)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{path}: unknown fields {sorted(unknown)} in result record")
        # Provenance that the run did not record stays unknown: filling it in from the loading machine (its git
        # commit, its torch) would misattribute the record.
        for key in ("torch", "git_commit", "date", "host"):
            data[key] = data.get(key) or "unknown"
        return cls(**data)


def load_records(root: str | os.PathLike) -> list[ResultRecord]:
    """Every record (``*.json``) below ``root``, sorted by experiment, model and scale."""
    records = [ResultRecord.load(p) for p in sorted(Path(root).rglob("*.json"))]
    return sorted(records, key=lambda r: (r.experiment, r.model, r.scale, r.date))


def git_commit() -> str:
    """The checkout's commit; a copy of the tree without .git (a GPU machine) can pass it as SEQUNET_GIT_COMMIT."""
    if os.environ.get("SEQUNET_GIT_COMMIT"):
        return os.environ["SEQUNET_GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""
