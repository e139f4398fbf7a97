"""Build the static HTML book (``sequnet book``) from executed notebooks, and write audio players for it.

The build, step by step:

1. vendor MathJax, require.js and the ipywidgets manager from the npm registry (``book/package-lock.json``) into
   ``book/_vendor/`` so that no page loads anything from a CDN;
2. copy the executed notebooks of a run (``build/<scale>/*.ipynb``) into ``book/notebooks/`` with a banner that
   says at what scale and when each ran, and the files they wrote (audio, images, HTML: ``ASSET_SUFFIXES``) into
   ``book/_assets/notebooks/<name>/``, which Sphinx copies beside the pages (``html_extra_path``);
3. write ``book/_toc.yml`` from the notebooks found, and ``book/reproduction.md`` from the result records;
4. run Jupyter Book with execution off, then check that no page loads a resource from outside the site.

Audio must reach the book as files, not as base64 inside the notebook: a notebook writes a WAV/FLAC under its
``out_dir`` and shows it with :func:`audio_player`, whose ``src`` is relative to the notebook, so it plays in
Jupyter and in the book alike.
"""
from __future__ import annotations

import hashlib
import html
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sequnet.core.configs import baseline_arch
from sequnet.experiment.presets import SCALES
from sequnet.experiment.records import METRIC_UNITS, PAPER_TABLE1, ResultRecord
from sequnet.publish.runner import REPO, order_names

BOOK = REPO / "book"
# Files a notebook writes under its out_dir that are published beside its page. Model checkpoints, arrays and
# logs stay out of the site. JSON is in for pages that load data (e.g. the listening test's pairs).
ASSET_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".mp4", ".webm",
                  ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".pdf",
                  ".html", ".css", ".js", ".json", ".txt", ".csv", ".mid"}
TASK_NAMES = {"char_ptb": "Char-LM (PTB)", "word_ptb": "Word-LM (PTB)", "muse": "M-Muse", "nottingham": "M-Nott",
              "jsb": "M-JSB", "piano_midi": "M-Piano-midi", "piano_audio": "Piano (audio)"}
MODEL_NAMES = {"tcn": "TCN", "sequnet": "Seq-U-Net", "wavenet": "WaveNet"}


# ---------------------------------------------------------------------------------------------------------------
# For notebooks

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


# ---------------------------------------------------------------------------------------------------------------
# 1. Vendored JavaScript

# What the pages load, copied out of node_modules (source -> destination under book/_vendor/). MathJax keeps its
# folder layout because tex-chtml.js loads its fonts and extensions relative to itself.
VENDOR = {
    "mathjax/es5": "mathjax",
    "requirejs/require.js": "requirejs/require.js",
    "@jupyter-widgets/html-manager/dist": "jupyter-widgets",
}
# MathJax's other combined bundles and the widget manager's non-AMD build and source maps are never loaded.
VENDOR_SKIP = re.compile(r"^(?!tex-chtml\.js$)(tex|mml)-.*\.js$|^node-main\.js$|\.map$|^embed\.js|^libembed-amd\.js$")


def vendor_js(book: Path) -> None:
    """Fill ``book/_vendor`` from ``npm ci``; skipped while it matches ``package-lock.json``."""
    lock = book / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    vendor, stamp = book / "_vendor", book / "_vendor" / ".package-lock.sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("sequnet book: npm not found; it vendors MathJax and the widget manager for offline pages. "
                         "Install Node.js (Debian: apt-get install -y npm) or run `make npm`.")
    print("sequnet book: npm ci (MathJax, require.js, widget manager)", flush=True)
    # --ignore-scripts: nothing here needs an install script (one dependency only prints an attribution).
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"], cwd=book,
                   check=True)
    shutil.rmtree(vendor, ignore_errors=True)
    for source, target in VENDOR.items():
        src, dst = book / "node_modules" / source, vendor / target
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=lambda _, names: [n for n in names if VENDOR_SKIP.search(n)])
        else:
            shutil.copy2(src, dst)
    stamp.write_text(digest)


# ---------------------------------------------------------------------------------------------------------------
# 2. Notebooks and their files

def executed_notebooks(source: Path) -> dict[str, Path]:
    """Complete executed notebooks in a run folder (failed runs are kept as *.failed.ipynb and left out)."""
    found = {p.stem: p for p in source.glob("*.ipynb") if not p.name.endswith(".failed.ipynb")}
    return {name: found[name] for name in order_names(found)}


