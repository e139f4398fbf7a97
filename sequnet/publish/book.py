"""Build the static HTML book (``sequnet book``) from executed notebooks.

The build, step by step:

1. read every result record (``results/`` and the run folder): a record that cannot be read stops the build,
   naming the file, before anything is written (:mod:`sequnet.publish.reproduction`);
2. vendor MathJax, require.js and the ipywidgets manager from the npm registry into ``book/_vendor/`` so that no
   page loads anything from a CDN (:mod:`sequnet.publish.vendor`);
3. copy the executed notebooks of a run (``build/<scale>/*.ipynb``) into ``book/notebooks/`` with a banner that
   says at what scale and when each ran (:mod:`sequnet.publish.notebook_view`), and the files they wrote (audio,
   images, HTML: ``ASSET_SUFFIXES``) into ``book/_assets/notebooks/<name>/``, which Sphinx copies beside the pages
   (``html_extra_path``);
4. write ``book/_toc.yml`` from the notebooks found, and ``book/reproduction.md`` from the result records;
5. run Jupyter Book with execution off, move the site to ``book/_build/<site>/html`` (``published`` for
   ``results/published``, the scale for ``build/<scale>``), so that a test build never replaces the reader's book,
   then check that no page loads a resource from outside the site (:mod:`sequnet.publish.htmlcheck`).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sequnet.analysis.listening import KEY_FILE
from sequnet.publish.htmlcheck import external_resources
# The notebooks import audio_player from here (``from sequnet.publish.book import audio_player``).
from sequnet.publish.notebook_view import audio_player, with_banner  # noqa: F401
from sequnet.publish.paths import BOOK, BUILD, REPO, RESULTS
from sequnet.publish.reproduction import find_records, reproduction_markdown
from sequnet.publish.searches import find_searches
from sequnet.publish.notebooks import order_names
from sequnet.publish.vendor import vendor_js

# Files a notebook writes under its out_dir that are published beside its page. Model checkpoints, arrays and
# logs stay out of the site. JSON is in for pages that load data (e.g. the listening test's pairs).
ASSET_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".mp4", ".webm",
                  ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".pdf",
                  ".html", ".css", ".js", ".json", ".txt", ".csv", ".mid"}
# Files a notebook's folder may hold that never reach the site: the listening test's key (which clip is which
# model) stays in the repository for the analysis; in the site it would unblind the test.
PRIVATE_FILES = {KEY_FILE}


def executed_notebooks(source: Path) -> dict[str, Path]:
    """Complete executed notebooks in a run folder (failed runs are kept as *.failed.ipynb and left out)."""
    found = {p.stem: p for p in source.glob("*.ipynb") if not p.name.endswith(".failed.ipynb")}
    return {name: found[name] for name in order_names(found)}


# Git-ignored work folders of the repository (``runs/``: training runs, ``build/``: executed notebooks): a path
# parameter inside one reads from the repository root once the machine's prefix is gone.
WORK_FOLDERS = ("runs", "build")


def repo_relative(path: str) -> str:
    """An absolute path of the machine that ran a notebook, as a reader can use it: from the project's work folder
    on (``/work/main/runs/seeds/checkpoints`` -> ``runs/seeds/checkpoints``), else the file or folder's name."""
    parts = Path(path).parts
    starts = [i for i, part in enumerate(parts) if part in WORK_FOLDERS]
    return str(Path(*parts[starts[-1]:])) if starts else parts[-1]


def without_machine_paths(nb, name: str):
    """The notebook without the paths papermill records of the machine that ran it: its temporary input and its
    output file, and absolute paths given as parameters (the checkpoints folder of a GPU run), in the metadata and
    in the injected-parameters cell. The site offers each notebook for download, and a reader has no use for
    them."""
    meta = nb.metadata.get("papermill", {})
    for key, value in (("input_path", f"{name}.md"), ("output_path", f"{name}.ipynb")):
        if key in meta:
            meta[key] = value
    params = meta.get("parameters", {})
    injected = [c for c in nb.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("/") and len(value) > 1:
            params[key] = repo_relative(value)
            for cell in injected:       # papermill writes the value as a double-quoted Python string
                cell.source = cell.source.replace(f'{key} = "{value}"', f'{key} = "{params[key]}"')
    return nb


def publish_notebooks(source: Path, book: Path) -> list[str]:
    """Copy the executed notebooks and their published files into the book; returns the chapter names."""
    import nbformat

    notebooks = executed_notebooks(source)
    target, assets = book / "notebooks", book / "_assets"
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(assets, ignore_errors=True)
    target.mkdir(parents=True)
    assets.mkdir(parents=True)
    for name, path in notebooks.items():
        nb = nbformat.read(path, as_version=4)
        nbformat.write(with_banner(without_machine_paths(nb, name), source / name), target / f"{name}.ipynb")
        for file in sorted((source / name).rglob("*")):
            if file.is_file() and file.suffix.lower() in ASSET_SUFFIXES and file.name not in PRIVATE_FILES:
                dst = assets / "notebooks" / name / file.relative_to(source / name)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, dst)
    return list(notebooks)


