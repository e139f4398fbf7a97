"""Render a published chapter's cells that only show committed files again, without the GPU that ran the chapter.

The complexity and generation chapters are executed at paper scale on a GPU (``benchmarks/book_gpu.sh``) and
published from that run; their tables of the GPU benchmarks, however, only read the JSON committed under
``results/bench/``, and newer measurements are committed between GPU runs. Such cells carry the tag
``committed-results`` in the notebook's source. :func:`rerender` executes them again (papermill, on this
machine), after the notebook's parameters cell and the cells tagged ``setup`` (its imports and parameter check),
and writes the chapter back with:

* every other code cell's outputs from the GPU run, and only if its source is the one the run executed: a cell
  that has changed since needs the GPU again, and is refused with its name;
* the current narration (markdown cells) and the re-rendered cells' outputs, and in its metadata the date and the
  number of cells rendered again, which the book's banner states (``notebook_view.scale_banner``);
* the files these cells write (a figure of a committed benchmark) replacing the run's copies in the chapter's
  folder.

``SEQUNET_RENDER_COMMITTED=1`` is set for that execution: the parameter check then lets a paper-scale notebook start
without a GPU, since none of its measuring cells runs. :func:`stale_cells` says which published cells no longer
show what the committed files say (a test keeps the published book current with it).

    python -m sequnet.publish.rerender complexity generation
"""
from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
from pathlib import Path
from unittest import mock

from sequnet.publish.book import without_machine_paths
from sequnet.publish.paths import REPO, RESULTS

TAG, SETUP = "committed-results", "setup"
ENV = "SEQUNET_RENDER_COMMITTED"
PUBLISHED = RESULTS / "published"
NOTEBOOKS = REPO / "notebooks"


class RerenderError(ValueError):
    """The chapter cannot be rendered again without its GPU: what differs, and what to run instead."""


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _first_line(source: str) -> str:
    return next((line for line in source.splitlines() if line.strip()), "")[:80]


def _kept_outputs(source_nb, published_nb, name: str) -> dict[int, object]:
    """For each code cell of the source that is neither re-rendered nor the parameters cell, the published cell
    that ran the same code (matched in order); raises :class:`RerenderError` for one the run did not execute."""
    ran = [c for c in published_nb.cells if c.cell_type == "code"
           and not {"injected-parameters", "parameters"} & set(_tags(c))]
    kept, at = {}, 0
    for i, cell in enumerate(source_nb.cells):
        if cell.cell_type != "code" or TAG in _tags(cell) or "parameters" in _tags(cell):
            continue
        match = next((j for j in range(at, len(ran)) if ran[j].source == cell.source), None)
        if match is None:
            raise RerenderError(
                f"notebooks/{name}.md, cell {i} ({_first_line(cell.source)!r}): not the code the published chapter "
                f"ran, and not tagged {TAG!r}, so only running the chapter again can give its outputs "
                f"(benchmarks/book_gpu.sh for a GPU chapter, then python -m sequnet.publish.promote)")
        kept[i], at = ran[match], match + 1
    return kept