def scale_banner(nb) -> str:
    """A note saying at what scale and when the notebook ran, so no small-scale number passes for the paper's."""
    meta = nb.metadata.get("papermill", {})
    scale = meta.get("parameters", {}).get("scale")
    when = (meta.get("end_time") or "")[:16].replace("T", " ")
    ran = f"Executed at **{scale}** scale" + (f" on {when} UTC" if when else "")
    if scale == "paper":
        return (f"```{{note}}\n{ran} with the paper's settings (Tables 2 and 3). The {{doc}}`/reproduction` page "
                f"puts its result records beside the paper's Table 1.\n```")
    if scale in SCALES:
        size = SCALES[scale].summary
        return (f"```{{warning}}\n{ran}: {size}. Its numbers are **not** a reproduction of the paper's results; "
                f"the {{doc}}`/reproduction` page lists the paper-scale runs.\n```")
    return "```{warning}\nExecuted outside `sequnet run`: the scale of its numbers is unknown.\n```"


# A notebook run once per dataset (the music one) gets the dataset's name in its title, so that its chapters
# differ in the book's navigation.
DATASET_TITLES = {"jsb": "JSB Chorales", "nottingham": "Nottingham", "muse": "MuseData", "piano_midi": "Piano-midi.de"}


def with_banner(nb):
    """Insert the scale banner right under the notebook's title (the first markdown cell's `# ` line), and name
    the dataset in the title when the notebook ran with a ``dataset`` parameter."""
    import nbformat

    banner = nbformat.v4.new_markdown_cell(scale_banner(nb))
    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), None)
    if first is None:
        nb.cells.insert(0, banner)
        return nb
    title, _, rest = nb.cells[first].source.lstrip().partition("\n")
    dataset = nb.metadata.get("papermill", {}).get("parameters", {}).get("dataset")
    if title.startswith("# ") and isinstance(dataset, str):
        title = f"{title}: {DATASET_TITLES.get(dataset, dataset)}"
        nb.cells[first].source = title          # any text after it moves to a cell of its own below
    if title.startswith("# ") and rest.strip():
        nb.cells[first].source = title
        nb.cells.insert(first + 1, nbformat.v4.new_markdown_cell(rest.strip()))
    nb.cells.insert(first + 1, banner)
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
        nbformat.write(with_banner(nb), target / f"{name}.ipynb")
        for file in sorted((source / name).rglob("*")):
            if file.is_file() and file.suffix.lower() in ASSET_SUFFIXES:
                dst = assets / "notebooks" / name / file.relative_to(source / name)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, dst)
    return list(notebooks)


# ---------------------------------------------------------------------------------------------------------------
# 3. Table of contents and reproduction page

def toc_yaml(chapters: list[str]) -> str:
    lines = ["# Written by `sequnet book` from the executed notebooks it found; edit sequnet/publish/book.py, not this.",
             "format: jb-book", "root: intro", "options:", "  numbered: true", "parts:"]
    if chapters:
        lines += ["  - caption: Notebooks", "    chapters:"] + [f"      - file: notebooks/{n}" for n in chapters]
    lines += ["  - caption: Results", "    chapters:", "      - file: reproduction", "      - file: differences",
              "      - file: references"]
    return "\n".join(lines) + "\n"


def find_records(roots: list[Path]) -> list[ResultRecord]:
    """Result records below ``roots``, each once; other JSON files (widget state, listening pairs) are skipped."""
    records = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*.json")) if Path(root).is_dir() else []:
            if "node_modules" in path.parts or "_vendor" in path.parts:
                continue
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not (isinstance(data, dict) and {"experiment", "model", "scale", "metrics"} <= data.keys()):
                continue
            try:
                record = ResultRecord.load(path)
            except (TypeError, ValueError) as e:
                raise SystemExit(f"sequnet book: {path} looks like a result record but does not load ({e}); "
                                 f"fix or remove it") from e
            records[(record.experiment, record.model, record.scale, record.date, record.host)] = record
    return sorted(records.values(), key=lambda r: (r.experiment, r.model, r.scale, r.date))


def fmt(value) -> str:
    """Our numbers: enough digits to compare with the paper's two or three decimals, whatever the magnitude."""
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.2f}" if abs(value) >= 100 else f"{value:.3f}" if abs(value) >= 1 else f"{value:.3g}"


def model_name(task: str, model: str) -> str:
    name = MODEL_NAMES.get(model, model)
    return name + " (residual)" if (task, model) == ("piano_audio", "sequnet") else name


def run_label(r: ResultRecord) -> str:
    """Where a number of ours comes from: scale, device, date and commit, and the status unless it is ok."""
    commit = f" @ `{r.git_commit}`" if r.git_commit not in ("", "unknown") else ""
    status = "" if r.status == "ok" else f", **{r.status}**"
    return f"ours: **{r.scale}** scale, {r.device}, {r.date[:10]}{commit}{status}"


