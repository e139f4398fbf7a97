"""What a notebook shows and how its page is headed: audio players that keep audio as files, and the banner that
says at what scale a notebook ran.

Audio must reach the book as files, not as base64 inside the notebook: a notebook writes a WAV/FLAC under its
``out_dir`` and shows it with :func:`audio_player`, whose ``src`` is relative to the notebook, so it plays in
Jupyter and in the book alike.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Sequence

from sequnet.core.configs import ARCH_LABELS
from sequnet.experiment.presets import SCALES
from sequnet.experiment.records import ResultRecord, short_of_paper
from sequnet.publish.notebooks import TRAINS_NOTHING
from sequnet.publish.reproduction import contended
from sequnet.publish.table1 import training_label


def audio_player(path: str | os.PathLike, caption: str = ""):
    """An ``<audio>`` player for a file the notebook wrote, referenced by a path relative to the notebook.

    ``IPython.display.Audio(filename=...)`` would inline the file as base64 (megabytes per clip in the notebook
    and the page); this keeps the audio a file, which ``sequnet book`` copies beside the page.
    """
    from IPython.display import HTML

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: write the audio file before showing a player for it")
    src = Path(os.path.relpath(path.resolve(), Path.cwd())).as_posix()
    if src.startswith("../"):
        raise ValueError(f"{path} lies outside the notebook's folder; write audio under out_dir so that the book "
                         f"can publish it")
    label = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return HTML(f'<figure class="sequnet-audio">{label}<audio controls preload="metadata" '
                f'src="{html.escape(src)}"></audio></figure>')


def scale_banner(nb, records: Sequence[ResultRecord] = (), trains_nothing: bool = False) -> str:
    """A note saying at what scale and when the notebook ran, so no small-scale number passes for the paper's.
    ``records``: the chapter's result records; one that trained for less than the paper (its ``extent``) makes a
    paper-scale chapter a changed run, named with its steps and their fraction of the paper's; one that shared its
    GPU with other training runs adds that its times are contended. ``trains_nothing``: a chapter whose numbers
    come from no training run (``notebooks.TRAINS_NOTHING``), which has none to point to."""
    text = _scale_text(nb, records, trains_nothing)
    if any(contended(r) for r in records):
        # the chapters' cost figures were drawn when they ran; the banner says what their times are worth
        text = text.removesuffix("\n```") + (
            " Its runs trained side by side with other training runs on one GPU (CUDA MPS), so their times per "
            "step include that contention and are **no cost comparison**, nor is their ratio; the "
            "{doc}`/reproduction` page gives uncontended costs, both models of a pair in one process.\n```")
    again = nb.metadata.get("sequnet", {}).get("rerendered")
    if again:       # sequnet.publish.rerender: the cells showing committed benchmark files, drawn after the run
        which, was, shows = (("Its cell that only shows", "was", "it shows") if again["cells"] == 1 else
                             (f"Its {again['cells']} cells that only show", "were", "they show"))
        text = text.removesuffix("\n```") + (
            f" {which} committed benchmark files (`results/bench/`) {was} rendered again on {again['date']} from "
            f"the files committed then (`python -m sequnet.publish.rerender`), so {shows} the newest measurements; "
            f"every other output is the run's.\n```")
    return text


def _scale_text(nb, records: Sequence[ResultRecord], trains_nothing: bool) -> str:
    meta = nb.metadata.get("papermill", {})
    scale = meta.get("parameters", {}).get("scale")
    when = html.escape(str(meta.get("end_time") or "")[:16].replace("T", " "))
    ran = f"Executed at **{scale}** scale" + (f" on {when} UTC" if when else "")
    given = meta.get("parameters", {})
    # a seed is no change of the paper's settings (they fix none; Table 1's cells hold several): it is named
    changed = {k: v for k, v in given.items() if k not in WHERE_PARAMETERS | {"seed"} and v is not None}
    seed = f", seed {given['seed']}" if given.get("seed") is not None else ""
    # training_label: the same words as the run's Table 1 row (its length, and bf16 or a test subset where so)
    short = [f"{ARCH_LABELS.get(r.model, r.model)} ({training_label(r)})" for r in records if short_of_paper(r)]
    if scale in SCALES and SCALES[scale].reproduces_paper and short:
        return (f"```{{warning}}\n{ran} with the paper's models but **trained for less than the paper**: "
                f"{html.escape(' and '.join(short), quote=False)}. Its numbers are **not** a reproduction of the "
                f"paper's; the {{doc}}`/reproduction` page shows them in Table 1 as not comparable, with these "
                f"words.\n```")
    if scale in SCALES and SCALES[scale].reproduces_paper and changed:
        # e.g. the piano notebook with a time budget: the paper's models, but not its length of training
        listed = html.escape(", ".join(f"{k}={v}" for k, v in sorted(changed.items())))
        return (f"```{{warning}}\n{ran} with the paper's models and data but **changed settings** ({listed}): its "
                f"numbers are **not** a reproduction of the paper's; the {{doc}}`/reproduction` page lists them as "
                f"changed runs.\n```")
    if scale in SCALES and SCALES[scale].reproduces_paper and trains_nothing:
        return f"```{{note}}\n{ran} with the paper's models (Table 2); this chapter trains nothing.\n```"
    if scale in SCALES and SCALES[scale].reproduces_paper:
        return (f"```{{note}}\n{ran} with the paper's settings (Tables 2 and 3){seed}. The {{doc}}`/reproduction` "
                f"page puts its result records beside the paper's Table 1.\n```")
    if scale in SCALES:
        size = SCALES[scale].summary
        return (f"```{{warning}}\n{ran}: {size}. Its numbers are **not** a reproduction of the paper's results; "
                f"the {{doc}}`/reproduction` page lists the paper-scale runs.\n```")
    return "```{warning}\nExecuted outside `sequnet run`: the scale of its numbers is unknown.\n```"


# A notebook run once per dataset (the music one) gets the dataset's name in its title, so that its chapters
# differ in the book's navigation.
# Notebook parameters that say where a run reads and writes, not what it trains: any other one a run was given
# (epochs, time_budget_s, n_items, ...) changes the scale's preset.
WHERE_PARAMETERS = {"scale", "out_dir", "device", "dataset", "task", "progress", "checkpoints", "audio_dir",
                    "items_dir", "responses_dir", "run_dir"}
DATASET_TITLES = {"jsb": "JSB Chorales", "nottingham": "Nottingham", "muse": "MuseData", "piano_midi": "Piano-midi.de"}
# Likewise the language notebook, run once per task.
TASK_TITLES = {"char_ptb": "characters", "word_ptb": "words"}


def chapter_records(folder: str | os.PathLike | None) -> list[ResultRecord]:
    """The result records a chapter wrote (``<folder>/records/*.json``; none without a folder)."""
    if folder is None or not (Path(folder) / "records").is_dir():
        return []
    return [ResultRecord.load(p) for p in sorted((Path(folder) / "records").glob("*.json"))]


def with_banner(nb, folder: str | os.PathLike | None = None):
    """Insert the scale banner right under the notebook's title (the first markdown cell's `# ` line), and name
    the dataset (or the language task) in the title when the notebook ran with a ``dataset`` (``task``) parameter.
    ``folder``: the chapter's output folder, whose records the banner reads (:func:`chapter_records`)."""
    import nbformat

    untrained = folder is not None and Path(folder).name in TRAINS_NOTHING
    banner = nbformat.v4.new_markdown_cell(scale_banner(nb, chapter_records(folder), untrained))
    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), None)
    if first is None:
        nb.cells.insert(0, banner)
        return nb
    title, _, rest = nb.cells[first].source.lstrip().partition("\n")
    parameters = nb.metadata.get("papermill", {}).get("parameters", {})
    dataset, task = parameters.get("dataset"), parameters.get("task")
    name = (DATASET_TITLES.get(dataset, dataset) if isinstance(dataset, str)
            else TASK_TITLES.get(task) if isinstance(task, str) else None)
    if title.startswith("# ") and name:
        title = f"{title}: {html.escape(name)}"
        nb.cells[first].source = title          # any text after it moves to a cell of its own below
    if title.startswith("# ") and rest.strip():
        nb.cells[first].source = title
        nb.cells.insert(first + 1, nbformat.v4.new_markdown_cell(rest.strip()))
    nb.cells.insert(first + 1, banner)
    return nb