def _render(source_nb, published_nb, work: Path, log=None):
    """Execute the parameters cell (with the run's parameters, ``out_dir`` in ``work``), the setup cells and the
    tagged cells of ``source_nb``; returns the executed tagged cells in order and the folder they wrote to."""
    import nbformat
    import papermill

    cells = [c for c in source_nb.cells if c.cell_type == "code"
             and {"parameters", SETUP, TAG} & set(_tags(c))]
    if not any(TAG in _tags(c) for c in cells):
        raise RerenderError(f"no cell of this notebook is tagged {TAG!r}: nothing to render again")
    if not any("parameters" in _tags(c) for c in cells):
        raise RerenderError("the notebook has no 'parameters' cell")
    nb = nbformat.v4.new_notebook(cells=[nbformat.from_dict(dict(c)) for c in cells], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    params = dict(published_nb.metadata.get("papermill", {}).get("parameters", {}))
    out = work / "out"
    params["out_dir"] = str(out)
    params.pop("device", None)          # the parameters cell's default: this machine's device
    nbformat.write(nb, work / "render.ipynb")
    with mock.patch.dict(os.environ, {ENV: "1"}):        # the kernel inherits it
        executed = papermill.execute_notebook(str(work / "render.ipynb"), str(work / "rendered.ipynb"),
                                              parameters=params, kernel_name="python3", cwd=str(work),
                                              progress_bar=False, log_output=log is not None, stdout_file=log)
    return [c for c in executed.cells if TAG in _tags(c)], out


def rerender(name: str, published: Path = PUBLISHED, notebooks: Path = NOTEBOOKS, today: str | None = None,
             log=None) -> Path:
    """Render the ``committed-results`` cells of the published chapter ``name`` again from the committed files and
    write the chapter back (see the module docstring); returns the notebook written."""
    import jupytext
    import nbformat

    target, source = Path(published) / f"{name}.ipynb", Path(notebooks) / f"{name}.md"
    for path, hint in ((target, "publish it first (python -m sequnet.publish.promote)"),
                       (source, "rerender takes a chapter whose source is notebooks/NAME.md")):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: {hint}")
    old = nbformat.read(target, as_version=4)
    new_source = jupytext.read(source)
    kept = _kept_outputs(new_source, old, name)            # refuse before running anything
    today = today or datetime.date.today().isoformat()
    with tempfile.TemporaryDirectory(prefix=f"rerender-{name}-") as tmp:
        rendered, out = _render(new_source, old, Path(tmp), log)
        cells, tagged = [], iter(rendered)
        for i, cell in enumerate(new_source.cells):
            if cell.cell_type != "code":
                cells.append(nbformat.from_dict(dict(cell)))
            elif "parameters" in _tags(cell):
                cells.append(nbformat.from_dict(dict(cell)))
                cells += [c for c in old.cells if "injected-parameters" in _tags(c)]
            elif TAG in _tags(cell):
                done = next(tagged)
                done.execution_count = None          # not executed in the run's order
                for output in done.outputs:
                    if output.get("output_type") == "execute_result":
                        output["execution_count"] = None
                cells.append(done)
            else:        # the run's cell, with the source's tags (e.g. setup, added since the run)
                cells.append(kept[i])
                kept[i].metadata["tags"] = list(_tags(cell))
                if not kept[i].metadata["tags"]:
                    del kept[i].metadata["tags"]
        new = nbformat.from_dict(dict(old))
        new.cells = cells
        # the book's banner says so (notebook_view.scale_banner)
        new.metadata.setdefault("sequnet", {})["rerendered"] = {"date": today, "tag": TAG,
                                                               "cells": sum(TAG in _tags(c) for c in cells)}
        nbformat.validate(new)
        new = without_machine_paths(new, name)
        folder = Path(published) / name
        folder.mkdir(exist_ok=True)
        written = [p for p in out.rglob("*") if p.is_file()] if out.is_dir() else []
        staged = target.with_name(f".{name}.rerender.ipynb")
        nbformat.write(new, staged)
        for path in written:          # the figures these cells draw, in place of the run's copies
            dest = folder / path.relative_to(out)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest.with_name(f".{dest.name}.part"))
            os.replace(dest.with_name(f".{dest.name}.part"), dest)
        os.replace(staged, target)
    return target


def _shown(cell) -> list[str]:
    """What a cell shows as text: its markdown and plain-text outputs (figures' bytes vary with the platform)."""
    shown = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        text = data.get("text/markdown") or (output.get("text") if output.get("output_type") == "stream" else None)
        if text is not None:
            shown.append(text if isinstance(text, str) else "".join(text))
    return shown


def stale_cells(name: str, published: Path = PUBLISHED, notebooks: Path = NOTEBOOKS) -> list[str]:
    """The published chapter's ``committed-results`` cells whose text differs from what the committed files give
    now (or a line saying the chapter's code has changed since its run), each as a short description."""
    import jupytext
    import nbformat

    old = nbformat.read(Path(published) / f"{name}.ipynb", as_version=4)
    new_source = jupytext.read(Path(notebooks) / f"{name}.md")
    try:
        _kept_outputs(new_source, old, name)
    except RerenderError as e:
        return [str(e)]
    shown = [c for c in old.cells if TAG in _tags(c)]
    wanted = [c for c in new_source.cells if TAG in _tags(c)]
    if [c.source for c in shown] != [c.source for c in wanted]:
        return [f"{name}: its {TAG} cells are not those of notebooks/{name}.md"]
    with tempfile.TemporaryDirectory(prefix=f"stale-{name}-") as tmp:
        rendered, _ = _render(new_source, old, Path(tmp))
    return [f"{name}: {_first_line(a.source)!r} shows other text than the committed files give now"
            for a, b in zip(shown, rendered) if _shown(a) != _shown(b)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sequnet.publish.rerender", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="+", help="published chapters, e.g. complexity generation")
    args = parser.parse_args(argv)
    for name in args.names:
        try:
            path = rerender(name)
        except (RerenderError, FileNotFoundError) as e:
            print(f"rerender {name}: {e}", file=sys.stderr)
            return 2
        print(f"{name}: rendered again -> {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