def is_reproduction(r: ResultRecord) -> bool:
    """A paper-scale run with the paper's preset unchanged (a changed run, e.g. fewer epochs, is not one)."""
    return r.scale == "paper" and "preset changed" not in r.notes


def contended(r: ResultRecord) -> bool:
    """Whether the run shared its GPU with other training processes (its record's notes say so): its time per
    step then includes that contention and is no cost comparison."""
    return "side by side" in r.notes


def params_label(n: int | None) -> str:
    """A parameter count in the paper's style (5.9M, 522k), one digit more so that near-equal pairs differ."""
    if not n:
        return "–"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def step_time(r: ResultRecord) -> str:
    return fmt(r.time_per_step_s) + (" †" if contended(r) and r.time_per_step_s is not None else "")


CONTENDED_NOTE = ("† Trained side by side with other runs on one GPU (CUDA MPS): the time per step includes that "
                  "contention and is not a cost comparison; the training-step benchmark below gives uncontended "
                  "costs, both models of a pair in one process.")


def table1_section(records: list[ResultRecord]) -> list[str]:
    """The paper's Table 1 rows, each followed by this companion's paper-scale records of the same experiment."""
    ours = [r for r in records if is_reproduction(r)]
    keys = list(PAPER_TABLE1) + sorted({(r.experiment, r.model) for r in ours} - set(PAPER_TABLE1))
    lines = ["| Task | Model | Source | Params | Train | Test | Time/step (s) | Peak memory |",
             "|---|---|---|---|---|---|---|---|"]
    for task, model in keys:
        head = f"| {TASK_NAMES.get(task, task)} | {model_name(task, model)} "
        if (task, model) in PAPER_TABLE1:
            p = PAPER_TABLE1[task, model]
            star = "\\*" if task == "piano_audio" else ""   # measured at batch 2
            lines.append(head + f"| **paper** (GTX 1080) | {p.get('params', '–')} | {p['train']:g} | {p['test']:g} | "
                                f"{p['time_s']:g}{star} | {p['mem_mb']:g} MB{star} |")
        for r in (r for r in ours if (r.experiment, r.model) == (task, model)):
            mem = f"{r.peak_memory_mib:.1f} MiB" if r.peak_memory_mib is not None else "–"
            lines.append(head + f"| {run_label(r)} | {params_label(r.params)} | {fmt(r.metrics.get('train'))} | "
                                f"{fmt(r.metrics.get('test'))} | {step_time(r)} | {mem} |")
    return lines


def preset_change(r: ResultRecord) -> str:
    """What a paper-scale record changed of the paper's preset, as its notes say (e.g. ``epochs=84``)."""
    for note in r.notes.split("; "):
        if note.startswith("paper preset changed: "):
            return note.removeprefix("paper preset changed: ")
    return ""


