"""A published GPU chapter's cells that only show committed benchmark files are rendered again on a CPU, and the
published book shows what the committed files say (issue 16: the complexity chapter showed the breakdown and the
piano-step tables of the day it ran, not the measurements committed since)."""
from __future__ import annotations

import json

import nbformat
import pytest

from sequnet.analysis.notebook_params import check_parameters
from sequnet.publish import rerender
from sequnet.publish.notebook_view import scale_banner
from sequnet.publish.paths import RESULTS

SOURCE = '''---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A GPU chapter

{intro}

```{{code-cell}} ipython3
:tags: [parameters]

scale = "demo"
out_dir = "."
device = "auto"
```

```{{code-cell}} ipython3
:tags: [setup]

import json
from IPython.display import Markdown, display
from sequnet.analysis.notebook_params import check_parameters
from sequnet.publish.paths import BENCH
params = check_parameters(scale, out_dir, device, paper_needs_gpu="it measures on a GPU")
```

```{{code-cell}} ipython3
{measure}
```

```{{code-cell}} ipython3
:tags: [committed-results]

text = json.loads((BENCH / "b.json").read_text())["text"]
(params.out / "shown.txt").write_text(text)
display(Markdown(text))
```
'''
MEASURE = 'print("measured on the GPU")'


def _published_run(tmp_path, measure=MEASURE):
    """notebooks/chapter.md and its 'GPU run' in published/: the source's cells with outputs a CPU cannot make."""
    import jupytext

    notebooks, published, bench = tmp_path / "notebooks", tmp_path / "published", tmp_path / "bench"
    for folder in (notebooks, published / "chapter", bench):
        folder.mkdir(parents=True)
    (notebooks / "chapter.md").write_text(SOURCE.format(intro="Old narration.", measure=measure))
    nb = jupytext.read(notebooks / "chapter.md")
    nb.cells.insert(2, nbformat.v4.new_code_cell('# Parameters\nscale = "paper"\nout_dir = "chapter"\n'
                                                 'device = "cuda"\n', metadata={"tags": ["injected-parameters"]}))
    nb.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="measured on the GPU\n")]
    nb.cells[5].outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "| old | table |"})]
    nb.metadata["papermill"] = {"parameters": {"scale": "paper", "out_dir": "chapter", "device": "cuda"},
                                "start_time": "2026-12-03T07:13:27"}
    nbformat.write(nb, published / "chapter.ipynb")
    (published / "chapter" / "shown.txt").write_text("| old | table |")
    (bench / "b.json").write_text(json.dumps({"text": "| new | table |"}))
    return notebooks, published, bench


def _text(cell) -> list[str]:
    return rerender._shown(cell)


@pytest.mark.slow
def test_the_committed_cells_show_the_committed_files_again_and_the_measured_cells_keep_the_run(tmp_path,
                                                                                              monkeypatch):
    notebooks, published, bench = _published_run(tmp_path)
    monkeypatch.setenv("SEQUNET_BENCH_DIR", str(bench))     # the kernel's BENCH
    (notebooks / "chapter.md").write_text(SOURCE.format(intro="New narration.", measure=MEASURE))
    assert rerender.stale_cells("chapter", published, notebooks) == [
        "chapter: 'text = json.loads((BENCH / \"b.json\").read_text())[\"text\"]' shows other text than the committed "
        "files give now"]

    rerender.rerender("chapter", published, notebooks, today="2026-12-05")
    nb = nbformat.read(published / "chapter.ipynb", as_version=4)
    tagged = [c for c in nb.cells if rerender.TAG in c.metadata.get("tags", [])]
    assert [_text(c) for c in tagged] == [["| new | table |"]]
    assert tagged[0].execution_count is None
    assert [_text(c) for c in nb.cells if c.source == MEASURE] == [["measured on the GPU\n"]]
    assert "New narration." in nb.cells[0].source and "Old narration." not in json.dumps(nb)
    banner = scale_banner(nb, trains_nothing=True)
    assert "Executed at **paper** scale" in banner and banner.endswith(
        "Its cell that only shows committed benchmark files (`results/bench/`) was rendered again on 2026-12-05 "
        "from the files committed then (`python -m sequnet.publish.rerender`), so it shows the newest measurements; "
        "every other output is the run's.\n```")
    assert [c.metadata.get("tags") for c in nb.cells if c.cell_type == "code"][:3] == [
        ["parameters"], ["injected-parameters"], ["setup"]]
    assert nb.metadata.sequnet.rerendered.date == "2026-12-05"
    assert (published / "chapter" / "shown.txt").read_text() == "| new | table |"
    assert not list(published.glob(".*"))          # nothing staged is left behind
    assert rerender.stale_cells("chapter", published, notebooks) == []

    # again: the same cells
    rerender.rerender("chapter", published, notebooks, today="2026-12-06")
    again = nbformat.read(published / "chapter.ipynb", as_version=4)
    assert [c.source for c in again.cells] == [c.source for c in nb.cells]
    assert again.metadata.sequnet.rerendered == {"date": "2026-12-06", "tag": rerender.TAG, "cells": 1}


def test_a_measuring_cell_changed_since_the_run_is_refused_before_anything_runs(tmp_path):
    notebooks, published, _ = _published_run(tmp_path)
    before = (published / "chapter.ipynb").read_bytes()
    (notebooks / "chapter.md").write_text(SOURCE.format(intro="x", measure='print("measured differently")'))
    with pytest.raises(rerender.RerenderError, match=r"cell 3 \('print\(\"measured differently\"\)'\): not the code "
                                                     r"the published chapter ran.*book_gpu.sh"):
        rerender.rerender("chapter", published, notebooks)
    assert (published / "chapter.ipynb").read_bytes() == before
    assert "not the code the published chapter ran" in rerender.stale_cells("chapter", published, notebooks)[0]


def test_a_chapter_without_committed_cells_or_not_published_is_refused(tmp_path):
    notebooks, published, _ = _published_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="other.ipynb is missing: publish it first"):
        rerender.rerender("other", published, notebooks)
    (notebooks / "chapter.md").write_text(SOURCE.format(intro="x", measure=MEASURE).replace(
        ":tags: [committed-results]\n", ""))
    with pytest.raises(rerender.RerenderError, match="no cell of this notebook is tagged 'committed-results'"):
        rerender.rerender("chapter", published, notebooks)
    assert rerender.main(["other"]) == 2


def test_a_paper_scale_check_without_a_gpu_passes_only_while_rendering(tmp_path, monkeypatch):
    monkeypatch.delenv(rerender.ENV, raising=False)
    with pytest.raises(ValueError, match="scale='paper' needs a GPU here"):
        check_parameters("paper", str(tmp_path), "cpu", paper_needs_gpu="it measures")
    monkeypatch.setenv(rerender.ENV, "1")
    assert check_parameters("paper", str(tmp_path), "cpu", paper_needs_gpu="it measures").scale == "paper"


CHAPTERS = sorted(p.stem for p in (RESULTS / "published").glob("*.ipynb")
                  if (rerender.NOTEBOOKS / f"{p.stem}.md").is_file()
                  and rerender.TAG in (rerender.NOTEBOOKS / f"{p.stem}.md").read_text())


def test_the_gpu_chapters_have_committed_cells():
    assert CHAPTERS == ["complexity", "generation"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CHAPTERS)
def test_the_published_chapter_shows_the_committed_benchmarks(name):
    assert rerender.stale_cells(name) == [], (
        f"run python -m sequnet.publish.rerender {name} (after committing a benchmark JSON), and commit the chapter")