def toc_yaml(chapters: list[str]) -> str:
    lines = ["# Written by `sequnet book` from the executed notebooks it found; edit sequnet/publish/book.py, not this.",
             "format: jb-book", "root: intro", "options:", "  numbered: true", "parts:"]
    if chapters:
        lines += ["  - caption: Notebooks", "    chapters:"] + [f"      - file: notebooks/{n}" for n in chapters]
    lines += ["  - caption: Results", "    chapters:", "      - file: reproduction", "      - file: differences",
              "      - file: references"]
    return "\n".join(lines) + "\n"


def site_name(source: Path) -> str:
    """The build folder's name for a run folder: ``published`` for results/published, ``smoke`` for build/smoke."""
    name = Path(source).resolve().name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"cannot name a site after the folder {name!r}; pass --site NAME")
    return name


def run_jupyter_book(book: Path, strict: bool, site: Path) -> None:
    # A fresh build (pages of notebooks that are gone would otherwise linger), in Jupyter Book's own _build/html,
    # which then replaces ``site`` whole: the other sites in book/_build stay as they were.
    for scratch in ("html", ".doctrees", "jupyter_execute"):
        shutil.rmtree(book / "_build" / scratch, ignore_errors=True)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(book),
           "--builder", "html", "--keep-going"] + (["-W"] if strict else [])
    if subprocess.run(cmd).returncode:
        raise SystemExit("sequnet book: jupyter-book build failed; its messages are above")
    shutil.rmtree(site, ignore_errors=True)
    site.parent.mkdir(parents=True, exist_ok=True)
    (book / "_build" / "html").rename(site)


def main(source: Path, book: Path = BOOK, strict: bool = False, site: str | None = None) -> int:
    start = time.monotonic()
    source = source.resolve()
    if not source.is_dir():
        print(f"sequnet book: {source} does not exist; run the notebooks first (python -m sequnet run "
              f"--scale demo) or pass --from DIR", file=sys.stderr)
        return 2
    if (book / "_static").exists():
        # Jupyter Book adds every .js/.css under html_static_path to every page once a _static folder exists,
        # which would put the whole vendored MathJax on each page.
        print(f"sequnet book: remove {book / '_static'}; put extra files in {book / '_assets'} instead",
              file=sys.stderr)
        return 2
    # Records first: a damaged one stops the build before anything in book/ is replaced.
    roots = [RESULTS, source]
    records = find_records(roots)
    searches = find_searches(roots)
    vendor_js(book)
    chapters = publish_notebooks(source, book)
    if not chapters:
        print(f"sequnet book: no executed notebooks in {source}; the book will hold only the introduction and "
              f"the reproduction page", file=sys.stderr)
    (book / "_toc.yml").write_text(toc_yaml(chapters))
    (book / "reproduction.md").write_text(reproduction_markdown(
        records, sorted({os.path.relpath(r, REPO) for r in roots}), searches))
    site = book / "_build" / (site or site_name(source)) / "html"
    run_jupyter_book(book, strict, site)
    external = external_resources(site)
    if external:
        listing = "\n".join(f"  {page}: {url}" for page, url in external[:20])
        print(f"sequnet book: pages load resources from other hosts (the book must work offline):\n{listing}",
              file=sys.stderr)
        return 1
    print(f"sequnet book: {len(chapters)} chapter(s), {len(records)} result record(s); "
          f"{os.path.relpath(site / 'index.html')} built in {time.monotonic() - start:.1f} s")
    return 0


def register(sub) -> None:
    b = sub.add_parser("book", help="build the HTML book from executed notebooks",
                       description="Copy the executed notebooks of a run (and the files they wrote) into book/, "
                                   "write the table of contents and the reproduction page, build "
                                   "book/_build/<site>/html.")
    b.add_argument("--from", dest="source", default=str(BUILD / "demo"), metavar="DIR",
                   help="folder of executed notebooks: a run's output (build/<scale>) or results/published "
                        "(default: build/demo)")
    b.add_argument("--site", metavar="NAME", help="the site's folder under book/_build/ (default: the --from "
                                                  "folder's name: published, smoke, demo, paper)")
    b.add_argument("--strict", action="store_true", help="treat Sphinx warnings as errors")
    b.set_defaults(func=lambda args: main(Path(args.source), strict=args.strict, site=args.site))