def changed_section(records: list[ResultRecord]) -> list[str]:
    """Paper-scale runs that changed the preset (fewer epochs, a time budget, another learning rate or seed): the
    paper's models and data, not its exact training, so they sit beside Table 1 rather than in it, with the change
    named."""
    runs = [r for r in records if r.scale == "paper" and not is_reproduction(r)]
    if not runs:
        return []
    lines = ["### Paper settings, changed training", "",
             "These runs use the paper's models and data but changed its training preset: fewer epochs, another "
             "learning rate or another seed (the column *changed* says what; a record's notes say why). Some were "
             "tried where a row misses its goal; all are published rather than left out.", "",
             "| Task | Model | Source | Changed | Params | Train | Test | Time/step (s) | Peak memory |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        mem = f"{r.peak_memory_mib:.1f} MiB" if r.peak_memory_mib is not None else "–"
        valid = f" (valid {fmt(r.metrics.get('valid'))})" if r.metrics.get("test") is None else ""
        lines.append(f"| {TASK_NAMES.get(r.experiment, r.experiment)} | {model_name(r.experiment, r.model)} | "
                     f"{run_label(r)} | {preset_change(r)} | {params_label(r.params)} | {fmt(r.metrics.get('train'))} | "
                     f"{fmt(r.metrics.get('test'))}{valid} | {step_time(r)} | {mem} |")
    return lines


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "–"


def ratios_section(records: list[ResultRecord]) -> list[str]:
    """Seq-U-Net's time per step and memory over the baseline's: the paper's, and ours per device (newest runs)."""
    newest = {(r.experiment, r.model, r.device): r for r in records if is_reproduction(r)}   # sorted by date
    lines = ["| Task | Source | Time ratio | Memory ratio |", "|---|---|---|---|"]
    for task in dict.fromkeys(t for t, _ in PAPER_TABLE1):
        base = baseline_arch(task)
        p, q = PAPER_TABLE1[task, "sequnet"], PAPER_TABLE1[task, base]
        lines.append(f"| {TASK_NAMES[task]} | **paper** (GTX 1080) | {ratio(p['time_s'], q['time_s'])} | "
                     f"{ratio(p['mem_mb'], q['mem_mb'])} |")
        for (t, model, device), r in newest.items():
            other = newest.get((t, base, device))
            if t == task and model == "sequnet" and other:
                mark = " †" if contended(r) or contended(other) else ""
                lines.append(f"| {TASK_NAMES[task]} | ours: **paper** scale, {device} | "
                             f"{ratio(r.time_per_step_s, other.time_per_step_s)}{mark} | "
                             f"{ratio(r.peak_memory_mib, other.peak_memory_mib)} |")
    return lines


def bench_section(bench_dir: Path = REPO / "results" / "bench") -> list[str]:
    """Training-step ratios from the committed ``benchmarks/training.py`` runs: both models of every Table 1 pair
    timed in one process on one GPU, with synthetic inputs of the paper's shapes (no training)."""
    files = sorted(bench_dir.glob("training*.json"))
    if not files:
        return []
    lines = ["### Training-step benchmark (all Table 1 pairs)", "",
             "`benchmarks/training.py` times a full training step (forward, loss, backward, Adam) of both models "
             "of each pair in one process, synchronised, median after warm-up, with inputs of the paper's training "
             "shapes; memory is the allocator's peak. These are measurements of cost, not of accuracy.", "",
             "| Task | Batch | Source | Seq-U-Net ms/step | baseline ms/step | Time ratio | Memory ratio |",
             "|---|---|---|---|---|---|---|"]
    for path in files:
        bench = json.loads(path.read_text())
        meta = bench["meta"]
        label = (f"ours: {meta.get('device', '?')}, {str(meta.get('date', ''))[:10]}"
                 f"{', bf16' if meta.get('bf16') else ''}{', compiled' if meta.get('compile') else ''}"
                 f"{', CUDA graphs' if meta.get('cuda_graphs') else ''}")
        rows = {(r["task"], r["arch"], r["batch"]): r for r in bench["rows"]}
        for (task, arch, batch), r in rows.items():
            base = rows.get((task, baseline_arch(task), batch))
            if arch != "sequnet" or base is None:
                continue
            lines.append(f"| {TASK_NAMES.get(task, task)} | {batch} | {label} | {r['time_median_s'] * 1e3:.1f} | "
                         f"{base['time_median_s'] * 1e3:.1f} | {ratio(r['time_median_s'], base['time_median_s'])} | "
                         f"{ratio(r['peak_memory_mib'], base['peak_memory_mib'])} |")
    return lines


def small_scale_section(records: list[ResultRecord]) -> list[str]:
    small = [r for r in records if r.scale != "paper"]
    if not small:
        return ["No smoke or demo records were found."]
    lines = ["| Task (unit) | Model | Source | Train | Valid | Test | Time/step (s) | Wall (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in small:
        lines.append(f"| {TASK_NAMES.get(r.experiment, r.experiment)} ({r.metric}) | "
                     f"{model_name(r.experiment, r.model)} | {run_label(r)} | {fmt(r.metrics.get('train'))} | "
                     f"{fmt(r.metrics.get('valid'))} | {fmt(r.metrics.get('test'))} | {fmt(r.time_per_step_s)} | "
                     f"{fmt(r.wall_time_s)} |")
    return lines


def reproduction_markdown(records: list[ResultRecord], sources: list[str]) -> str:
    n_paper = sum(is_reproduction(r) for r in records)
    units = ", ".join(f"{TASK_NAMES.get(t, t)}: {u}" for t, u in METRIC_UNITS.items())
    parts = [
        "(reproduction)=",
        "# Reproduction: the paper's Table 1 and our runs", "",
        "Every number of ours is labelled with the **scale** it was produced at, the **device** and the **date** "
        "(and git commit). Only `paper`-scale runs — the paper's settings, on a GPU — are reproductions; "
        "`smoke` and `demo` runs are small-scale checks and demonstrations and appear in a separate table.", "",
        f"Records read from: {', '.join(f'`{s}`' for s in sources)} ({len(records)} found, {n_paper} at paper "
        "scale). This page is generated by `sequnet book`.", "",
        "## Table 1 beside paper-scale runs", "",
        f"Metrics are in each task's unit ({units}); lower is better. The paper measured time per training step "
        "and peak memory on a GTX 1080 with PyTorch 1.2; ours come from `torch.cuda.max_memory_allocated` "
        "(MiB) and a synchronised, warmed-up median step, so compare ratios between models on one device rather "
        "than absolute figures across devices.", "",
        *table1_section(records), "",
        "\\* The paper measured the piano models' time and memory at batch size 2 instead of 16.", "",
        CONTENDED_NOTE, "",
        *changed_section(records), "",
        "### Seq-U-Net relative to its baseline", "",
        "Time per step and peak memory of Seq-U-Net divided by those of TCN (WaveNet for piano audio), measured "
        "on the same device: below 1 means Seq-U-Net is cheaper. Ratios travel across devices better than "
        "absolute figures.", "",
        *ratios_section(records), "",
        "† At least one run of the pair trained side by side with others (see above); for cost ratios, read the "
        "benchmark below.", "",
        *bench_section(), "",
    ]
    if not n_paper:
        parts += ["```{note}", "No paper-scale record yet. Run `make book SCALE=paper` on a GPU machine and commit "
                  "the records under `results/`.", "```", ""]
    parts += ["## Small-scale runs (not reproductions)", "",
              "These runs use tiny (`smoke`) or CPU-sized (`demo`) models, data and epochs. They show that the "
              "pipeline works and how training behaves; their numbers are **not comparable** with the paper's.", "",
              *small_scale_section(records), "",
              "```{include} _paper_settings.md", ":heading-offset: 1", "```", ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# 4. Build and check

class _Resources(html.parser.HTMLParser):
    """URLs a page loads: scripts, stylesheets, images, media, frames (links to read elsewhere are fine)."""
    LOADS = {"script": ("src",), "img": ("src", "srcset"), "audio": ("src",), "video": ("src", "poster"),
             "source": ("src", "srcset"), "track": ("src",), "iframe": ("src",), "embed": ("src",),
             "object": ("data",), "input": ("src",)}
    LINK_RELS = {"stylesheet", "icon", "preload", "modulepreload", "prefetch", "manifest", "shortcut"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        names = self.LOADS.get(tag, ())
        if tag == "link" and set((attrs.get("rel") or "").lower().split()) & self.LINK_RELS:
            names = ("href",)
        self.urls += [attrs[n] for n in names if attrs.get(n)]
        self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", attrs.get("style") or "")


def external_resources(site: Path) -> list[tuple[str, str]]:
    """(file, url) for every resource a page or stylesheet of the built site would fetch from another host."""
    found = []
    for page in sorted(site.rglob("*.html")):
        parser = _Resources()
        parser.feed(page.read_text(errors="replace"))
        found += [(str(page.relative_to(site)), u) for u in parser.urls if re.match(r"\s*(https?:)?//", u)]
    for css in sorted(site.rglob("*.css")):
        text = css.read_text(errors="replace")
        for url in re.findall(r"(?:url\(\s*['\"]?|@import\s+['\"])((?:https?:)?//[^'\")\s]+)", text):
            found.append((str(css.relative_to(site)), url))
    return found


def run_jupyter_book(book: Path, strict: bool) -> None:
    # A fresh build: pages of notebooks that are gone would otherwise linger in _build/html.
    shutil.rmtree(book / "_build", ignore_errors=True)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(book),
           "--builder", "html", "--keep-going"] + (["-W"] if strict else [])
    if subprocess.run(cmd).returncode:
        raise SystemExit("sequnet book: jupyter-book build failed; its messages are above")


def main(source: Path, book: Path = BOOK, strict: bool = False) -> int:
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
    vendor_js(book)
    chapters = publish_notebooks(source, book)
    if not chapters:
        print(f"sequnet book: no executed notebooks in {source}; the book will hold only the introduction and "
              f"the reproduction page", file=sys.stderr)
    (book / "_toc.yml").write_text(toc_yaml(chapters))
    roots = [REPO / "results", source]
    records = find_records(roots)
    (book / "reproduction.md").write_text(reproduction_markdown(
        records, sorted({os.path.relpath(r, REPO) for r in roots})))
    run_jupyter_book(book, strict)
    site = book / "_build" / "html"
    external = external_resources(site)
    if external:
        listing = "\n".join(f"  {page}: {url}" for page, url in external[:20])
        print(f"sequnet book: pages load resources from other hosts (the book must work offline):\n{listing}",
              file=sys.stderr)
        return 1
    print(f"sequnet book: {len(chapters)} chapter(s), {len(records)} result record(s); "
          f"{site / 'index.html'} built in {time.monotonic() - start:.1f} s")
    return 0
