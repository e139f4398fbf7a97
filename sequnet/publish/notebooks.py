"""Which notebooks there are and in what order: every MyST notebook in ``notebooks/``, one executed run each,
except a notebook of ``RUNS``, which runs once per entry under its own name with its own parameters. The runner
executes them in this order and the book shows them in it."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from sequnet.publish.paths import REPO

NOTEBOOKS = REPO / "notebooks"

# Order of execution and of the book's chapters; notebooks not listed follow in alphabetical order.
PREFERRED_ORDER = ("models", "char_ptb", "word_ptb", "music", "generation", "piano_audio", "listening_test",
                   "complexity")


def order_names(names) -> list[str]:
    """``names`` in the preferred chapter order, unknown ones last in alphabetical order. A run of the music
    notebook per dataset (``music_jsb``, as benchmarks/table1_paper.sh names them) takes the music notebook's
    place, so the music chapters do not trail after the listening test."""
    rank = {name: i for i, name in enumerate(PREFERRED_ORDER)}

    def place(n: str) -> int:
        return rank.get(n, rank["music"] if n.startswith("music_") else len(rank))

    return sorted(names, key=lambda n: (place(n), n))


# Chapters whose numbers come from no training run (they build, count, check and time models): at paper scale
# their banner points to no result records.
TRAINS_NOTHING = ("models", "generation", "complexity")


# A notebook executed more than once, each run under its own name (<name>.ipynb, out_dir <name>/) with its own
# parameters: one language-model notebook, one run per task.
RUNS = {"language": (("char_ptb", {"task": "char_ptb"}), ("word_ptb", {"task": "word_ptb"}))}


@dataclasses.dataclass(frozen=True)
class NotebookRun:
    name: str                                  # the executed notebook's name and its out_dir
    source: Path                               # the MyST notebook
    params: tuple[tuple[str, str], ...] = ()   # papermill -p of this run

    @property
    def stem(self) -> str:                     # what ``spread`` and ``AFTER`` know a notebook by
        return self.name


def discover(notebook_dir: Path = NOTEBOOKS) -> dict[str, NotebookRun]:
    """Every run of the MyST notebooks (``*.md``) in ``notebook_dir`` by name, in the preferred order: a notebook
    of ``RUNS`` gives one run per entry there, any other one run under its own name."""
    found = {}
    for path in Path(notebook_dir).glob("*.md"):
        for name, params in RUNS.get(path.stem, ((path.stem, {}),)):
            found[name] = NotebookRun(name, path, tuple((k, str(v)) for k, v in params.items()))
    return {name: found[name] for name in order_names(found)}


def select(available: dict[str, NotebookRun], only: list[str] | None) -> list[NotebookRun]:
    """The runs ``--only`` names (a run's name, or a notebook of ``RUNS`` for all its runs), else all of them."""
    if not only:
        return list(available.values())
    by_source = {}
    for run in available.values():
        by_source.setdefault(run.source.stem, []).append(run.name)
    unknown = [n for n in only if n not in available and n not in RUNS.keys() & by_source.keys()]
    if unknown:
        raise ValueError(f"unknown notebook {', '.join(unknown)}; valid names: {', '.join(available)}"
                         + "".join(f" ({n}: {', '.join(by_source[n])})" for n in RUNS if n in by_source))
    wanted = {name for n in only for name in (by_source[n] if n in RUNS else [n])}
    return [run for name, run in available.items() if name in wanted]
