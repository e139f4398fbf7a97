"""The paper's hyper-parameter search at reduced cost (issue 20 part 3) on the reproduction page.

``benchmarks/table1_hpo.sh`` writes one summary per search (``hpo_<task>_<arch>_<scale>.json``, see
``sequnet.experiment.hpo.summary``): every trial's learning rate, clipping, status and best validation loss, the
best (lr, clip), and the epochs each trial trained (the change from the preset). A search of 10-epoch trials
cannot be read against Table 1's test numbers, so the page sets its best trial beside the one comparison of equal
cost that the committed runs allow: Table 3's own setting, the cell's seeds of the paper preset, at their best
validation loss within the same first epochs (``first_epochs_best``).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from sequnet.experiment.records import ResultRecord
from sequnet.experiment.scales import resolve
from sequnet.experiment.seeds import record_config
from sequnet.publish.table1 import SeedSummary, table1_cells, task_order

SUMMARY_KEYS = {"task", "arch", "scale", "space", "trials", "trials_planned", "complete"}


@dataclasses.dataclass(frozen=True)
class Search:
    task: str
    arch: str
    scale: str
    epochs: int                 # per trial
    planned: int
    trials: tuple[dict, ...]    # {"lr", "clip", "status", "valid_loss"} per trial, in order
    complete: bool

    @property
    def finished(self) -> list[dict]:
        return [t for t in self.trials if t["status"] == "ok" and t["valid_loss"] is not None]

    @property
    def best(self) -> dict | None:
        return min(self.finished, key=lambda t: t["valid_loss"], default=None)


def _search(path: Path, data: dict) -> Search:
    try:
        epochs = int(data.get("deviations", {}).get("epochs") or resolve(data["task"], data["arch"],
                                                                           data["scale"]).epochs)
        trials = tuple({"lr": float(t["lr"]), "clip": None if t["clip"] is None else float(t["clip"]),
                        "status": str(t["status"]),
                        "valid_loss": None if t["valid_loss"] is None else float(t["valid_loss"])}
                       for t in data["trials"])
        return Search(data["task"], data["arch"], data["scale"], epochs, int(data["trials_planned"]), trials,
                      bool(data["complete"]))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SystemExit(f"sequnet book: {path} looks like a search summary but cannot be read "
                         f"({type(e).__name__}: {e}); write it again with benchmarks/table1_hpo.sh, or remove "
                         "it") from e


def find_searches(roots: list[Path]) -> list[Search]:
    """The search summaries below ``roots`` (JSON files with ``SUMMARY_KEYS``), each search once (the one with
    the most trials), in Table 1's task order."""
    found: dict[tuple[str, str, str], Search] = {}
    for root in roots:
        for path in sorted(Path(root).rglob("hpo_*.json")) if Path(root).is_dir() else []:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue                    # not a summary (find_records reports unreadable records)
            if not isinstance(data, dict) or not SUMMARY_KEYS <= data.keys():
                continue
            s = _search(path, data)
            key = (s.task, s.arch, s.scale)
            if key not in found or len(s.trials) > len(found[key].trials):
                found[key] = s
    return sorted(found.values(), key=lambda s: task_order((s.task, s.arch)))


def first_epochs_best(records: list[ResultRecord], task: str, arch: str, epochs: int) -> list[float]:
    """The best validation loss within the first ``epochs`` epochs of each seed of a Table 1 cell (the paper's
    preset: Table 3's lr and clipping), from the records' per-epoch history."""
    cells, _ = table1_cells(records)
    best = []
    for r in cells.get((task, arch), []):
        losses = [e.get("valid_loss") for e in r.history[:epochs]]
        losses = [v for v in losses if v is not None and math.isfinite(v)]
        if losses and len(r.history) >= epochs:
            best.append(min(losses))
    return best


def _same(a: float | None, b: float | None) -> bool:
    return a is None and b is None or a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)


def retrained(records: list[ResultRecord], search: Search) -> list[ResultRecord]:
    """The finished runs (``benchmarks/table1_retrain.sh``) of the search's cell that trained the preset's epochs
    with its best lr and clipping and changed nothing else, one per seed (the newest)."""
    best = search.best
    if best is None:
        return []
    preset = resolve(search.task, search.arch, search.scale)
    runs = {}
    for r in records:
        if (r.experiment, r.model, r.scale, r.status) != (search.task, search.arch, search.scale, "ok"):
            continue
        config = record_config(r)
        if (set(r.deviations) <= {"lr", "clip"} and config.epochs == preset.epochs
                and len(r.history) == preset.epochs and _same(config.lr, best["lr"])
                and _same(config.clip, best["clip"]) and r.metrics.get("test") is not None):
            runs[config.seed] = r
    return list(runs.values())


def clip_text(value: float | None) -> str:
    return "off" if value is None else f"{value:.3g}"


@dataclasses.dataclass(frozen=True)
class SearchRow:
    """What the reproduction page shows of one search."""
    search: Search
    preset_lr: float
    preset_clip: float | None
    preset_best: list[float]        # Table 3's setting: each seed's best validation loss in the same epochs
    retrained: list[ResultRecord]   # the best setting trained for the preset's epochs, one per seed

    @property
    def progress(self) -> str:
        s = self.search
        going_on = not s.complete and len(s.trials) < s.planned
        return f"{len(s.trials)} of {s.planned}{', going on' if going_on else ''}, {s.epochs} epochs each"

    @property
    def diverged(self) -> int:
        return sum(t["status"] != "ok" for t in self.search.trials)

    @property
    def retrained_text(self) -> str:
        if not self.retrained:
            return "not yet"
        summary = SeedSummary.of(self.retrained)
        spread = f" ± {summary.sd:.3f}" if summary.sd is not None else ""
        return f"{summary.mean:.3f}{spread} ({summary.n} seed{'s' if summary.n > 1 else ''})"

    @property
    def preset_text(self) -> str:
        b = self.preset_best
        if not b:
            return "no seed record"
        return f"{min(b):.3f}–{max(b):.3f} ({len(b)} seeds)" if len(b) > 1 else f"{b[0]:.3f} (1 seed)"


def search_rows(searches: list[Search], records: list[ResultRecord]) -> list[SearchRow]:
    rows = []
    for s in searches:
        preset = resolve(s.task, s.arch, s.scale)
        rows.append(SearchRow(s, preset.lr, preset.clip, first_epochs_best(records, s.task, s.arch, s.epochs),
                              retrained(records, s)))
    return rows
